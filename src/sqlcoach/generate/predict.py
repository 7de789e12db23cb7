"""Predict SQL for a list of examples: prompts -> batched generation -> SQL -> (votes) -> files.

``predict(model, tokenizer, examples, out_path, ...)`` writes two files:

* ``out_path`` (Spider format): one SQL per example, in example order, newlines inside SQL
  collapsed to spaces, an empty line when no SQL came out;
* ``out_path.with_suffix(".jsonl")``: one record per example (index, id, db_id, raw outputs,
  extracted SQL of every sample, votes, chosen sample), appended and flushed chunk by chunk.

Multi-turn data (examples whose ``meta`` has an ``interaction``: SParC, CoSQL, CHASE) is written
in the official multi-turn layout: one line per turn, a blank line between interactions, and
``-- no SQL`` for a turn without SQL (a blank line would end the interaction). With
``turn_history="predicted"`` the turns are predicted wave by wave (every first turn, then every
second turn, ...) and each prompt shows the model's own SQL for the earlier turns; ``questions``
(default) shows the earlier questions only; ``gold`` the earlier gold SQL (an oracle: the summary
line and ``<out>.meta.json`` say so).

A run starts afresh by default: an existing ``out_path`` and its JSONL are replaced. With
``resume=True`` (``sqlcoach predict --resume``), a run after a crash skips the examples already in
the JSONL whose example identity and run key (model + decoding + prompt settings) match this
run's (``sqlcoach.generate.resume``); a torn last line is reported with file and line, and that
example is predicted again. A different run key starts afresh, says which settings differ, and
keeps the old JSONL as ``<jsonl>.stale``.
Prompts come from ``sqlcoach.prompts.builder.PromptBuilder.prediction_text``. With ``n > 1``
every sample is executed in the sandboxed pool and the answer is chosen by a selection rule
(``select``: ``vote``, the result-set vote, by default; ``first``, ``vote-nonempty``; the rules and
their ties are in ``sqlcoach.execution.select``); the record says which rule chose (``select``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlcoach.execution.select import DEFAULT_SELECTOR, Candidates, Selector, get_selector
from sqlcoach.generate.resume import write_meta
from sqlcoach.prompts.settings import PromptSettings
from sqlcoach.runtime.files import atomic_write
from sqlcoach.types import Example

if TYPE_CHECKING:
    from sqlcoach.prompts.builder import PromptBuilder


@dataclass
class PredictSummary:
    examples: int
    predicted_now: int
    resumed: int
    seconds: float
    generated_tokens: int
    prompt_tokens: int
    examples_per_s: float
    tokens_per_s: float
    sql_path: str
    jsonl_path: str
    bad_lines: list[str]
    run_key: str = ""
    turn_history: str = "questions"
    multi_turn: bool = False
    fresh_reason: str | None = None
    #: prompt tokens reused from a shared-prefix cache instead of being encoded again (HF ``prefix_cache``)
    cached_prompt_tokens: int = 0

    def line(self) -> str:
        oracle = "; ORACLE history: prompts showed the earlier turns' gold SQL" if self.multi_turn and self.turn_history == "gold" else ""
        return (
            f"predicted {self.predicted_now} examples ({self.resumed} resumed from the JSONL) in "
            f"{self.seconds:.1f}s: {self.examples_per_s:.2f} examples/s, {self.tokens_per_s:.1f} generated tokens/s{oracle}"
        )


#: what the multi-turn layout writes for a turn without SQL (a blank line would end the interaction)
NO_SQL_LINE = "-- no SQL"


def interaction_of(ex: Example) -> tuple[Any, Any] | None:
    """The interaction an example belongs to (multi-turn loaders set ``meta["interaction"]``)."""
    if ex.meta.get("interaction") is None:
        return None
    return (ex.meta.get("file"), ex.meta.get("interaction"))


def earlier_turns(examples: Sequence[Example]) -> list[list[int | None]]:
    """For each example, the indices of its interaction's earlier turns in ``examples``, in turn
    order (``None`` for a turn that is not in the list, e.g. cut by ``--limit``)."""
    where: dict[tuple[Any, Any, Any], int] = {}
    for i, ex in enumerate(examples):
        key = interaction_of(ex)
        if key is not None:
            where[(*key, ex.meta.get("turn", 0))] = i
    out: list[list[int | None]] = []
    for ex in examples:
        key = interaction_of(ex)
        out.append([where.get((*key, t)) for t in range(len(ex.turns))] if key is not None else [])
    return out


def sql_file_text(examples: Sequence[Example], sqls: Sequence[str]) -> str:
    """The prediction file: one line per example; for multi-turn data the official layout (a blank
    line between interactions, ``NO_SQL_LINE`` for an empty turn)."""
    multi = any(interaction_of(ex) is not None for ex in examples)
    lines: list[str] = []
    for i, (ex, sql) in enumerate(zip(examples, sqls)):
        line = one_line(sql)
        if multi:
            if i and interaction_of(ex) != interaction_of(examples[i - 1]):
                lines.append("")
            line = line or NO_SQL_LINE
        lines.append(line)
    return "".join(line + "\n" for line in lines)


def read_sql_lines(out_path: str | Path, n: int) -> list[str]:
    """The one-line SQL of each of the ``n`` examples of a ``predict`` run, read from its JSONL
    (index order; ``""`` where none), whatever the layout of the SQL file."""
    out = Path(out_path)
    done, _ = read_done(records_path(out))
    return [one_line(done[i]["sql"]) if i in done else "" for i in range(n)]


def records_path(out_path: str | Path) -> Path:
    """The JSONL of records beside a prediction file (``pred.sql`` -> ``pred.jsonl``; a file that
    is itself ``.jsonl`` gets ``.records.jsonl``)."""
    out = Path(out_path)
    return out.with_suffix(".jsonl") if out.suffix != ".jsonl" else out.with_suffix(".records.jsonl")


def append_records(jsonl: Path, records: list[dict[str, Any]]) -> None:
    """Append ``records`` to ``jsonl``, one JSON line each, flushed and fsynced: a crash loses at
    most the chunk in flight (the resume rule reads what is there)."""
    with jsonl.open("a", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def one_line(sql: str) -> str:
    """SQL on one line: every run of whitespace containing a newline/tab becomes one space."""
    return " ".join(sql.split())


def build_prompts(
    examples: Sequence[Example],
    tokenizer: Any,
    *,
    prompt: PromptSettings | None = None,
    builder: PromptBuilder | None = None,
) -> list[str]:
    """Chat-formatted prompt text of each example (schema text computed once per database).

    An example whose database cannot be read still gets a prompt (with an empty schema), so that
    one broken database never stops a prediction run; its SQL will be scored as whatever comes out.
    A thin wrapper over ``PromptBuilder.prediction_text``; pass ``builder`` (a ``PromptBuilder``)
    to share its schema cache across calls (``prompt`` is then its own)."""
    from sqlcoach.prompts.builder import PromptBuilder

    if builder is None:
        builder = PromptBuilder.from_settings(prompt or PromptSettings())
    return builder.prediction_texts(examples, tokenizer)


def read_done(jsonl_path: Path) -> tuple[dict[int, dict[str, Any]], list[str]]:
    """Records already written (by ``index``), and ``path:line: reason`` for each bad line."""
    done: dict[int, dict[str, Any]] = {}
    bad: list[str] = []
    if not jsonl_path.exists():
        return done, bad
    with jsonl_path.open(encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                idx = int(rec["index"])
                rec["sql"] = str(rec["sql"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                bad.append(f"{jsonl_path}:{lineno}: unreadable record ({exc.__class__.__name__}); predicting it again")
                continue
            done[idx] = rec
    return done, bad


def predict(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    out_path: str | Path,
    *,
    n: int = 1,
    temperature: float = 0.0,
    top_p: float = 1.0,
    batch_size: int = 8,
    max_new_tokens: int = 256,
    prompt: PromptSettings | None = None,
    model_id: Any = None,
    workers: int | None = None,
    timeout: float = 10.0,
    chunk_size: int | None = None,
    seed: int = 0,
    extract: Callable[[str], str | None] | None = None,
    progress: bool = True,
    generate_fn: Callable[..., Any] | None = None,
    resume: bool = False,
    select: str | Selector = DEFAULT_SELECTOR,
    prefix_cache: bool | None = None,
) -> PredictSummary:
    """Predict every example; see the module docstring for the files and the resume rule.

    ``resume=False`` (default): an existing ``out_path`` and its JSONL are deleted first and every
    example is predicted. ``resume=True``: the examples already in the JSONL are kept, not predicted
    again, when their example key and the run key match (``sqlcoach.generate.resume``).
    ``model_id``: the model's identity for the run key (a path or hub id, or a mapping; default
    the model's ``name_or_path``). ``prompt``: the prompt settings (default ``PromptSettings()``;
    a model's own are ``prompts.recipe.resolve_prompt(model, ...).prompt``).

    ``generate_fn`` replaces HF generation (same signature as ``generate.hf.generate_texts``; the
    vLLM backend plugs in here). ``extract`` turns raw text into SQL (default
    ``sqlcoach.sql.extract.extract_sql``; ``None`` from it means "no SQL"). ``select``: with
    ``n > 1``, the name of a rule of ``sqlcoach.execution.select.SELECTORS`` or a ``Selector``
    callable (a learned one); a name that is not a rule is a ``ConfigError`` before anything runs.
    ``prefix_cache``: HF generation encodes each batch's shared prompt prefix (system prompt +
    schema) once (``generate.hf.generate_texts``: ``None`` = on for greedy, where the output is
    the same)."""
    from sqlcoach.generate.hf import generate_texts
    from sqlcoach.prompts.builder import PromptBuilder

    # One builder (one schema cache) for the whole run; it checks template and schema style
    # before any file is touched.
    builder = PromptBuilder.from_settings(prompt or PromptSettings())
    selector, chosen_by = _selection(select, n)
    identity = _identity(model, model_id, builder, n=n, temperature=temperature, top_p=top_p,
                         max_new_tokens=max_new_tokens, seed=seed, generate_fn=generate_fn, **chosen_by)
    extract = extract or _extract_sql
    gen = generate_fn or partial(generate_texts, prefix_cache=prefix_cache)
    out, jsonl = Path(out_path), records_path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    done, bad, fresh_reason = _resumable(out, jsonl, examples, identity, resume)
    todo, resumed = [i for i in range(len(examples)) if i not in done], len(done)
    multi = any(interaction_of(ex) is not None for ex in examples)
    write_meta(out, identity, multi_turn=multi, oracle_history=multi and builder.turn_history == "gold")
    prev, chunks = _chunk_plan(examples, todo, builder, chunk_size, batch_size, gen)
    t0 = time.monotonic()
    decoding = dict(n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, batch_size=batch_size)
    with _vote_pool(workers, timeout) as pool, (progress_bar(len(todo), f"predict (n={n})")
                                                  if progress and todo else nullcontext()) as bar:
        gen_tokens, prompt_tokens, cached_tokens = _predict_chunks(
            chunks, examples, prev, done, jsonl,
            model=model, tokenizer=tokenizer, gen=gen, decoding=decoding, seed=seed, builder=builder, extract=extract,
            pool=pool, selector=selector, run_key=identity.key,
            on_batch=(lambda k: bar.update(k)) if bar is not None else None)
    secs = time.monotonic() - t0
    sqls = [done[i]["sql"] if i in done else "" for i in range(len(examples))]
    atomic_write(out, sql_file_text(examples, sqls))
    return PredictSummary(
        examples=len(examples), predicted_now=len(todo), resumed=resumed, seconds=round(secs, 3),
        generated_tokens=gen_tokens, prompt_tokens=prompt_tokens, cached_prompt_tokens=cached_tokens,
        examples_per_s=round(len(todo) / secs, 3) if secs > 0 else 0.0,
        tokens_per_s=round(gen_tokens / secs, 2) if secs > 0 else 0.0, sql_path=str(out), jsonl_path=str(jsonl),
        bad_lines=bad, run_key=identity.key, turn_history=builder.turn_history, multi_turn=multi,
        fresh_reason=fresh_reason)


def _chunk_plan(examples: Sequence[Example], todo: list[int], builder: Any, chunk_size: int | None, batch_size: int,
                gen: Any) -> tuple[list[list[int | None]], Any]:
    """The earlier turns of each example and the ``(start, ids)`` chunks of ``todo`` to generate.
    With predicted history, wave by wave (a turn's prompt needs the earlier turns' predictions;
    ``todo`` is sorted in place); a generator that schedules its own batches (vLLM) gets every
    prompt in one call."""
    prev = earlier_turns(examples)
    predicted = builder.turn_history == "predicted"
    if predicted:
        todo.sort(key=lambda i: (len(prev[i]), i))
    chunk = chunk_size or max(batch_size * 4, 16)
    if chunk_size is None and getattr(gen, "wants_all_prompts", False):
        chunk = max(len(todo), 1)
    return prev, _chunks(todo, chunk, prev if predicted else None)


def _selection(select: str | Selector, n: int) -> tuple[Selector, dict[str, str]]:
    """The selector of ``select`` (a rule name or a callable) and what it adds to the run key: its
    rule, only when it is not the default, so that the runs made before selection rules existed
    (all voted) still resume; a learned selector's ``key`` (rule + its folder) keeps runs chosen by
    two verifiers apart."""
    selector = get_selector(select) if isinstance(select, str) else select
    rule = select if isinstance(select, str) else (
        getattr(select, "key", None) or getattr(select, "__name__", type(select).__name__))
    return selector, ({"select": rule} if n > 1 and rule != DEFAULT_SELECTOR else {})


def _extract_sql(text: str) -> str | None:
    from sqlcoach.sql.extract import extract_sql

    return extract_sql(text)


def progress_bar(total: int, desc: str, unit: str = "ex") -> Any:
    """A tqdm bar on stderr (stdout stays for results); the caller closes it."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr)


def _vote_pool(workers: int | None, timeout: float) -> Any:
    """The executor pool of a run's votes, started by the first vote (a greedy run never starts it)."""
    from sqlcoach.execution.pool import LazyPool
    from sqlcoach.execution.sandbox import Limits

    return LazyPool(workers=workers, limits=Limits(timeout=timeout))


def _predict_chunks(chunks: Any, examples: Sequence[Example], prev: list[list[int | None]], done: dict[int, dict[str, Any]],
                    jsonl: Path, *, model: Any, tokenizer: Any, gen: Callable[..., Any], decoding: dict[str, Any],
                    seed: int, builder: Any, extract: Callable[[str], str | None], pool: Any, selector: Selector,
                    run_key: str, on_batch: Callable[[int], None] | None) -> tuple[int, int, int]:
    """Generate and choose the SQL of each ``(start, ids)`` chunk; each chunk's records are appended
    to ``jsonl`` (flushed and fsynced: a crash loses at most the chunk in flight) and put in
    ``done``. Returns (generated tokens, prompt tokens, prompt tokens read from the prefix cache)."""
    from sqlcoach.generate.resume import example_key

    predicted = builder.turn_history == "predicted"
    gen_tokens = prompt_tokens = cached_tokens = 0
    for start, ids in chunks:
        exs = [examples[i] for i in ids]
        if predicted:
            exs = [_with_predicted_turns(ex, prev[i], done) for i, ex in zip(ids, exs)]
        g = gen(model, tokenizer, build_prompts(exs, tokenizer, builder=builder), **decoding, seed=seed + start,
                on_batch=on_batch)
        gen_tokens += g.generated_tokens
        prompt_tokens += g.prompt_tokens
        cached_tokens += g.cached_prompt_tokens
        records = _choose(ids, exs, g.texts, extract, decoding["n"], pool, builder.template, selector,
                          schema_of=builder.lenient_schema_text if getattr(selector, "reads_schema", False) else None)
        for rec, ex in zip(records, exs):
            rec.update(example=example_key(examples[rec["index"]]), run_key=run_key)
            if predicted and ex.turns:
                rec["history_sql"] = [t.sql or "" for t in ex.turns]
        append_records(jsonl, records)
        for rec in records:
            done[rec["index"]] = rec
    return gen_tokens, prompt_tokens, cached_tokens


def _identity(model: Any, model_id: Any, builder: Any, *, generate_fn: Any, **decoding: Any) -> Any:
    """The run identity of a prediction run (``sqlcoach.generate.resume``)."""
    from sqlcoach.generate.resume import RunIdentity, model_identity

    if isinstance(model_id, dict):
        ident = dict(model_id)
    else:
        name = model_id if model_id is not None else (
            getattr(model, "name_or_path", None) or getattr(getattr(model, "config", None), "_name_or_path", None))
        ident = model_identity(name) if name else {"name": type(model).__name__}
    backend = "hf" if generate_fn is None else getattr(generate_fn, "__qualname__", type(generate_fn).__name__)
    return RunIdentity(ident, {**decoding, "backend": backend}, builder.settings())


def _resumable(out: Path, jsonl: Path, examples: Sequence[Example], identity: Any,
               resume: bool) -> tuple[dict[int, dict[str, Any]], list[str], str | None]:
    """``(records kept, bad lines, why nothing was kept)`` under the resume rule (module docstring)."""
    from sqlcoach.generate.resume import read_meta, resume_records, set_aside

    if not resume:  # a fresh run: nothing of an older run may be taken for this one's output
        for old in (out, jsonl):
            old.unlink(missing_ok=True)
        return {}, [], None
    done, bad = read_done(jsonl)
    for b in bad:
        print(f"warning: {b}", file=sys.stderr)
    decision = resume_records(done, examples, identity, read_meta(out))
    say = lambda m: print(m, file=sys.stderr)  # noqa: E731
    if decision.fresh_reason:
        say(f"not resuming from {jsonl}: {decision.fresh_reason}; predicting every example afresh")
        set_aside(jsonl, say)
        out.unlink(missing_ok=True)
        return {}, bad, decision.fresh_reason
    if decision.dropped:
        say(f"{decision.dropped} records of {jsonl} belong to other examples than those now at their index; predicting them again")
    if bad or decision.dropped or len(decision.kept) != len(done):
        # Rewrite the JSONL with only the kept records so that the file stays valid and current.
        _rewrite(jsonl, [decision.kept[i] for i in sorted(decision.kept)])
    return decision.kept, bad, None


def _chunks(todo: list[int], size: int, prev: list[list[int | None]] | None) -> Any:
    """``(start, ids)`` chunks of ``todo``; with ``prev`` (predicted history) a chunk never mixes
    turn depths, so that every earlier turn is predicted before a later turn's prompt is built."""
    start = 0
    while start < len(todo):
        ids = todo[start : start + size]
        if prev is not None:
            depth = len(prev[ids[0]])
            cut = next((k for k, i in enumerate(ids) if len(prev[i]) != depth), len(ids))
            ids = ids[:cut]
        yield start, ids
        start += len(ids)


def _with_predicted_turns(ex: Example, prev: list[int | None], done: dict[int, dict[str, Any]]) -> Example:
    """``ex`` whose earlier turns carry this run's own predicted SQL (``""`` when a turn was not
    predicted, e.g. outside ``--limit``), never the gold."""
    from dataclasses import replace

    from sqlcoach.types import Turn

    turns = tuple(Turn(t.question, (done[j]["sql"] if j is not None and j in done else "") or None)
                  for t, j in zip(ex.turns, prev))
    return replace(ex, turns=turns)


def _choose(
    ids: list[int],
    exs: list[Example],
    texts: list[list[str]],
    extract: Callable[[str], str | None],
    n: int,
    pool: Any,  # an execution.pool.LazyPool (or None when n == 1)
    template: str = "sql_terminal",
    selector: Selector | None = None,
    schema_of: Callable[[Example], str] | None = None,
) -> list[dict[str, Any]]:
    """One JSONL record per example; with n > 1 runs every distinct (db, SQL) once and lets
    ``selector`` (default: the vote) choose; ``schema_of(ex)``: the schema text a learned selector reads.
    ``sql`` is what runs on the database (placeholders of an anonymizing template mapped back);
    ``raw`` is the model's text as written."""
    from sqlcoach.prompts.templates import restore_sql

    sqls = [[restore_sql((extract(t) or "").strip(), ex, template) for t in outs] for ex, outs in zip(exs, texts)]
    results: dict[tuple[str, str], Any] = {}
    if n > 1:
        jobs = sorted({(ex.db_path, s) for ex, ss in zip(exs, sqls) if ex.db_path for s in ss if s})
        for job, res in zip(jobs, pool.run(list(jobs))):
            results[job] = res
    records = []
    for i, ex, outs, ss in zip(ids, exs, texts, sqls):
        rec: dict[str, Any] = {"index": i, "id": ex.id, "db_id": ex.db_id}
        if n == 1:
            rec.update(raw=outs[0], sql=ss[0])
        else:
            res = [results.get((ex.db_path, s)) if ex.db_path and s else None for s in ss]
            context = {"schema_text": schema_of(ex)} if schema_of is not None else {}
            v = (selector or get_selector(DEFAULT_SELECTOR))(Candidates.of(ss, res, question=ex.question, **context))
            rec.update(
                raw=outs[v.chosen] if v.chosen >= 0 else outs[0],
                sql=v.sql,
                samples=ss,
                raw_samples=outs,
                sample_errors=[getattr(r, "error", "not_run") if r is not None else "not_run" for r in res],
                votes=list(v.votes),
                chosen=v.chosen,
                fallback=v.fallback,
                select=v.rule,
            )
            if v.scores is not None:
                rec["scores"] = list(v.scores)
                rec["score"] = v.scores[v.chosen] if v.chosen >= 0 else None
        records.append(rec)
    return records


def _rewrite(path: Path, records: list[dict[str, Any]]) -> None:
    atomic_write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def read_predictions(jsonl_path: str | Path) -> list[Any]:
    """The JSONL as ``sqlcoach.types.Prediction`` records (sorted by index)."""
    from sqlcoach.types import Prediction

    done, _ = read_done(Path(jsonl_path))
    return [
        Prediction(
            index=i,
            db_id=str(r.get("db_id", "")),
            raw=str(r.get("raw", "")),
            sql=r["sql"],
            samples=tuple(r.get("samples", ())),
            votes=tuple(r.get("votes", ())),
        )
        for i, r in sorted(done.items())
    ]
