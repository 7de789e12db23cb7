"""Tiny offline models: a byte-level BPE tokenizer trained on a corpus, and a random-init Qwen2.

Nothing here downloads anything. ``init_tiny_model(out, size, corpus_texts)`` writes a folder that
``AutoTokenizer.from_pretrained`` and ``AutoModelForCausalLM.from_pretrained`` reload with
``HF_HUB_OFFLINE=1``. The tokenizer is built exactly as ``Qwen2Tokenizer`` builds its backend (NFC
normaliser, Qwen2's split regex, ``ByteLevel(use_regex=False)``, ByteLevel decoder), so that
transformers, which rebuilds a Qwen2 tokenizer from vocab and merges on load, gets the very same
tokenizer back: encode/decode round-trip identically before and after saving.

The chat template is ChatML with ``{% generation %}`` markers around the assistant content, so
that TRL's ``assistant_only_loss`` can find the assistant tokens.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlcoach.errors import ConfigError, DataError
from sqlcoach.prompts.settings import PromptSettings

#: Qwen2's pre-tokeniser regex (transformers ``models/qwen2/tokenization_qwen2.py``).
QWEN2_SPLIT_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS: tuple[str, ...] = (ENDOFTEXT, IM_START, IM_END)

#: ChatML; the assistant's content and its closing ``<|im_end|>`` are inside the generation
#: markers because that is what the model must learn to produce (including when to stop).
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['role'] == 'assistant' %}"
    "{%- generation %}{{- message['content'] + '<|im_end|>' }}{%- endgeneration %}"
    "{{- '\\n' }}"
    "{%- else %}"
    "{{- message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

#: Words of the prompt templates, added to the corpus so that they get merged tokens even when
#: the caller's corpus holds only questions and SQL.
TEMPLATE_WORDS = (
    "system user assistant Database schema: Question: Evidence: SQL: Answer with one SQLite query. "
    "Write a SQLite query that answers the question. CREATE TABLE PRIMARY KEY FOREIGN KEY REFERENCES "
    "INTEGER TEXT REAL NUMERIC SELECT FROM WHERE GROUP BY ORDER BY HAVING LIMIT JOIN ON AS AND OR NOT "
    "IN LIKE BETWEEN DISTINCT COUNT SUM AVG MIN MAX UNION INTERSECT EXCEPT DESC ASC ```sql ```"
)


@dataclass(frozen=True)
class TinySize:
    """Shape of a random-init Qwen2. ``vocab_size`` is the BPE target (special tokens included)."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    max_position_embeddings: int = 1024


#: tiny: ~1M parameters (tests, seconds per step); small: ~6M (the demo: learns the world's SQL
#: in a few minutes on 2 CPU cores).
SIZES: dict[str, TinySize] = {
    "tiny": TinySize(2048, 128, 512, 4, 4, 2),
    "small": TinySize(3072, 256, 768, 4, 8, 4),
}


def train_tokenizer(texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> Any:
    """Train a Qwen2-compatible byte-level BPE on ``texts`` and return a ``PreTrainedTokenizerFast``.

    Guarantees: the 3 special tokens get ids 0, 1, 2 (``<|endoftext|>``, ``<|im_start|>``,
    ``<|im_end|>``); all 256 byte symbols are in the vocabulary, so any text encodes (no unknown
    token); eos is ``<|im_end|>`` (what a chat model emits at the end of its answer) and pad is
    ``<|endoftext|>``.
    """
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, trainers
    from tokenizers.models import BPE

    if vocab_size < 256 + len(SPECIAL_TOKENS) + 1:
        raise ConfigError(f"vocab_size must exceed 259 (256 bytes + 3 special tokens), got {vocab_size}")
    tok = Tokenizer(
        BPE(
            dropout=None,
            unk_token=None,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
            byte_fallback=False,
        )
    )
    # Same pipeline as transformers' Qwen2Tokenizer.__init__, piece by piece.
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return _wrap(tok)


def _wrap(tok: Any) -> Any:
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        unk_token=None,
        bos_token=None,
        model_max_length=1024,
        padding_side="left",
        clean_up_tokenization_spaces=False,
        chat_template=CHATML_TEMPLATE,
    )
    return fast


def build_config(size: str | TinySize, vocab_size: int, tokenizer: Any) -> Any:
    """A random-init ``Qwen2Config`` of the given size whose special ids match ``tokenizer``."""
    from transformers import Qwen2Config

    shape = SIZES[size] if isinstance(size, str) else size
    return Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        max_position_embeddings=shape.max_position_embeddings,
        tie_word_embeddings=True,
        rope_theta=10000.0,
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=tokenizer.convert_tokens_to_ids(ENDOFTEXT),
        use_cache=True,
    )


def init_tiny_model(
    out_dir: str | Path,
    size: str | TinySize = "tiny",
    texts: Iterable[str] = (),
    *,
    vocab_size: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Train the tokenizer on ``texts`` (+ template words), build a random-init Qwen2, save both.

    Returns ``{"path", "parameters", "vocab_size", "size"}``. The folder reloads with
    ``AutoTokenizer``/``AutoModelForCausalLM`` offline; the weights are float32.
    """
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    if isinstance(size, str) and size not in SIZES:
        raise ConfigError(f"unknown model size {size!r}; choose one of {sorted(SIZES)}")
    shape = SIZES[size] if isinstance(size, str) else size
    corpus = [t for t in texts if t]
    corpus.append(TEMPLATE_WORDS)
    tokenizer = train_tokenizer(corpus, vocab_size or shape.vocab_size)
    # The model's embedding table is exactly as large as the trained vocabulary (BPE may stop
    # short of the target when the corpus is small).
    real_vocab = len(tokenizer)
    config = build_config(shape, real_vocab, tokenizer)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(
        eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id, do_sample=False
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out)
    _mark_qwen2(out)
    model.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    info = {"path": str(out), "parameters": n_params, "vocab_size": real_vocab, "size": str(size)}
    (out / "sqlcoach_model.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def _mark_qwen2(out: Path) -> None:
    """Record the tokenizer class as Qwen2's, so that any Qwen2 recipe treats it like the real one."""
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_class"] = "Qwen2Tokenizer"
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")


def world_corpus(world_dir: str | Path) -> list[str]:
    """Texts of a Spider-layout folder's *train split*: questions and SQL of train.json and the
    schema text (CREATE statements) of the databases train.json uses.

    Dev questions and dev-only databases are left out on purpose: the tokenizer is part of the
    model, and the model must never have seen the dev set. This also matters for learning: a word
    seen only in dev schemas would get its own token whose embedding is never trained, which a
    small model cannot learn to copy; left out, it splits into pieces that training did see.
    """
    root = Path(world_dir)
    texts: list[str] = []
    train = root / "train.json"
    if not train.exists():
        raise DataError("no train.json in the corpus folder", path=str(root))
    try:
        rows = json.loads(train.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON: {exc.msg}", path=str(train), line=exc.lineno) from exc
    train_dbs: set[str] = set()
    for row in rows:
        if isinstance(row, dict):
            texts.append(str(row.get("question", "")))
            texts.append(str(row.get("query", row.get("SQL", ""))))
            train_dbs.add(str(row.get("db_id", "")))
    import sqlite3

    for db in sorted((root / "database").glob("*/*.sqlite")):
        if db.parent.name not in train_dbs:
            continue
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            for (sql,) in con.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL"):
                texts.append(sql)
        finally:
            con.close()
    return texts


def training_corpus(world_dir: str | Path, *, prompt: PromptSettings | None = None) -> list[str]:
    """``world_corpus`` plus the rendered training prompts and completions of the folder's train
    split, so that the tokenizer merges exactly the text the model will be trained on.
    ``prompt``: the prompt settings (default: the defaults with no sample values). Returns
    ``(texts)``; the dev split is never read."""
    from sqlcoach.data import load_examples
    from sqlcoach.prompts.builder import PromptBuilder

    # The SFT rows exactly as training builds them (models must not import sqlcoach.train).
    builder = PromptBuilder.from_settings(prompt or PromptSettings(schema_sample_values=0))
    rows, _ = builder.sft_rows(load_examples("spider", world_dir, "train"))
    return world_corpus(world_dir) + [m["content"] for r in rows for m in r["prompt"] + r["completion"]]
