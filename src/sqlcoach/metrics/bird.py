"""BIRD's metrics beyond EX: VES, R-VES and Soft-F1.

VES (Li et al., 2023): for each example whose result is correct, time the prediction and the gold
``iterations`` times, take the ratio gold_time / pred_time per iteration, drop ratios outside
mean ± 3·std (BIRD's ``clean_abnormal``), average, and score ``sqrt(ratio)``; incorrect examples
score 0. VES = 100 · mean over *all* examples.

R-VES (BIRD mini-dev's reward-based VES): the same averaged ratio put in buckets —
>= 2 → 1.25, [1, 2) → 1.0, [0.5, 1) → 0.75, [0.25, 0.5) → 0.5, < 0.25 → 0.25, incorrect → 0;
R-VES = 100 · mean.

Soft-F1 (BIRD mini-dev): rows of both results are de-duplicated and paired by position; within a
pair, a value present in both rows is a match, one only in the prediction a false positive, one
only in the gold a false negative, each divided by the gold row's width; unpaired rows count whole.
F1 of the summed counts. Departure from the official script: it de-duplicates through ``set()``,
so which rows get paired depends on Python's hash seed and the score changes from run to run; we
keep the order of first occurrence, which is deterministic and equals the official result whenever
the official one is stable (results already free of duplicates and compared in order).

Timing runs each query through the same sandboxed executor pool as EX, alternating gold and
prediction so that both see the same machine load. Timings on a shared machine are noisy:
report VES with the number of iterations, and compare runs made on the same machine.
"""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING, Sequence

from sqlcoach.errors import ConfigError

if TYPE_CHECKING:
    from sqlcoach.execution.pool import ExecutorPool


def clean_outliers(values: Sequence[float]) -> list[float]:
    """Keep values within mean ± 3·std (population std, as BIRD's numpy code computes it)."""
    if len(values) < 2:
        return list(values)
    mean = statistics.fmean(values)
    std = statistics.pstdev(values)
    kept = [v for v in values if mean - 3 * std <= v <= mean + 3 * std]
    return kept or list(values)


def r_ves_reward(ratio: float) -> float:
    """BIRD mini-dev's reward bucket for one time ratio (0 means incorrect)."""
    if ratio <= 0:
        return 0.0
    if ratio >= 2:
        return 1.25
    if ratio >= 1:
        return 1.0
    if ratio >= 0.5:
        return 0.75
    if ratio >= 0.25:
        return 0.5
    return 0.25


def time_ratios(
    jobs: Sequence[tuple[str, str, str] | None],
    *,
    pool: ExecutorPool,
    iterations: int = 10,
    progress: bool = False,
) -> list[float]:
    """Per job ``(db_file, pred_sql, gold_sql)`` the cleaned mean of gold_time / pred_time.

    ``None`` jobs (incorrect examples) get 0. A prediction that fails while being timed also gets 0.
    """
    if iterations < 1:
        raise ConfigError(f"VES iterations must be >= 1 (timing runs per query), got {iterations}")
    idx = [i for i, j in enumerate(jobs) if j is not None]
    flat: list[tuple[str, str]] = []
    for i in idx:
        db, pred, gold = jobs[i]  # type: ignore[misc]
        for _ in range(iterations):
            flat.append((db, gold))
            flat.append((db, pred))
    res = pool.run(flat, cache=False, progress="VES timing" if progress else False)
    out = [0.0] * len(jobs)
    for n, i in enumerate(idx):
        chunk = res[n * 2 * iterations : (n + 1) * 2 * iterations]
        ratios = []
        for g, p in zip(chunk[0::2], chunk[1::2]):
            if not (g.ok and p.ok):
                ratios = []
                break
            # clamp at the timer's resolution so that an instant query does not divide by zero
            ratios.append(max(g.seconds, 1e-6) / max(p.seconds, 1e-6))
        out[i] = statistics.fmean(clean_outliers(ratios)) if ratios else 0.0
    return out


def ves(ratios: Sequence[float]) -> float:
    return 100.0 * statistics.fmean(math.sqrt(r) for r in ratios) if ratios else 0.0


def r_ves(ratios: Sequence[float]) -> float:
    return 100.0 * statistics.fmean(r_ves_reward(r) for r in ratios) if ratios else 0.0


def _dedupe(rows: Sequence[tuple] | None) -> list[tuple]:
    return list(dict.fromkeys(tuple(r) for r in (rows or ())))


def soft_f1(pred_rows: Sequence[tuple] | None, gold_rows: Sequence[tuple] | None) -> float:
    """BIRD mini-dev's Soft-F1 of one prediction (see the module docstring). ``pred_rows=None``
    (the prediction failed) scores 0 unless the gold is empty too."""
    pred = _dedupe(pred_rows)
    gold = _dedupe(gold_rows)
    if not pred and not gold:
        return 1.0
    tp = fp = fn = 0.0
    for i, g in enumerate(gold):
        if i >= len(pred):
            fn += 1
            continue
        p = pred[i]
        width = len(g) or 1
        tp += sum(1 for v in p if v in g) / width
        fp += sum(1 for v in p if v not in g) / width
        fn += sum(1 for v in g if v not in p) / width
    fp += max(0, len(pred) - len(gold))
    precision = tp / (tp + fp) if tp + fp > 0 else 0.0
    recall = tp / (tp + fn) if tp + fn > 0 else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
