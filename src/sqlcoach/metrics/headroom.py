"""Headroom of a sampled prediction run: how much better than greedy could choosing among N samples do?

For a run with ``n > 1`` samples per question (``sqlcoach predict --n 8`` writes them into its
JSONL: one record per example with ``samples``, the extracted SQL of every sample), the table has
one row per figure and one column per hardness level (and ``all``), each cell with its question
count and a 95% interval:

* ``greedy``: the first sample (``predict`` puts no greedy answer first: it is one sample at the
  run's temperature), or a separate greedy prediction file when one is given;
* one row per selection rule of ``sqlcoach.execution.select`` (``first@n``, ``vote@n``,
  ``vote-nonempty@n``; a caller may pass other selectors, e.g. a verifier): the rule picks one
  sample per question from the samples' execution results on the question's database, exactly as
  ``predict --select`` would, and the pick is scored;
* ``pass@k`` for k = 1..n: the probability that at least one of k samples drawn without
  replacement from the n is correct, with the unbiased estimator of Chen et al. (2021,
  "Evaluating Large Language Models Trained on Code", eq. 1): per question
  ``1 - C(n-c, k) / C(n, k)`` where c of the n samples are correct, averaged over questions.
  pass@1 is the mean accuracy of one sample; pass@n is "some sample is correct".

Correctness is the project's EX (``sqlcoach.metrics.ex.score_execution``: the one comparer,
test-suite databases, DISTINCT and ``mode`` rules as ``sqlcoach evaluate``); each distinct SQL of
a question is scored once. Questions whose gold fails count as wrong (``gold_errors="count"``, the
official convention) or are left out (``"exclude"``); ``unmeasurable`` ones are always left out.

Intervals: Wilson for figures that are 0/1 per question (greedy, every selector, pass@n); for
pass@k with k < n the per-question value is a fraction, so the interval is a percentile bootstrap
over questions (``sqlcoach.metrics.stats.bootstrap_mean``). The ``vs greedy`` column is the paired
difference on the same questions (``stats.paired_difference``: bootstrap interval and McNemar's
exact p).

``headroom_files(gold, samples_jsonl, db_dir=...)`` is what ``sqlcoach evaluate`` calls (with
``--samples``, or by itself when the prediction file's ``predict`` JSONL beside it holds samples:
``samples_beside``) and what a report hooks in; ``headroom(...)`` is the in-memory form; both return a ``HeadroomTable``
(``.table()`` text, ``.as_dict()`` JSON).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlcoach.errors import DataError
from sqlcoach.execution.pool import ExecutorPool
from sqlcoach.execution.sandbox import Limits
from sqlcoach.execution.select import SELECTORS, Candidates, Selector
from sqlcoach.metrics.stats import Estimate, bootstrap_mean, paired_difference, wilson
from sqlcoach.types import HARDNESS_LEVELS


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one question: ``1 - C(n-c, k) / C(n, k)`` (Chen et al., 2021), computed
    as a product so that large n stays exact enough. ``0 <= c <= n``, ``1 <= k <= n``."""
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    # C(n-c, k) / C(n, k) = prod_{i = n-c+1}^{n} (1 - k / i)
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


@dataclass(frozen=True)
class HeadroomRow:
    """One figure of the table: ``cells[level]`` (``"all"`` and each hardness level present);
    ``vs_greedy``: its paired difference from greedy over all questions (selectors only)."""

    name: str
    what: str
    cells: dict[str, Estimate]
    vs_greedy: Any = None  # stats.PairedDifference
    # the figure per question (0/1 for greedy and selections, the expected value for pass@k < n), in
    # the table's question order: what ``HeadroomTable.difference`` pairs
    values: tuple[float, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "what": self.what, "cells": {k: v.as_dict() for k, v in self.cells.items()}}
        if self.vs_greedy is not None:
            out["vs_greedy"] = self.vs_greedy.as_dict()
        return out


@dataclass
class HeadroomTable:
    """The headroom of one sampled run: ``n`` samples per question over ``questions`` questions."""

    n: int
    questions: int
    levels: list[str]
    rows: list[HeadroomRow]
    greedy_source: str
    left_out: dict[str, int] = field(default_factory=dict)  # why questions were left out -> count

    def row(self, name: str) -> HeadroomRow:
        """The row called ``name``; ``KeyError`` naming the rows there are when none is."""
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"no row {name!r} in the headroom table (rows: {', '.join(r.name for r in self.rows)})")

    def difference(self, a: str, b: str, *, replicates: int = 2000) -> Any:
        """Row ``a`` minus row ``b`` on the same questions (``stats.paired_difference``: bootstrap
        interval, McNemar's p), e.g. ``difference("vote+verifier@8", "vote-nonempty@8")``: whether a
        learned selection beats a rule, not only greedy. ``KeyError`` naming the rows when either
        is not in the table."""
        return paired_difference([list(self.row(a).values)], [list(self.row(b).values)], replicates=replicates)

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "questions": self.questions, "levels": self.levels, "greedy": self.greedy_source,
                "left_out": self.left_out, "rows": [r.as_dict() for r in self.rows]}

    def table(self) -> str:
        """Fixed-width text: one line per figure, ``mean [lo, hi]`` per level, counts on top."""
        cols = self.levels
        first = self.rows[0].cells
        name_w = max(len("figure"), *(len(r.name) for r in self.rows)) + 2
        w = 20
        lines = [
            f"headroom: {self.questions} questions, {self.n} samples each; greedy = {self.greedy_source}; "
            "95% intervals (Wilson; bootstrap over questions for pass@k, k < n)",
            f"{'figure':<{name_w}}" + "".join(f"{c:>{w}}" for c in cols) + "   vs greedy (all questions)",
            f"{'questions':<{name_w}}" + "".join(f"{first[c].questions:>{w}}" for c in cols),
        ]
        for r in self.rows:
            cells = "".join(f"{_fmt(r.cells[c]):>{w}}" for c in cols)
            d = r.vs_greedy
            diff = f"{d.mean:+.3f} [{d.lo:+.3f},{d.hi:+.3f}] p={d.p_mcnemar:.2g}" if d is not None else ""
            lines.append(f"{r.name:<{name_w}}{cells}   {diff}".rstrip())
        if self.left_out:
            lines.append("left out: " + ", ".join(f"{k} {v}" for k, v in sorted(self.left_out.items())))
        return "\n".join(lines)


def _fmt(e: Estimate) -> str:
    return f"{e.mean:.3f} [{e.lo:.2f},{e.hi:.2f}]"


def headroom(
    samples: Sequence[Sequence[str]],
    golds: Sequence[str],
    files: Sequence[Sequence[str]],
    hardness: Sequence[str | None],
    *,
    pool: ExecutorPool,
    greedy: Sequence[str] | None = None,
    selectors: Mapping[str, Selector] | None = None,
    questions: Sequence[str] | None = None,
    schema_texts: Sequence[str] | None = None,
    mode: str = "spider",
    keep_distinct: bool = False,
    gold_errors: str = "count",
    replicates: int = 2000,
) -> HeadroomTable:
    """The headroom table of ``samples[q]`` (the n sampled SQL of question q, ``""`` where none)
    against ``golds[q]`` on the database files ``files[q]`` (the first one is where selectors see
    results, as ``predict`` votes on the example's database). ``greedy[q]``: a separate greedy
    answer (default: ``samples[q][0]``). ``selectors``: name -> selector (default: every rule of
    ``execution.select.SELECTORS``); ``questions`` / ``schema_texts``: what a learned selector (a
    verifier) reads besides the results. Raises ``DataError`` when the lengths disagree or the
    questions do not all have the same n >= 2 samples."""
    from sqlcoach.metrics.ex import ExItem, score_execution, synthetic_files

    nq = len(samples)
    if not (len(golds) == len(files) == len(hardness) == nq) or (greedy is not None and len(greedy) != nq):
        raise DataError(f"headroom: {nq} sampled questions, {len(golds)} golds, {len(files)} database entries, "
                        f"{len(hardness)} hardness labels" + (f", {len(greedy)} greedy answers" if greedy is not None else ""))
    ns = sorted({len(s) for s in samples})
    if not ns or ns[0] < 2 or len(ns) > 1:
        raise DataError(f"headroom needs the same number (>= 2) of samples for every question; found {ns or 'none'}")
    n = ns[0]
    selectors = dict(SELECTORS if selectors is None else selectors)

    # 1. EX of every distinct (question, SQL), greedy answers included: [q] -> {sql: outcome}
    keys = sorted({(q, s) for q in range(nq) for s in [*samples[q], *([greedy[q]] if greedy is not None else [])]})
    items = [ExItem(s, golds[q], *synthetic_files(tuple(files[q]))) for q, s in keys]
    outcomes = score_execution(items, pool=pool, mode=mode, keep_distinct=keep_distinct)
    verdict = {k: o for k, o in zip(keys, outcomes)}

    # 2. Which questions count: unmeasurable never; gold_error under "count" only (as wrong)
    left_out: dict[str, int] = {}
    kept: list[int] = []
    for q in range(nq):
        # an empty sample never runs the gold, so any sample may be the one that saw it fail
        errs = {verdict[(q, s)].error for s in samples[q]}
        err = next((e for e in ("unmeasurable", "gold_error") if e in errs), None)
        if err == "unmeasurable" or (err == "gold_error" and gold_errors == "exclude"):
            left_out[err] = left_out.get(err, 0) + 1
        else:
            kept.append(q)
    if not kept:
        raise DataError(f"headroom: no question left to score ({left_out})")
    correct = [[verdict[(q, s)].ex for s in samples[q]] for q in kept]  # [Q][n]

    # 3. Execution results for the selectors: every distinct SQL once, on the first database file
    jobs = sorted({(files[q][0], s) for q in kept if files[q] for s in samples[q] if s})
    results = dict(zip(jobs, pool.run(jobs, cache=True)))
    ctx = list(questions) if questions is not None else [""] * nq
    schemas = list(schema_texts) if schema_texts is not None else [""] * nq

    per_q: dict[str, list[float]] = {}  # figure -> 0/1 or fraction per kept question
    per_q["greedy"] = [float(verdict[(q, greedy[q] if greedy is not None else samples[q][0])].ex) for q in kept]
    for name, sel in selectors.items():
        col = []
        for qi, q in enumerate(kept):
            res = [results.get((files[q][0], s)) if files[q] and s else None for s in samples[q]]
            pick = sel(Candidates.of(samples[q], res, question=ctx[q], schema_text=schemas[q]))
            col.append(float(pick.chosen >= 0 and correct[qi][pick.chosen]))
        per_q[f"{name}@{n}"] = col
    for k in range(1, n + 1):
        per_q[f"pass@{k}"] = [pass_at_k(n, sum(c), k) for c in correct]

    levels = [h for h in HARDNESS_LEVELS if any(hardness[q] == h for q in kept)]
    levels += sorted({hardness[q] for q in kept} - set(levels) - {None})  # type: ignore[arg-type]
    levels.append("all")
    members = {lv: [i for i, q in enumerate(kept) if lv == "all" or hardness[q] == lv] for lv in levels}
    rows = []
    for name, vals in per_q.items():
        binary = not name.startswith("pass@") or name == f"pass@{n}"
        cells = {lv: _estimate([vals[i] for i in idx], binary, replicates) for lv, idx in members.items()}
        vs = None
        if name in {f"{s}@{n}" for s in selectors}:
            vs = paired_difference([vals], [per_q["greedy"]], replicates=replicates)
        rows.append(HeadroomRow(name, _WHAT.get(name.split("@")[0], "a selector's pick"), cells, vs, tuple(vals)))
    return HeadroomTable(n, len(kept), levels, rows, "a separate greedy file" if greedy is not None else "sample 1",
                         left_out)


_WHAT = {
    "greedy": "the greedy answer (sample 1 unless a greedy file is given)",
    "first": "the first sample that runs",
    "vote": "majority vote by execution result",
    "vote-nonempty": "majority vote among the samples that return rows",
    "verifier": "the sample a trained verifier scores highest (reading its result)",
    "vote+verifier": "vote weighted by the verifier's probabilities",
    "pass": "unbiased pass@k (Chen et al. 2021)",
}


def _estimate(vals: list[float], binary: bool, replicates: int) -> Estimate:
    if binary:
        k = int(sum(vals))
        lo, hi = wilson(k, len(vals))
        return Estimate(k / len(vals), lo, hi, len(vals), 1)
    return bootstrap_mean([vals], replicates=replicates)


def read_samples(path: str | Path, count: int) -> list[list[str]]:
    """The ``samples`` of each of ``count`` examples from a ``predict`` JSONL, in index order.

    Strict (it feeds a score): a line that is not a JSON record with an integer ``index`` in
    ``[0, count)`` and a list of strings ``samples``, a repeated index, or a missing one is a
    ``DataError`` naming the file and line."""
    p = Path(path)
    if not p.is_file():
        raise DataError("file not found", str(p))
    out: dict[int, list[str]] = {}
    with p.open(encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                idx = rec["index"]
                samples = rec["samples"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DataError(f"not a sampled prediction record ({exc.__class__.__name__}: {exc}); "
                                "sampled runs come from `sqlcoach predict --n N` with N > 1", str(p), lineno) from None
            if not isinstance(idx, int) or not 0 <= idx < count:
                raise DataError(f"index {idx!r} is not an example index in [0, {count})", str(p), lineno)
            if not isinstance(samples, list) or not all(isinstance(s, str) for s in samples):
                raise DataError("'samples' must be a list of SQL strings", str(p), lineno)
            if idx in out:
                raise DataError(f"index {idx} appears twice", str(p), lineno)
            out[idx] = [" ".join(s.split()) for s in samples]
    missing = [i for i in range(count) if i not in out]
    if missing:
        raise DataError(f"{len(missing)} of {count} examples have no record (first: index {missing[0]})", str(p))
    return [out[i] for i in range(count)]


def headroom_files(
    gold_path: str | Path,
    samples_path: str | Path,
    *,
    db_dir: str | Path,
    greedy_path: str | Path | None = None,
    mode: str = "spider",
    keep_distinct: bool = False,
    gold_errors: str = "count",
    timeout: float = 30.0,
    workers: int | None = None,
    pool: ExecutorPool | None = None,
) -> HeadroomTable:
    """The headroom table of a ``predict`` JSONL (``samples_path``) against a gold file
    (``SQL<TAB>db_id`` lines) and a database folder: what ``sqlcoach evaluate --samples`` prints and
    what a report hooks in. ``greedy_path``: a greedy prediction file (one SQL per line) for the
    greedy row. ``pool``: reuse a caller's executor pool."""
    from sqlcoach.metrics.em import em_and_hardness
    from sqlcoach.metrics.ex import database_files
    from sqlcoach.metrics.files import read_gold, read_pred

    gold, multi = read_gold(gold_path)
    samples = read_samples(samples_path, len(gold))
    greedy = read_pred(greedy_path, gold, multi)[0] if greedy_path is not None else None
    sqls = [g.sql for g in gold]
    db_ids = [g.db_id for g in gold]
    memo: dict[str, tuple[str, ...]] = {}
    for d in db_ids:
        if d not in memo:
            memo[d] = database_files(db_dir, d, mode=mode)
    files = [memo[d] for d in db_ids]
    hard = [h for _, h in em_and_hardness(sqls, sqls, db_ids, tables_path=None, want_em=False, workers=workers)]
    own = pool is None
    pool = pool or ExecutorPool(workers=workers, limits=Limits(timeout=timeout))
    try:
        return headroom(samples, sqls, files, hard, pool=pool, greedy=greedy, mode=mode,
                        keep_distinct=keep_distinct, gold_errors=gold_errors)
    finally:
        if own:
            pool.close()


def samples_beside(pred_path: str | Path, preds: Sequence[str]) -> tuple[Path | None, str | None]:
    """``(the predict JSONL beside a prediction file, None)`` when ``pred_path`` was written by
    ``sqlcoach predict --n N`` (N > 1): ``X.jsonl`` beside ``X.sql`` holds a record with ``samples``
    for every example, and its chosen SQL equals ``preds`` line for line (so it is this file's run,
    not a stale one). Otherwise ``(None, why)``, ``why`` being ``None`` when there is simply no
    sampled JSONL there and a warning when there is one that does not match."""
    p = Path(pred_path)
    if str(pred_path) == "-" or p.suffix == ".jsonl":
        return None, None
    jsonl = p.with_suffix(".jsonl")
    if not jsonl.is_file():
        return None, None
    chosen: dict[int, str] = {}
    try:
        with jsonl.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    continue
                rec = json.loads(line)
                if len(rec.get("samples") or ()) < 2:
                    return None, None  # a greedy run's JSONL: nothing to measure
                chosen[int(rec["index"])] = " ".join(str(rec.get("sql", "")).split())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None, f"{jsonl}: not a readable predict JSONL; no headroom table (pass --samples to insist)"
    if [chosen.get(i) for i in range(len(preds))] != [" ".join(s.split()) for s in preds] or len(chosen) != len(preds):
        return None, (f"{jsonl} holds samples but its chosen SQL differs from {p}: not the same run, "
                      "no headroom table (pass --samples to insist)")
    return jsonl, None
