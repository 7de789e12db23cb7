"""The scorer's Python API: what ``sqlcoach evaluate`` does, for in-process use.

    from sqlcoach.metrics import evaluate_pairs
    report = evaluate_pairs(preds, [(gold_sql, db_id), ...], db_dir="spider/database",
                            tables_path="spider/tables.json", etype="all")
    print(report.table()); report.summary["all"]["ex"]

``etype``: ``exec`` (EX only), ``match`` (EM only), ``all`` (both). Hardness is always computed
from the gold. This module imports no torch/transformers: scoring stays light.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from sqlcoach.errors import ConfigError, DataError
from sqlcoach.execution.pool import ExecutorPool
from sqlcoach.execution.sandbox import Limits
from sqlcoach.metrics import bird as bird_metrics
from sqlcoach.metrics.em import start_em_and_hardness
from sqlcoach.metrics.ex import EX_MODES, ExItem, database_files, score_execution, synthetic_files
from sqlcoach.metrics.files import read_difficulties, read_gold, read_pred
from sqlcoach.metrics.report import format_table, summarize
from sqlcoach.runtime.files import atomic_write
from sqlcoach.types import Example, Verdict

ETYPES = ("all", "exec", "match")


@dataclass
class EvalReport:
    verdicts: list[Verdict]
    summary: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    preds: list[str] = field(default_factory=list)
    golds: list[str] = field(default_factory=list)

    def table(self) -> str:
        return format_table(self.summary)

    def rows(self) -> list[dict[str, Any]]:
        """Per-example records (what ``--per-example`` writes)."""
        out = []
        for v, p, g in zip(self.verdicts, self.preds, self.golds):
            row = {
                "index": v.index,
                "db_id": v.db_id,
                "hardness": v.hardness,
                "difficulty": v.difficulty,
                "ex": v.ex,
                "em": v.em,
                "error": v.error,
                "message": v.message,
                "seconds": round(v.seconds, 6),
                "pred": p,
                "gold": g,
            }
            row.update(v.extra)
            out.append(row)
        return out

    def write_per_example(self, path: str | Path) -> None:
        atomic_write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.rows()))

    def write_summary(self, path: str | Path) -> None:
        atomic_write(path, json.dumps(self.summary, indent=2, ensure_ascii=False) + "\n")


def _check_options(etype: str, mode: str) -> None:
    if etype not in ETYPES:
        raise ConfigError(f"unknown etype {etype!r}; choose one of {', '.join(ETYPES)}")
    if mode not in EX_MODES:
        raise ConfigError(f"unknown mode {mode!r}; choose one of {', '.join(EX_MODES)}")


def evaluate_pairs(
    preds: Sequence[str],
    golds: Sequence[tuple[str, str]],
    *,
    db_dir: str | Path | None = None,
    db_files: Sequence[Sequence[str]] | None = None,
    tables_path: str | Path | None = None,
    etype: str = "all",
    mode: str = "spider",
    keep_distinct: bool = False,
    plug_value: bool = False,
    timeout: float = 30.0,
    workers: int | None = None,
    pool: ExecutorPool | None = None,
    progress: bool = False,
    difficulties: Sequence[str | None] | None = None,
    interactions: Sequence[int] | None = None,
    ves_iterations: int | None = None,
    gold_errors: str = "count",
    explain: bool = True,
) -> EvalReport:
    """Score ``preds[i]`` against ``golds[i] = (gold_sql, db_id)``.

    Databases come from ``db_dir/<db_id>/`` (Spider layout) or, per example, from ``db_files``.
    ``pool``: reuse a caller's executor pool (its gold cache then spans calls); otherwise one is
    started for this call and closed after it. ``ves_iterations``: BIRD VES timing runs per query
    (default 10 in ``bird`` mode, off in ``spider`` mode; 0 turns it off). ``gold_errors``: ``count``
    (default, the official scorers' convention: a gold that fails counts as a wrong prediction) or
    ``exclude`` (left out of the denominator); the summary shows both figures either way.
    A database folder holding ``fills.json`` (synthetic fills) scores its examples test-suite
    style and marks an example ``unmeasurable`` when its gold returns no row on any fill.
    ``explain``: the EXPLAIN QUERY PLAN audit (``sqlcoach.metrics.plans``) of every executed prediction and gold,
    per example (``plan_pred``, ``plan_gold``, ``plan_worse``) and in ``summary["plans"]``.
    Never raises because of a prediction; raises ``ConfigError`` for bad options, ``DataError`` for lengths.
    """
    _check_options(etype, mode)
    if gold_errors not in ("count", "exclude"):
        raise ConfigError(f"gold_errors must be 'count' or 'exclude', got {gold_errors!r}")
    if len(preds) != len(golds):
        raise DataError(f"{len(preds)} predictions for {len(golds)} gold queries")
    t0 = time.perf_counter()
    n = len(golds)
    gold_sqls = [g for g, _ in golds]
    db_ids = [d for _, d in golds]
    if db_files is None:
        files_cache: dict[str, tuple[str, ...]] = {}
        files = []
        for d in db_ids:
            if d not in files_cache:
                files_cache[d] = database_files(db_dir, d, mode=mode)
            files.append(files_cache[d])
    else:
        files = [tuple(f) for f in db_files]
    warnings: list[str] = []
    missing = sorted({d for d, f in zip(db_ids, files) if not f})
    if missing and etype != "match":
        warnings.append(
            f"{len(missing)} database(s) not found ({', '.join(missing[:5])}"
            f"{', ...' if len(missing) > 5 else ''}): their examples are gold_error (counted as wrong unless gold_errors=exclude)"
        )

    # EM and hardness (pure-Python parsing) start first, in forked processes, so that they overlap
    # with execution instead of adding to it
    want_em = etype in ("all", "match")
    pending = start_em_and_hardness(
        preds, gold_sqls, db_ids, tables_path=str(tables_path) if tables_path else None,
        want_em=want_em, workers=workers,
    )
    if want_em and not tables_path:
        warnings.append("no tables.json given: EM does not merge columns linked by foreign keys")

    outcomes = None
    bird_extra: dict[str, Any] = {}
    plans: tuple[list[Any], list[Any]] | None = None
    if etype in ("all", "exec"):
        own_pool = pool is None
        if own_pool:
            pool = ExecutorPool(workers=workers, limits=Limits(timeout=timeout))
        try:
            # one look for fills.json per database, not per example (a Spider file has ~50 per database)
            scored_files = {f: synthetic_files(f) for f in dict.fromkeys(files)}
            items = [ExItem(p or "", g, *scored_files[f]) for p, g, f in zip(preds, gold_sqls, files)]
            outcomes = score_execution(
                items, pool=pool, mode=mode, keep_distinct=keep_distinct,
                plug_value=plug_value, progress=progress,
            )
            if mode == "bird":
                bird_extra = _bird_extras(outcomes, files, pool, ves_iterations, progress)
            if explain:
                plans = _plans(outcomes, preds, gold_sqls, files, pool, mode)
        finally:
            if own_pool:
                pool.close()
    em_hard = pending.result()

    verdicts: list[Verdict] = []
    for i in range(n):
        em, hard = em_hard[i]
        diff = difficulties[i] if difficulties else None
        if outcomes is None:
            # EM only: the gold is not executed, so gold_error cannot be known
            error = "no_sql" if not (preds[i] or "").strip() else None
            verdicts.append(Verdict(i, db_ids[i], False, em, hard, diff, error))
            continue
        o = outcomes[i]
        extra = {}
        if mode == "bird" and "soft_f1_each" in bird_extra:
            extra["soft_f1"] = round(bird_extra["soft_f1_each"][i], 6)
            if "ratios" in bird_extra:
                extra["time_ratio"] = round(bird_extra["ratios"][i], 6)
        if plans is not None:
            pp, gp = plans[0][i], plans[1][i]
            extra.update(plan_pred=pp, plan_gold=gp, plan_worse=_plan_worse(pp, gp) if o.ex else None)
        verdicts.append(
            Verdict(i, db_ids[i], o.ex, em, hard, diff, o.error, o.message, o.seconds, extra)
        )
    extra_summary: dict[str, Any] = {
        "config": {
            "etype": etype, "mode": mode, "keep_distinct": keep_distinct,
            "plug_value": plug_value, "timeout": timeout,
        },
    }
    if outcomes is None:
        extra_summary["note"] = "etype=match: EX not computed"
    if plans is not None:
        from sqlcoach.metrics.plans import summarize_plans

        extra_summary["plans"] = summarize_plans(plans[0], plans[1], [v.ex for v in verdicts])
    if bird_extra:
        extra_summary["bird"] = {k: v for k, v in bird_extra.items() if k not in ("soft_f1_each", "ratios")}
    summary = summarize(verdicts, interactions=interactions, extra=extra_summary, gold_errors=gold_errors)
    if outcomes is None:
        for block in [summary["all"], *summary["by_hardness"].values(), *summary.get("by_difficulty", {}).values()]:
            block["ex"] = None
        summary["executes"] = None
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    return EvalReport(verdicts, summary, warnings, list(preds), gold_sqls)


def _plans(outcomes: Sequence[Any], preds: Sequence[str], golds: Sequence[str], files: Sequence[Sequence[str]],
           pool: ExecutorPool, mode: str) -> tuple[list[Any], list[Any]]:
    """Plan features of every prediction that executed and every gold that executed, on the
    example's first database file. The SQL explained is the SQL as written (after the official
    scorer's lexical clean-up in spider mode, but keeping DISTINCT: its sort is part of the plan)."""
    from sqlcoach.metrics.ex import prepare
    from sqlcoach.metrics.plans import explain_plans

    pred_jobs: list[tuple[str, str] | None] = []
    gold_jobs: list[tuple[str, str] | None] = []
    for o, p, g, f in zip(outcomes, preds, golds, files):
        gold_ran = bool(f) and o.gold_result is not None and o.gold_result.ok
        pred_ran = gold_ran and o.error in (None, "wrong_result")
        wp, wg, _ = prepare(p or "", g or "", mode=mode, keep_distinct=True)
        pred_jobs.append((f[0], wp) if pred_ran else None)
        gold_jobs.append((f[0], wg) if gold_ran else None)
    return explain_plans(pool, pred_jobs), explain_plans(pool, gold_jobs, cache=True)


def _plan_worse(pp: Any, gp: Any) -> bool | None:
    from sqlcoach.metrics.plans import worse

    ok = isinstance(pp, dict) and isinstance(gp, dict) and "error" not in pp and "error" not in gp
    return worse(pp, gp) if ok else None


def _bird_extras(
    outcomes, files, pool: ExecutorPool, ves_iterations: int | None, progress: bool
) -> dict[str, Any]:
    scored = [i for i, o in enumerate(outcomes) if o.error != "gold_error"]
    f1 = [0.0] * len(outcomes)
    for i in scored:
        o = outcomes[i]
        pres = o.pred_result.rows if (o.pred_result is not None and o.pred_result.ok) else None
        gres = o.gold_result.rows if o.gold_result is not None else None
        f1[i] = bird_metrics.soft_f1(pres, gres) if pres is not None else 0.0
    out: dict[str, Any] = {
        "soft_f1": 100.0 * sum(f1[i] for i in scored) / len(scored) if scored else 0.0,
        "soft_f1_each": f1,
    }
    iters = 10 if ves_iterations is None else ves_iterations
    if iters > 0:
        # only correct predictions are timed (an incorrect one scores 0 in VES)
        jobs = [
            (files[i][0], o.pred_sql, o.gold_sql) if (o.ex and o.error != "gold_error") else None
            for i, o in enumerate(outcomes)
        ]
        ratios = bird_metrics.time_ratios(jobs, pool=pool, iterations=iters, progress=progress)
        scored_ratios = [ratios[i] for i in scored]
        out.update(
            ves=bird_metrics.ves(scored_ratios), r_ves=bird_metrics.r_ves(scored_ratios),
            iterations=iters, ratios=ratios,
        )
    return out


def example_database_files(ex: Example, mode: str) -> tuple[str, ...]:
    """Database files of one example: its folder's ``*.sqlite`` files (test-suite accuracy) when
    the folder is named after the database, as in Spider's layout; otherwise the file alone, so a
    folder of unrelated databases (e.g. materialised WikiSQL tables) is never mixed in."""
    if not ex.db_path:
        return ()
    p = Path(ex.db_path)
    if p.is_dir():
        return database_files(p.parent, p.name, mode=mode)
    if not p.is_file():
        return ()
    if p.parent.name == ex.db_id:
        return database_files(p.parent.parent, ex.db_id, mode=mode) or (str(p),)
    return (str(p),)


def evaluate_examples(
    examples: Sequence[Example], pred_sqls: Sequence[str], **kwargs: Any
) -> EvalReport:
    """Score predictions against loaded examples (``Example.gold_sql`` and ``Example.db_path``).

    Keyword arguments are those of ``evaluate_pairs`` (``db_dir``/``db_files`` are derived).
    Example difficulties (BIRD) are carried into the summary.
    """
    mode = kwargs.get("mode", "spider")
    files = [example_database_files(ex, mode) for ex in examples]
    golds = [(ex.gold_sql or "", ex.db_id) for ex in examples]
    diffs = [ex.difficulty for ex in examples]
    if "difficulties" not in kwargs and any(diffs):
        kwargs["difficulties"] = diffs
    return evaluate_pairs(pred_sqls, golds, db_files=files, **kwargs)


def evaluate_files(
    gold_path: str | Path,
    pred_path: str | Path,
    *,
    db_dir: str | Path | None,
    difficulty_path: str | Path | None = None,
    **kwargs: Any,
) -> EvalReport:
    """What the CLI calls: read the official-format files, then ``evaluate_pairs``."""
    gold, multi = read_gold(gold_path)
    preds, warnings = read_pred(pred_path, gold, multi)
    oracle = _oracle_history(pred_path)
    diffs = read_difficulties(difficulty_path, len(gold)) if difficulty_path else None
    report = evaluate_pairs(
        preds, [(g.sql, g.db_id) for g in gold], db_dir=db_dir, difficulties=diffs,
        interactions=[g.interaction for g in gold] if multi else None, **kwargs,
    )
    report.warnings[:0] = warnings
    if oracle:
        report.summary["oracle_history"] = True
        report.warnings.append(f"{pred_path} was predicted with history=gold: the earlier turns' gold SQL was in "
                               "every prompt (an oracle setting, not comparable with the field's numbers)")
    return report


def _oracle_history(pred_path: str | Path) -> bool:
    """True when ``sqlcoach predict`` recorded (``<pred>.meta.json``) that the prompts showed the
    earlier turns' gold SQL."""
    meta = Path(str(pred_path) + ".meta.json")
    if str(pred_path) == "-" or not meta.is_file():
        return False
    try:
        return bool(json.loads(meta.read_text(encoding="utf-8")).get("oracle_history"))
    except (OSError, ValueError, AttributeError):
        return False
