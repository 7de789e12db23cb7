"""Tiny offline models: the tokenizer reloads identically as a Qwen2 tokenizer, the model reloads
offline, and the chat template marks the assistant's tokens for TRL's assistant-only loss."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from sqlcoach.errors import ConfigError  # noqa: E402
from sqlcoach.models.tiny import (  # noqa: E402
    ENDOFTEXT,
    IM_END,
    IM_START,
    SIZES,
    TinySize,
    init_tiny_model,
    train_tokenizer,
    world_corpus,
)

CORPUS = [
    "How many singers are there?",
    "SELECT count(*) FROM singer",
    "List the names of stadiums in Berlin, ordered by capacity.",
    "SELECT name FROM stadium WHERE city = 'Berlin' ORDER BY capacity DESC",
    "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, age INTEGER)",
] * 20
TINY = TinySize(vocab_size=400, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256)
TRICKY = [
    "SELECT name FROM singer WHERE name = 'O''Brien' AND age >= 30;",
    "Héllo wörld — naïve café\n\n\tindented   spaces  ",
    "emoji 🤖 and CJK 数据库 and digits 1234567890",
    "  leading and trailing  \r\n",
    "",
]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    info = init_tiny_model(out, TINY, CORPUS, seed=0)
    return out, info


def test_special_tokens_have_fixed_ids_and_roles():
    tok = train_tokenizer(CORPUS, 350)
    assert tok.convert_tokens_to_ids([ENDOFTEXT, IM_START, IM_END]) == [0, 1, 2]
    assert tok.eos_token == IM_END and tok.pad_token == ENDOFTEXT
    # Every byte is in the vocabulary: unseen text still encodes, with no unknown token.
    ids = tok("ż∑🤖")["input_ids"]
    assert ids and tok.decode(ids) == "ż∑🤖"


def test_vocab_size_too_small_is_a_config_error():
    with pytest.raises(ConfigError, match="vocab_size"):
        train_tokenizer(CORPUS, 100)


def test_reload_offline_is_identical(tiny_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, info = tiny_dir
    before = train_tokenizer(CORPUS + [__import__("sqlcoach.models.tiny", fromlist=["x"]).TEMPLATE_WORDS], TINY.vocab_size)
    after = AutoTokenizer.from_pretrained(out)
    assert type(after).__name__ == "Qwen2Tokenizer"  # transformers rebuilt it as Qwen2's own
    assert len(after) == info["vocab_size"]
    for text in TRICKY + CORPUS[:5]:
        ids = before(text)["input_ids"]
        assert after(text)["input_ids"] == ids, text
        assert after.decode(ids) == text
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.model_type == "qwen2"
    assert model.config.vocab_size == info["vocab_size"]
    assert model.config.eos_token_id == after.convert_tokens_to_ids(IM_END)
    assert sum(p.numel() for p in model.parameters()) == info["parameters"]
    meta = json.loads((out / "sqlcoach_model.json").read_text())
    assert meta["parameters"] == info["parameters"]


def test_chat_template_marks_assistant_tokens(tiny_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir[0])
    msgs = [{"role": "user", "content": "How many singers?"}, {"role": "assistant", "content": "SELECT count(*) FROM singer"}]
    text = tok.apply_chat_template(msgs, tokenize=False)
    assert text == "<|im_start|>user\nHow many singers?<|im_end|>\n<|im_start|>assistant\nSELECT count(*) FROM singer<|im_end|>\n"
    gen = tok.apply_chat_template(msgs[:1], tokenize=False, add_generation_prompt=True)
    assert gen == "<|im_start|>user\nHow many singers?<|im_end|>\n<|im_start|>assistant\n"
    enc = tok.apply_chat_template(msgs, return_assistant_tokens_mask=True, return_dict=True)
    marked = [i for i, m in zip(enc["input_ids"], enc["assistant_masks"]) if m]
    # exactly the answer and its closing <|im_end|> (what the model must learn to emit)
    assert tok.decode(marked) == "SELECT count(*) FROM singer<|im_end|>"


def test_sizes_are_in_their_parameter_ranges():
    from transformers import AutoModelForCausalLM

    from sqlcoach.models.tiny import build_config

    tok = train_tokenizer(CORPUS, 350)
    counts = {}
    for name, shape in SIZES.items():
        model = AutoModelForCausalLM.from_config(build_config(shape, shape.vocab_size, tok))
        counts[name] = sum(p.numel() for p in model.parameters())
    assert 1e6 <= counts["tiny"] <= 3e6, counts
    assert 3e6 <= counts["small"] <= 20e6, counts


def test_unknown_size_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown model size"):
        init_tiny_model(tmp_path, "huge", CORPUS)


def test_world_corpus_reads_the_train_split_only(tmp_path):
    import sqlite3

    (tmp_path / "train.json").write_text(json.dumps([{"question": "Q train?", "query": "SELECT 1", "db_id": "a"}]))
    (tmp_path / "dev.json").write_text(json.dumps([{"question": "SECRET dev question", "query": "SELECT 2", "db_id": "b"}]))
    for db in ("a", "b"):
        (tmp_path / "database" / db).mkdir(parents=True)
        con = sqlite3.connect(tmp_path / "database" / db / f"{db}.sqlite")
        con.execute(f"CREATE TABLE t_{db} (x INTEGER)")
        con.commit()
        con.close()
    texts = world_corpus(tmp_path)
    assert "Q train?" in texts and "SELECT 1" in texts
    assert any("t_a" in t for t in texts)
    assert not any("SECRET" in t or "t_b" in t for t in texts)  # nothing of the dev split
