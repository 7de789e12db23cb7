"""Predict and score one model on a list of examples: the step the demo and the comparison share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from sqlcoach.prompts.settings import PromptSettings


@dataclass
class Scored:
    """A prediction run and its scores: ``predict``'s summary, the metrics report
    (``metrics.evaluate_examples``), the SQL lines, and the first few (question, prediction, gold,
    EX) rows for people to read."""

    predict: Any
    report: Any
    predictions: list[str]
    samples: list[dict[str, Any]]


def predict_and_score(
    model: Any,
    tokenizer: Any,
    examples: list[Any],
    pred_path: str | Path,
    *,
    prompt: PromptSettings,
    n: int = 1,
    temperature: float = 0.0,
    batch_size: int = 32,
    max_new_tokens: int = 96,
    seed: int = 0,
    tables_path: str | Path | None = None,
    progress: bool = True,
    samples: int = 8,
) -> Scored:
    """Predict every example afresh (``resume=False``: an older model's predictions in
    ``pred_path`` are never reused), then score EX/EM by hardness (Spider rules). ``prompt``: the
    model's prompt settings (``resolve_prompt(model, ...).prompt``)."""
    from sqlcoach.generate.predict import predict

    summ = predict(
        model, tokenizer, examples, pred_path, n=n, temperature=temperature, batch_size=batch_size,
        max_new_tokens=max_new_tokens, prompt=prompt, seed=seed, progress=progress, resume=False,
    )
    return score_predictions(summ, examples, pred_path, tables_path=tables_path, samples=samples)


def agent_predict_and_score(
    model: Any,
    tokenizer: Any,
    examples: list[Any],
    pred_path: str | Path,
    *,
    prompt: PromptSettings,
    agent: Any,
    batch_size: int = 32,
    max_new_tokens: int = 96,
    seed: int = 0,
    tables_path: str | Path | None = None,
    samples: int = 8,
    workers: int = 1,
) -> Scored:
    """``predict_and_score`` as an agent (``predict --agent`` semantics: ``generate.agent_predict``),
    greedy, one trajectory per example, with ``agent`` (a ``config.agent.AgentEval``) for its
    settings; ``max_new_tokens`` bounds one turn. The final answers are scored by
    ``score_predictions``; the summary (an ``AgentSummary``) gets ``recoveries`` and
    ``first_query_failed`` from those same verdicts (a failing first query whose final answer is
    right under this EX)."""
    import json

    from sqlcoach.generate.agent_predict import failed_first_query, predict_agent

    summ = predict_agent(model, tokenizer, examples, pred_path, config=agent.env(), temperature=0.0,
                         batch_size=batch_size, max_new_tokens=max_new_tokens, max_total_tokens=agent.max_total_tokens,
                         prompt=prompt, workers=workers, seed=seed, progress=False, instruction=agent.instruction)
    scored = score_predictions(summ, examples, pred_path, tables_path=tables_path, samples=samples)
    records = [json.loads(line) for line in Path(summ.jsonl_path).read_text().splitlines() if line.strip()]
    records.sort(key=lambda r: r["index"])
    failed = [bool(ex.gold_sql and ex.db_path) and failed_first_query(r) for r, ex in zip(records, examples)]
    summ.first_query_failed = sum(failed)
    summ.recoveries = sum(1 for f, v in zip(failed, scored.report.verdicts) if f and v.ex)
    return scored


def score_predictions(summ: Any, examples: list[Any], pred_path: str | Path, *, tables_path: str | Path | None = None,
                      samples: int = 8) -> Scored:
    """Score the SQL file ``pred_path`` (one line per example) against ``examples``: EX/EM by
    hardness under Spider rules, the EXPLAIN audit; every backend's predictions go through here."""
    from sqlcoach.generate.predict import read_sql_lines

    return score_sql(summ, examples, read_sql_lines(pred_path, len(examples)), tables_path=tables_path, samples=samples)


def score_sql(summ: Any, examples: list[Any], preds: list[str], *, tables_path: str | Path | None = None,
              samples: int = 8) -> Scored:
    """Score one SQL string per example (``preds``) against ``examples``, as ``score_predictions``
    scores a prediction file's lines."""
    from sqlcoach.metrics import evaluate_examples

    tables = str(tables_path) if tables_path and Path(tables_path).is_file() else None
    rep = evaluate_examples(examples, preds, etype="all", mode="spider", tables_path=tables)
    rows = [{"question": ex.question, "db_id": ex.db_id, "pred": p, "gold": ex.gold_sql, "ex": bool(v.ex), "error": v.error}
            for v, ex, p in list(zip(rep.verdicts, examples, preds))[:samples]]
    return Scored(predict=summ, report=rep, predictions=preds, samples=rows)


def api_predict_and_score(client: Any, examples: list[Any], pred_path: str | Path, *, prompt: PromptSettings,
                          max_new_tokens: int = 96, seed: int | None = 0,
                          concurrency: int = 4, tables_path: str | Path | None = None, progress: bool = True,
                          samples: int = 8) -> Scored:
    """``predict_and_score`` for a model behind an OpenAI-compatible endpoint (``client``, a
    ``generate.openai_client.ChatClient``): greedy, then scored by ``score_predictions``. Unlike
    local models it resumes (``resume=True``): the API backend's records are keyed by content
    (question + endpoint, model, decoding, prompt), so only answers to this very request are
    reused, and an interrupted comparison does not pay for its API calls twice. ``prompt`` is the
    whole settings object, as for a local model: the same settings give the same messages."""
    from sqlcoach.generate.api_backend import predict_api

    summ = predict_api(client, examples, pred_path, temperature=0.0, max_tokens=max_new_tokens, seed=seed,
                       prompt=prompt, concurrency=concurrency, resume=True, progress=progress)
    return score_predictions(summ, examples, pred_path, tables_path=tables_path, samples=samples)


def spread(pool: list[Any], n: int) -> list[Any]:
    """``n`` items evenly spread over ``pool`` (data files are grouped by database, so the first
    ``n`` would come from one or two databases)."""
    n = min(int(n), len(pool))
    return [pool[int(i * len(pool) / n)] for i in range(n)] if n else []


def stratified(pool: list[Any], n: int | None, key: Callable[[Any], Any] = lambda ex: ex.db_id) -> list[Any]:
    """``n`` items of ``pool`` with every database (``key``) represented in proportion to its share
    of the pool (largest remainder), each database's picks evenly spread over its items; returned
    in the pool's order. Deterministic. ``n=None`` or ``n >= len(pool)``: the whole pool. The
    comparison scores this sample instead of "the first N", which in a file written grouped by
    database would be one or two databases."""
    if n is None or n >= len(pool):
        return list(pool)
    groups: dict[Any, list[int]] = {}
    for i, item in enumerate(pool):
        groups.setdefault(key(item), []).append(i)
    quotas = {k: n * len(ix) / len(pool) for k, ix in groups.items()}
    take = {k: int(q) for k, q in quotas.items()}
    # the seats left go to the largest remainders (ties: the larger database, then pool order)
    order = sorted(groups, key=lambda k: (-(quotas[k] - take[k]), -len(groups[k])))
    for k in order[: n - sum(take.values())]:
        take[k] += 1
    picked = [ix[int(j * len(ix) / take[k])] for k, ix in groups.items() for j in range(take[k])]
    return [pool[i] for i in sorted(picked)]



@dataclass
class Selected:
    """A sampled run of one model and every selection among its samples, each scored.

    ``chosen``: the run ``predict`` wrote with the headline selector (``pred_path`` and its JSONL,
    whose records hold the samples, votes and the chosen candidate's score); ``by_selection``: name
    -> the picks of that selector among the same samples, scored like any prediction
    (``score_sql``; the headline's own entry is ``chosen``); ``headroom``: the
    ``metrics.headroom.HeadroomTable`` of the samples (greedy from ``greedy``, every selector,
    pass@k); ``sample_seconds``: the sampled prediction (generation, execution of every sample,
    the headline selection: what ``predict --n N --select HEADLINE`` costs); ``select_seconds``:
    executing the samples again (cached) and selecting with every other selector (scoring excluded)."""

    chosen: Scored
    by_selection: dict[str, Scored]
    headroom: Any
    sample_seconds: float
    select_seconds: float


def select_and_score(
    model: Any,
    tokenizer: Any,
    examples: list[Any],
    pred_path: str | Path,
    *,
    prompt: PromptSettings,
    greedy: Scored,
    selectors: dict[str, Any],
    headline: str,
    db_dir: str | Path,
    n: int,
    temperature: float,
    batch_size: int = 32,
    max_new_tokens: int = 96,
    seed: int = 0,
    tables_path: str | Path | None = None,
    samples: int = 8,
    timeout: float = 10.0,
) -> Selected:
    """Sample ``n`` answers per example (``predict`` with ``selectors[headline]``), then score the
    pick of every selector in ``selectors`` among the same samples (one prediction file each,
    ``<pred_path stem>.<name>.sql``) and the headroom table with ``greedy``'s predictions as its
    greedy row. Every selector sees what ``predict --select`` would give it: the samples' results
    on the example's database, the question, and the schema text of the prompt. The picks of each
    other selector are also written beside ``pred_path`` (one SQL per line) for people to read."""
    import time

    from sqlcoach.execution.pool import ExecutorPool
    from sqlcoach.execution.sandbox import Limits
    from sqlcoach.execution.select import Candidates
    from sqlcoach.generate.predict import predict
    from sqlcoach.metrics.ex import database_files
    from sqlcoach.metrics.headroom import headroom, read_samples
    from sqlcoach.prompts.builder import PromptBuilder
    from sqlcoach.runtime.files import atomic_write

    pred_path = Path(pred_path)
    t0 = time.monotonic()
    summ = predict(model, tokenizer, examples, pred_path, n=n, temperature=temperature, batch_size=batch_size,
                   max_new_tokens=max_new_tokens, prompt=prompt, seed=seed, progress=False, resume=False,
                   select=selectors[headline], timeout=timeout)
    sample_seconds = time.monotonic() - t0
    chosen = score_predictions(summ, examples, pred_path, tables_path=tables_path, samples=samples)
    drawn = read_samples(pred_path.with_suffix(".jsonl"), len(examples))  # [Q][n]
    builder = PromptBuilder.from_settings(prompt)
    schemas = [builder.lenient_schema_text(ex) for ex in examples]
    t0 = time.monotonic()
    picked: dict[str, list[str]] = {}
    with ExecutorPool(workers=1, limits=Limits(timeout=timeout)) as pool:
        results = [[pool.run_one(str(ex.db_path), s, cache=True) if s and ex.db_path else None for s in ss]
                   for ex, ss in zip(examples, drawn)]
        for name, sel in selectors.items():
            if name != headline:
                picked[name] = [" ".join(sel(Candidates.of(ss, rs, question=ex.question, schema_text=st)).sql.split())
                                for ex, ss, rs, st in zip(examples, drawn, results, schemas)]
        select_seconds = time.monotonic() - t0  # execution (cached) and selection only: scoring is not a cost of use
        by_selection: dict[str, Scored] = {headline: chosen}
        for name, picks in picked.items():
            atomic_write(pred_path.with_name(f"{pred_path.stem}.{name.replace('+', '_')}.sql"),
                         "".join(p + "\n" for p in picks))
            by_selection[name] = score_sql(summ, examples, picks, tables_path=tables_path, samples=samples)
        golds = [" ".join((ex.gold_sql or "").split()) for ex in examples]
        files = [database_files(db_dir, ex.db_id) for ex in examples]
        table = headroom(drawn, golds, files, [v.hardness for v in greedy.report.verdicts], pool=pool,
                         greedy=greedy.predictions, selectors=selectors, questions=[ex.question for ex in examples],
                         schema_texts=schemas)
    return Selected(chosen, by_selection, table, round(sample_seconds, 2), round(select_seconds, 2))
