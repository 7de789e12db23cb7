"""A verifier: a causal LM with a one-output score head that reads a candidate's execution result.

What it reads (``verifier_text``), in this order, one text per candidate::

    schema:
    <the schema text the policy was prompted with, real names>
    question: <the question>
    SQL: <the candidate SQL, as it runs on the database>
    result:
    <render_result(its execution result) within result_budget tokens>

The result comes from ``sqlcoach.execution.render.render_result`` (the one renderer the agent's
observations and the pages use): columns, row count, the first rows, or the error class and
message; a timeout is rendered as ``error: timeout: ...``. The whole text is tokenised and, when
longer than ``max_length`` tokens, keeps its LAST ``max_length`` tokens: the schema is what gets
cut, never the result the score head reads last. The score is the head's logit on the last token:
``sigmoid(score)`` is the verifier's probability that the candidate's result is the gold's.

A verifier folder (``sqlcoach train verifier`` writes ``output_dir/final``) holds a
``AutoModelForSequenceClassification`` checkpoint with ``num_labels=1``, its tokenizer,
``sqlcoach_recipe.json`` (the policy's prompt settings, like every sqlcoach model folder) and
``sqlcoach_verifier.json`` (``VerifierSpec``: ``kind: verifier``, the input format, the result
budget, the length limit, the base model it was trained from). ``load_verifier`` refuses any other
folder with one ``ConfigError`` line (no spec, another kind, a head with more than one output).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlcoach.errors import ConfigError
from sqlcoach.execution.render import render_result, token_length
from sqlcoach.types import ExecResult

SPEC_FILE = "sqlcoach_verifier.json"
KIND = "verifier"
#: the input layout ``verifier_text`` writes; a folder trained on another layout is refused
INPUT_FORMAT = "schema-question-sql-result/v1"


@dataclass(frozen=True)
class VerifierSpec:
    """What a verifier folder records about its input (``SPEC_FILE``)."""

    base_model: str
    result_budget: int = 128
    max_length: int = 512
    kind: str = KIND
    input_format: str = INPUT_FORMAT
    policy_prompt: dict[str, Any] = field(default_factory=dict)  # the policy's prompt settings (schema text)

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / SPEC_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path


def read_spec(folder: str | Path) -> VerifierSpec:
    """The ``VerifierSpec`` of a verifier folder; ``ConfigError`` (one line) when it is not one."""
    p = Path(folder)
    if not p.is_dir():
        raise ConfigError(f"verifier folder not found: {p}")
    path = p / SPEC_FILE
    if not path.is_file():
        raise ConfigError(f"{p} is not a verifier: no {SPEC_FILE} (train one with `sqlcoach train verifier`)")
    try:
        data = json.loads(path.read_text())
        spec = VerifierSpec(**data)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not a readable verifier spec: {exc}") from None
    if spec.kind != KIND:
        raise ConfigError(f"{p} is a {spec.kind!r} folder, not a verifier")
    if spec.input_format != INPUT_FORMAT:
        raise ConfigError(f"{p} reads input format {spec.input_format!r}; this sqlcoach reads {INPUT_FORMAT!r}")
    return spec


def verifier_text(question: str, schema_text: str, sql: str, result: ExecResult | None, *,
                  result_budget: int, length: Any = None) -> str:
    """The text the verifier scores for one candidate (module docstring). ``length``: the budget's
    unit (a ``LengthFn``, e.g. ``token_length(tokenizer)``; characters by default). A candidate
    without SQL reads ``not run: no SQL``."""
    rendered = render_result(result if sql else None, budget=result_budget, length=length)
    return f"schema:\n{schema_text}\nquestion: {question}\nSQL: {' '.join(sql.split())}\nresult:\n{rendered}"


def encode(tokenizer: Any, text: str, max_length: int) -> list[int]:
    """Token ids of ``text`` plus the end-of-sequence token, the last ``max_length`` kept."""
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    return ids[-max_length:]


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


class Verifier:
    """A loaded verifier: ``score(items)`` -> one logit per ``(question, schema_text, sql, result)``.

    Identical texts are scored once, and the last ``cache_size`` scores are remembered (two
    selections of the same candidates, or a GRPO group's repeats, score once); batches are
    right-padded (the head reads the last real token). ``prefix_cache``: score from a cached shared
    prefix (``score_texts``); off by default, since the scores then agree only to float tolerance."""

    def __init__(self, model: Any, tokenizer: Any, spec: VerifierSpec, *, batch_size: int = 16, cache_size: int = 4096,
                 path: str = "", prefix_cache: bool = False):
        self.path = path  # the folder it was loaded from ("" when built in memory)
        self.model = model
        self.tokenizer = tokenizer
        self.spec = spec
        self.batch_size = batch_size
        self.prefix_cache = prefix_cache
        self.cache_size = cache_size
        self._cache: dict[str, float] = {}
        self._length = token_length(tokenizer)

    def text(self, question: str, schema_text: str, sql: str, result: ExecResult | None) -> str:
        return verifier_text(question, schema_text, sql, result, result_budget=self.spec.result_budget,
                             length=self._length)

    def score(self, items: Sequence[tuple[str, str, str, ExecResult | None]]) -> list[float]:
        texts = [self.text(*it) for it in items]
        unique = list(dict.fromkeys(texts))
        todo = [t for t in unique if t not in self._cache]
        if len(self._cache) + len(todo) > self.cache_size:
            self._cache.clear()  # a simple bound: forget everything rather than track recency
            todo = unique
        self._cache.update(zip(todo, score_texts(self.model, self.tokenizer, todo, max_length=self.spec.max_length,
                                                 batch_size=self.batch_size, prefix_cache=self.prefix_cache)))
        return [self._cache[t] for t in texts]


#: what one more batch costs, in input tokens, when the prefix cache plans the batches (a forward
#: pass's fixed cost on CPU); only how texts are grouped depends on it, never a score
SCORE_BATCH_OVERHEAD = 64


def score_texts(model: Any, tokenizer: Any, texts: Sequence[str], *, max_length: int, batch_size: int = 16,
                prefix_cache: bool = False) -> list[float]:
    """The score head's logit for each text (``encode``d), batched by similar length.

    ``prefix_cache`` (``sqlcoach.models.prefix_kv``): the texts are grouped by shared token prefix
    instead (``schema: ...`` is first: one database's candidates, and its other questions' too, share
    it), the prefix is encoded once per group and each text's rest is scored over a copy of its cache
    (``scores_from_prefix``). The scores are those of the same computation, summed in other blocks:
    equal to the plain ones within float tolerance (``tests/unit/generate/test_prefix_cache.py``:
    1e-4 absolute in float32), not bit for bit, hence off by default. A group whose cache cannot be
    used (``PrefixKV`` declines) is scored plainly."""
    import torch

    seqs = [encode(tokenizer, t, max_length) for t in texts]
    device = next(model.parameters()).device
    out = [0.0] * len(seqs)
    kv = None
    if prefix_cache:
        from sqlcoach.models.prefix_kv import PrefixKV, plan_batches

        kv = PrefixKV(model)
        batches = plan_batches(seqs, batch_size, batch_overhead=SCORE_BATCH_OVERHEAD)
    else:
        order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
        batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    with torch.inference_mode():
        for idx in batches:
            logits = scores_from_prefix(kv, [seqs[i] for i in idx]) if kv is not None else None
            if logits is None:
                batch = tokenizer.pad({"input_ids": [seqs[i] for i in idx]}, padding=True, return_tensors="pt")
                logits = model(input_ids=batch["input_ids"].to(device),
                               attention_mask=batch["attention_mask"].to(device)).logits
            for r, i in enumerate(idx):
                out[i] = float(logits[r, 0])
    return out


def pooled_index(row: Sequence[int], pad_id: int) -> int:
    """The position whose hidden state a sequence classifier's head reads: the rightmost token that
    is not ``pad_id`` (0 when every token is), transformers' rule for left and right padding alike."""
    for j in range(len(row) - 1, -1, -1):
        if row[j] != pad_id:
            return j
    return 0


def scores_from_prefix(kv: Any, rows: Sequence[Sequence[int]]) -> Any:
    """The head's logits ``[len(rows), 1]`` for ``rows`` (token ids), from the one-row cache of
    their shared prefix (``kv``: a ``models.prefix_kv.PrefixKV`` of a sequence classifier), or
    ``None`` when there is nothing to share or the cache declines (score them plainly then).

    The prefix stops before every row's pooled token (``pooled_index``), so that the head's own rule,
    applied to the rows' rests right-padded as ``[rest | pad...]``, picks the same token it picks in
    the whole row; the rests sit at positions ``p..`` after the prefix's ``0..p-1``, the padding is
    masked out, and every real token attends to the keys it attends to without the cache."""
    import torch

    from sqlcoach.models.prefix_kv import cache_kwarg, shared_prefix_len

    model = kv.model
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    pad_id = getattr(config, "pad_token_id", None)
    if pad_id is None or not kv.usable:
        return None
    p = min(shared_prefix_len(rows), *(pooled_index(r, pad_id) for r in rows))
    if p <= 0:
        return None
    prefix = kv.prefix(tuple(rows[0][:p]))
    if prefix is None:
        return None
    p = len(prefix.tokens)  # the kept prefix may be a shorter part of it
    device = next(model.parameters()).device
    width = max(len(r) for r in rows) - p
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), p + width), dtype=torch.long)
    mask[:, :p] = 1
    for i, r in enumerate(rows):  # [prefix | rest | pad...]: right padding, as without the cache
        rest = list(r[p:])
        ids[i, : len(rest)] = torch.tensor(rest, dtype=torch.long)
        mask[i, p : p + len(rest)] = 1
    pos = torch.arange(p, p + width, dtype=torch.long).expand(len(rows), width)
    kv.cached_tokens += p * len(rows) - p
    return model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=pos.to(device),
                 use_cache=True, **{cache_kwarg(): prefix.rows(len(rows))}).logits


def weights_sha256(folder: str | Path) -> str:
    """The sha256 of a model folder's weights: every top-level ``*.safetensors`` / ``*.bin`` file,
    by name, its name, size and bytes hashed in turn. Two folders with the same weights under the same
    file names give the same value; what a recipe records to say which verifier it was trained with."""
    import hashlib

    h = hashlib.sha256()
    files = sorted(f for f in Path(folder).iterdir() if f.is_file() and f.suffix in (".safetensors", ".bin"))
    if not files:
        raise ConfigError(f"{folder} is not a verifier: no weights (*.safetensors, *.bin)")
    for f in files:
        h.update(f"{f.name}\0{f.stat().st_size}\0".encode())  # name and length first: no two layouts hash alike
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def check_head(folder: str | Path) -> None:
    """``ConfigError`` unless ``folder/config.json`` is a sequence classifier with one output."""
    cfg_path = Path(folder) / "config.json"
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{folder} is not a verifier: no readable config.json ({exc.__class__.__name__})") from None
    archs = cfg.get("architectures") or []
    labels = len(cfg.get("id2label") or {}) or cfg.get("num_labels", 2)
    if not any(a.endswith("ForSequenceClassification") for a in archs) or labels != 1:
        raise ConfigError(f"{folder} is not a verifier: its head is {archs or 'unknown'} with {labels} outputs, "
                          "a verifier is a sequence classifier with one output")


def load_verifier(folder: str | Path, *, device: str = "auto", dtype: str = "auto", batch_size: int = 16,
                  prefix_cache: bool = False) -> Verifier:
    """The verifier in ``folder``; ``ConfigError`` (one line) when the folder is not one.
    ``prefix_cache``: score from cached shared prefixes (``score_texts``)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from sqlcoach.runtime.device import resolve_device, resolve_dtype

    spec = read_spec(folder)
    check_head(folder)
    dev = resolve_device(device)
    model = AutoModelForSequenceClassification.from_pretrained(str(folder), num_labels=1, dtype=resolve_dtype(dtype, dev))
    tok = AutoTokenizer.from_pretrained(str(folder))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    model.config.pad_token_id = tok.pad_token_id
    model.to(dev).eval()
    return Verifier(model, tok, spec, batch_size=batch_size, path=str(Path(folder).resolve()),
                    prefix_cache=prefix_cache)
