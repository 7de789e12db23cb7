"""Predict SQL through any OpenAI-compatible chat endpoint (``sqlcoach predict --backend openai``).

``predict_api(client, examples, out_path, ...)`` writes the same two files as
``sqlcoach.generate.predict.predict``:

* ``out_path``: one SQL per example, in example order (an empty line for an example without SQL,
  including one whose request failed: the scorer then counts it as ``no_sql``);
* ``out_path.with_suffix(".jsonl")``: one record per example, appended and flushed as each answer
  arrives: ``index, id, db_id, key, raw, sql, error, message, attempts, status, usage
  {prompt_tokens, completion_tokens}, finish_reason, seconds``. ``error`` is ``None`` or a class
  of ``openai_client.API_ERRORS``.

Every example gets a prediction or an error class: a failed request never stops the run.
Requests go out ``concurrency`` at a time with the client's retries, backoff and deadline
(``sqlcoach.generate.openai_client``). The prompt is ``PromptBuilder.prediction_messages`` sent
as chat messages (the server applies its own chat template); SQL is pulled out of the reply by
``sqlcoach.sql.extract.extract_sql`` as for local models.

Resume (``resume=True``) is keyed by content (``sqlcoach.generate.resume.resume_key``: the
example's identity + a hash of base URL, model, decoding and prompt settings): a record is kept
only when it succeeded and its key is this run's key for some example; failed examples and every
example whose settings changed are requested again. Without ``resume`` the files are replaced.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sqlcoach.errors import ConfigError
from sqlcoach.generate.openai_client import API_ERRORS, ChatClient, ChatResult, run_requests
from sqlcoach.prompts.settings import PromptSettings
from sqlcoach.runtime.files import atomic_write
from sqlcoach.types import Example


@dataclass
class ApiPredictSummary:
    """What an API prediction run did; ``errors`` counts the examples per error class (all of
    them, resumed ones included: a resumed record has none)."""

    examples: int
    predicted_now: int
    resumed: int
    seconds: float
    prompt_tokens: int
    completion_tokens: int
    usage_known: int  # examples whose response carried usage
    examples_per_s: float
    retries: int
    errors: dict[str, int]
    sql_path: str
    jsonl_path: str
    dropped: int = 0  # records of the JSONL not reused (failed, or other settings / examples)
    bad_lines: list[str] = field(default_factory=list)
    # the same names as PredictSummary, so that code reading either keeps working
    generated_tokens: int = 0
    tokens_per_s: float = 0.0

    def line(self) -> str:
        errs = ", ".join(f"{k} {v}" for k, v in self.errors.items() if v) or "none"
        return (f"requested {self.predicted_now} examples ({self.resumed} resumed from the JSONL) in {self.seconds:.1f}s: "
                f"{self.examples_per_s:.2f} examples/s, {self.retries} retries; tokens: {self.prompt_tokens} prompt + "
                f"{self.completion_tokens} completion ({self.usage_known} of {self.examples} with usage); errors: {errs}")


def api_settings(client: ChatClient, *, temperature: float, top_p: float, max_tokens: int, seed: int | None,
                 prompt: PromptSettings) -> dict[str, Any]:
    """The settings that decide an API answer: what the resume key hashes (every prompt setting:
    a record made under another value retrieval, budget or turn history is not this run's)."""
    return {"backend": "openai", "base_url": client.base_url, "model": client.model, "temperature": temperature,
            "top_p": top_p, "max_tokens": max_tokens, "seed": seed, **prompt.as_dict()}


def read_records(jsonl: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Every readable record of a JSONL (in file order) and ``path:line: reason`` per bad line."""
    recs: list[dict[str, Any]] = []
    bad: list[str] = []
    if not jsonl.exists():
        return recs, bad
    with jsonl.open(encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict) or not isinstance(rec.get("key"), str):
                    raise ValueError("no key")
            except ValueError as exc:
                bad.append(f"{jsonl}:{lineno}: unreadable record ({exc.__class__.__name__}); requesting it again")
                continue
            recs.append(rec)
    return recs, bad


def reusable(records: Sequence[dict[str, Any]], keys: Sequence[str],
             ok: Callable[[dict[str, Any]], bool] | None = None) -> dict[int, dict[str, Any]]:
    """index -> record to keep on resume: the last record per key that ``ok`` accepts (default: a
    successful prediction, ``error`` None and a ``sql`` string), for the keys of this run
    (re-indexed to this run's example order)."""
    ok = ok or (lambda rec: rec.get("error") is None and isinstance(rec.get("sql"), str))
    by_key: dict[str, dict[str, Any]] = {}
    for rec in records:
        if isinstance(rec.get("key"), str) and ok(rec):
            by_key[rec["key"]] = rec
    out = {}
    for i, k in enumerate(keys):
        if k in by_key:
            out[i] = dict(by_key[k], index=i)
    return out


@dataclass
class KeyedRun:
    """What ``run_keyed`` did: ``done`` holds every record of this run by index (kept and new)."""

    done: dict[int, dict[str, Any]]
    requested: list[int]  # the indices this run sent a request for
    resumed: int  # records kept from the JSONL
    dropped: int  # records of the JSONL not kept (failed, or another run's settings / examples)
    bad_lines: list[str]
    seconds: float


def run_keyed(jsonl: Path, keys: Sequence[str], call: Callable[[int], ChatResult],
              record: Callable[[int, ChatResult], dict[str, Any]], *, resume: bool, concurrency: int,
              desc: str | None, ok: Callable[[dict[str, Any]], bool] | None = None) -> KeyedRun:
    """The content-keyed request loop of API prediction and judging.

    Without ``resume`` the JSONL starts empty. With it, the records ``reusable(..., ok)`` keeps are
    the only ones left in the file (rewritten atomically) and only the other indices are
    requested. ``record(i, result)`` builds index ``i``'s record (``key`` is added); each is appended,
    flushed and fsynced as it arrives, so a killed run loses at most the requests in flight. Bad
    JSONL lines are returned as ``path:line: reason`` and printed as warnings; ``desc`` names a
    tqdm bar on stderr (``None``: no bar)."""
    from sqlcoach.generate.predict import _rewrite

    jsonl.parent.mkdir(parents=True, exist_ok=True)
    if not resume:
        jsonl.unlink(missing_ok=True)
    records, bad = read_records(jsonl)
    for b in bad:
        print(f"warning: {b}", file=sys.stderr)
    done = reusable(records, keys, ok)
    _rewrite(jsonl, [done[i] for i in sorted(done)])
    resumed = len(done)
    todo = [i for i in range(len(keys)) if i not in done]
    bar = None
    if desc is not None and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc=desc, unit="ex", file=sys.stderr)
    t0 = time.monotonic()
    with jsonl.open("a", encoding="utf-8") as fh:

        def on_result(i: int, res: ChatResult) -> None:
            rec = {**record(i, res), "key": keys[i]}
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            done[i] = rec

        try:
            run_requests(todo, call, on_result, concurrency=concurrency, progress=bar)
        finally:
            if bar is not None:
                bar.close()
    return KeyedRun(done=done, requested=todo, resumed=resumed, dropped=len(records) - resumed,
                    bad_lines=bad, seconds=time.monotonic() - t0)


def predict_api(
    client: ChatClient,
    examples: Sequence[Example],
    out_path: str | Path,
    *,
    temperature: float = 0.0,
    top_p: float = 1.0,
    max_tokens: int = 256,
    seed: int | None = None,
    prompt: PromptSettings | None = None,
    concurrency: int = 4,
    resume: bool = False,
    progress: bool = True,
) -> ApiPredictSummary:
    """Predict every example through ``client``; see the module docstring for files and resume.
    ``prompt`` (default ``PromptSettings()``) decides the messages, as for a local model: the same
    settings give the same ``PromptBuilder.prediction_messages``."""
    from sqlcoach.generate.predict import _choose, one_line, records_path
    from sqlcoach.generate.resume import resume_key, settings_hash
    from sqlcoach.prompts.builder import PromptBuilder
    from sqlcoach.sql.extract import extract_sql

    prompt = prompt or PromptSettings()
    if prompt.turn_history == "predicted" and any(ex.turns for ex in examples):
        # the local backend predicts wave by wave to show the model's own earlier SQL; this one
        # sends every request at once, so the turns would carry whatever SQL the data holds (gold)
        raise ConfigError("turn_history=predicted is not supported by the API backend (its requests are not "
                          "ordered by turn); use questions, or gold to show the gold SQL as an oracle")
    builder = PromptBuilder.from_settings(prompt)
    h = settings_hash(api_settings(client, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed,
                                   prompt=prompt))
    keys = [resume_key(ex, h) for ex in examples]
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    jsonl = records_path(out)
    if not resume:
        out.unlink(missing_ok=True)

    def call(i: int) -> ChatResult:
        return client.chat(builder.prediction_messages(examples[i]), max_tokens=max_tokens,
                           temperature=temperature, top_p=top_p, seed=seed)

    def record(i: int, res: ChatResult) -> dict[str, Any]:
        ex = examples[i]
        if res.ok:
            rec = _choose([i], [ex], [[res.text]], extract_sql, 1, None, prompt.template)[0]  # type: ignore[arg-type]
        else:
            rec = {"index": i, "id": ex.id, "db_id": ex.db_id, "raw": "", "sql": ""}
        rec.update(error=res.error, message=res.message, attempts=res.attempts, status=res.status,
                   usage=res.usage(), finish_reason=res.finish_reason, seconds=res.seconds)
        return rec

    run = run_keyed(jsonl, keys, call, record, resume=resume, concurrency=concurrency,
                    desc=f"predict ({client.model})" if progress else None)
    done = run.done
    retries = sum(max(0, int(done[i].get("attempts") or 1) - 1) for i in run.requested if i in done)
    secs = run.seconds
    lines = [one_line(done[i]["sql"]) if i in done else "" for i in range(len(examples))]
    atomic_write(out, "".join(line + "\n" for line in lines))
    errors = {e: 0 for e in API_ERRORS}
    for rec in done.values():
        if rec.get("error"):
            errors[rec["error"]] = errors.get(rec["error"], 0) + 1
    usages = [rec.get("usage") or {} for rec in done.values()]
    known = [u for u in usages if u.get("prompt_tokens") is not None and u.get("completion_tokens") is not None]
    comp = sum(int(u["completion_tokens"]) for u in known)
    return ApiPredictSummary(
        examples=len(examples), predicted_now=len(run.requested), resumed=run.resumed, seconds=round(secs, 3),
        prompt_tokens=sum(int(u["prompt_tokens"]) for u in known), completion_tokens=comp, usage_known=len(known),
        examples_per_s=round(len(run.requested) / secs, 3) if secs > 0 else 0.0, retries=retries, errors=errors,
        sql_path=str(out), jsonl_path=str(jsonl), dropped=run.dropped, bad_lines=run.bad_lines,
        generated_tokens=comp, tokens_per_s=round(comp / secs, 2) if secs > 0 else 0.0,
    )
