"""Uncertainty for accuracy figures: confidence intervals and paired tests over questions and seeds.

Every function takes per-question 0/1 outcomes (EX verdicts) as ``scores[seed][question]``: one
row per training seed, the same questions in the same order in every row (and, for the paired
functions, in both methods). Pure Python (the scoring-only install has no numpy or scipy), and
deterministic: resampling uses ``random.Random(seed)``.

- ``wilson(k, n)``: the Wilson score interval of one proportion (one seed, no resampling).
- ``bootstrap_mean(scores)``: mean accuracy with a percentile interval from a two-level bootstrap
  that resamples questions and, when there are several, seeds (both with replacement), so the
  interval carries both the question sample's and the training run's variance.
- ``paired_difference(a, b)``: method ``a`` minus method ``b`` on the same questions: the mean
  difference, a percentile interval, and a two-sided bootstrap p-value; the question indices are
  drawn once per replicate and shared by both methods (that is the pairing), the seeds of each
  method are resampled independently (seed ``s`` of one method has no tie to seed ``s`` of the
  other beyond the shared start).
- ``mcnemar(a, b)``: the exact McNemar test (two-sided binomial test on the discordant pairs),
  pooling every (seed, question) pair of seed index ``s`` of ``a`` with seed ``s`` of ``b``;
  ``paired_difference`` instead runs it per seed pair and reports the largest p (conservative:
  pooled seeds would count a question several times as independent evidence).

The bootstrap p-value is ``min(1, 2 * min(P*(d <= 0), P*(d >= 0)))`` over the replicates (the
percentile-interval duality), floored at ``1 / replicates``: it is a resampling approximation,
reported beside McNemar's exact value.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Any, Sequence

Scores = Sequence[Sequence[float]]


@dataclass(frozen=True)
class Estimate:
    """A mean with its interval; ``questions`` and ``seeds`` say what it rests on."""

    mean: float
    lo: float
    hi: float
    questions: int
    seeds: int
    level: float = 0.95

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PairedDifference(Estimate):
    """``a - b`` with its interval, the bootstrap p-value and McNemar's exact one."""

    p_bootstrap: float = 1.0
    p_mcnemar: float = 1.0
    a_only: int = 0  # questions a gets right and b wrong, summed over the seed pairs
    b_only: int = 0


def _check(scores: Scores, what: str) -> tuple[int, int]:
    rows = [list(r) for r in scores]
    if not rows or not rows[0]:
        raise ValueError(f"{what}: no scores (need at least one seed with one question)")
    n = len(rows[0])
    if any(len(r) != n for r in rows):
        raise ValueError(f"{what}: every seed must score the same questions (lengths {[len(r) for r in rows]})")
    return len(rows), n


def _mean(scores: Scores) -> float:
    return sum(sum(r) for r in scores) / (len(scores) * len(scores[0]))


def _percentile(sorted_vals: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if len(sorted_vals) == 1:
        return sorted_vals[0]
    pos = q * (len(sorted_vals) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes out of ``n`` (``(0, 1)`` when ``n == 0``)."""
    if n <= 0:
        return 0.0, 1.0
    z = _z(level)
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def _z(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    # inverse normal CDF by bisection on erf: exact enough (1e-10) and dependency-free
    target = 0.5 + level / 2
    lo, hi = 0.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _replicate_mean(scores: list[list[float]], qidx: list[int], rng: random.Random) -> float:
    s = len(scores)
    seeds = [rng.randrange(s) for _ in range(s)] if s > 1 else [0]
    total = 0.0
    for si in seeds:
        row = scores[si]
        total += sum(row[i] for i in qidx)
    return total / (len(seeds) * len(qidx))


def bootstrap_mean(scores: Scores, *, replicates: int = 2000, level: float = 0.95, seed: int = 0) -> Estimate:
    """Mean of ``scores`` (``[seed][question]``) with a two-level percentile bootstrap interval."""
    n_seeds, n_q = _check(scores, "bootstrap_mean")
    rows = [list(map(float, r)) for r in scores]
    rng = random.Random(seed)
    reps = sorted(_replicate_mean(rows, [rng.randrange(n_q) for _ in range(n_q)], rng) for _ in range(replicates))
    alpha = (1 - level) / 2
    return Estimate(_mean(rows), _percentile(reps, alpha), _percentile(reps, 1 - alpha), n_q, n_seeds, level)


def mcnemar(a: Scores, b: Scores) -> tuple[float, int, int]:
    """Exact two-sided McNemar test of ``a`` vs ``b``: ``(p, a_only, b_only)``. Seed ``s`` of ``a`` is
    paired with seed ``s`` of ``b`` (both need the same number of seeds)."""
    sa, na = _check(a, "mcnemar (a)")
    sb, nb = _check(b, "mcnemar (b)")
    if (sa, na) != (sb, nb):
        raise ValueError(f"mcnemar: a has {sa} seeds x {na} questions, b has {sb} x {nb}")
    a_only = sum(1 for ra, rb in zip(a, b) for x, y in zip(ra, rb) if x and not y)
    b_only = sum(1 for ra, rb in zip(a, b) for x, y in zip(ra, rb) if y and not x)
    return mcnemar_counts(a_only, b_only), a_only, b_only


def mcnemar_counts(a_only: int, b_only: int) -> float:
    """Exact two-sided McNemar p-value from the two discordant counts."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    k = min(a_only, b_only)
    # P(X <= k) for X ~ Binomial(n, 1/2), doubled; log-space so n in the thousands stays finite
    log_half_n = -n * math.log(2)
    tail = sum(math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + log_half_n) for i in range(k + 1))
    return min(1.0, 2 * tail)


def paired_difference(a: Scores, b: Scores, *, replicates: int = 2000, level: float = 0.95,
                      seed: int = 0) -> PairedDifference:
    """Mean of ``a`` minus mean of ``b`` on the same questions, with a paired bootstrap interval,
    its p-value, and the largest per-seed-pair exact McNemar p-value (``a_only``/``b_only``: the
    discordant counts summed over those pairs)."""
    sa, n_q = _check(a, "paired_difference (a)")
    sb, nb = _check(b, "paired_difference (b)")
    if n_q != nb:
        raise ValueError(f"paired_difference: a scores {n_q} questions, b {nb}: they must be the same questions")
    ra = [list(map(float, r)) for r in a]
    rb = [list(map(float, r)) for r in b]
    rng = random.Random(seed)
    diffs = []
    for _ in range(replicates):
        qidx = [rng.randrange(n_q) for _ in range(n_q)]
        diffs.append(_replicate_mean(ra, qidx, rng) - _replicate_mean(rb, qidx, rng))
    diffs.sort()
    alpha = (1 - level) / 2
    le0 = sum(1 for d in diffs if d <= 0) / replicates
    ge0 = sum(1 for d in diffs if d >= 0) / replicates
    p_boot = max(1 / replicates, min(1.0, 2 * min(le0, ge0)))
    # McNemar per seed pair (seed s of a with seed s of b; a method with fewer runs, e.g. the
    # deterministic start, is paired with each of the other's), the largest p reported: pooling
    # seeds would count each question several times as if the pairs were independent
    tests = [mcnemar([ra[s % sa]], [rb[s % sb]]) for s in range(max(sa, sb))]
    p_mc = max(t[0] for t in tests)
    a_only, b_only = sum(t[1] for t in tests), sum(t[2] for t in tests)
    return PairedDifference(_mean(ra) - _mean(rb), _percentile(diffs, alpha), _percentile(diffs, 1 - alpha),
                            n_q, min(sa, sb), level, p_boot, p_mc, a_only, b_only)


def median_of(xs: Sequence[Any]) -> float | None:
    """The median of the numbers among ``xs`` (other values skipped); ``None`` when there are none."""
    vals = sorted(x for x in xs if isinstance(x, (int, float)))
    if not vals:
        return None
    m = len(vals) // 2
    return vals[m] if len(vals) % 2 else (vals[m - 1] + vals[m]) / 2


def mean_of(xs: Sequence[Any]) -> float | None:
    """The mean of the numbers among ``xs`` (other values skipped); ``None`` when there are none."""
    vals = [x for x in xs if isinstance(x, (int, float))]
    return sum(vals) / len(vals) if vals else None


def steps_to_fraction(curve: Sequence[Sequence[float]], frac: float = 0.95) -> float | None:
    """The first step at which the reward curve (``[[step, value], ...]``, smoothed over a window of
    a tenth of its points) has covered ``frac`` of its way from its first to its final smoothed
    value; ``None`` for fewer than 3 points or a curve that never rose."""
    if len(curve) < 3:
        return None
    w = max(1, len(curve) // 10)
    vals = [sum(p[1] for p in curve[max(0, i - w + 1): i + 1]) / len(curve[max(0, i - w + 1): i + 1]) for i in range(len(curve))]
    first, last = vals[0], vals[-1]
    if last <= first:
        return None
    target = first + frac * (last - first)
    return next(curve[i][0] for i, v in enumerate(vals) if v >= target)


@dataclass(frozen=True)
class RunOutcome:
    """One training run's evaluation, as ``across_seeds`` needs it: per-question 0/1 EX and
    hardness (same questions, same order, in every run), and the run's own figures."""

    name: str
    method: str | None
    seed: int | None
    ex: Sequence[int]
    hardness: Sequence[str | None]
    executes: float | None = None
    by_db: dict[str, float] | None = None  # EX per database
    median_step_seconds: float | None = None
    train_seconds: float | None = None
    total_seconds: float | None = None
    peak_mb: float | None = None


@dataclass
class AcrossRow:
    """One method over its runs (``across_seeds``); ``ex``, ``complex_ex`` and ``vs_control`` are
    ``Estimate.as_dict`` / ``PairedDifference`` mappings (``None`` where not measurable)."""

    name: str
    method: str | None
    runs: int
    seeds: list[int | None]
    ex: dict[str, Any]
    complex_ex: dict[str, Any] | None = None
    executes: float | None = None
    median_step_seconds: float | None = None
    train_seconds: float | None = None
    total_seconds: float | None = None
    peak_mb: float | None = None
    by_db: dict[str, float] = None  # type: ignore[assignment]
    vs_control: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if out["vs_control"] is None:  # no control, or this is the control: the key is absent
            del out["vs_control"]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AcrossRow:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class AcrossSeeds:
    """Every method's runs over the seeds, in one row each; ``failed``: runs left out, by name."""

    seeds: list[int]
    control: str | None
    rows: list[AcrossRow]
    failed: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {"seeds": self.seeds, "control": self.control, "rows": [r.as_dict() for r in self.rows],
                "failed": self.failed}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> AcrossSeeds:
        d = d or {}
        return cls(seeds=list(d.get("seeds") or []), control=d.get("control"),
                   rows=[AcrossRow.from_dict(r) for r in d.get("rows") or []], failed=dict(d.get("failed") or {}))


def across_seeds(runs: Sequence[RunOutcome], seeds: list[int], control: str | None, *, failed: dict[str, int] | None = None,
                 complex_levels: Sequence[str] = ("hard", "extra"), replicates: int = 2000) -> AcrossSeeds:
    """Each method's runs over ``seeds`` in one row: EX mean with a 95% bootstrap interval over
    questions and seeds (``bootstrap_mean``), complex-query EX (``complex_levels``), the paired
    difference to ``control`` on the same questions (bootstrap interval and p-value, exact
    McNemar; only when both score the same number of questions), median s/step over the runs,
    mean training and total time, the largest peak memory, the mean execution rate, and EX per
    database (mean over runs). ``failed`` (runs the caller left out, by name) is reported as is."""
    by_name: dict[str, list[RunOutcome]] = {}
    for r in runs:
        by_name.setdefault(r.name, []).append(r)
    ctrl_runs = by_name.get(control or "", [])
    out_rows = []
    for name, mine in by_name.items():
        ex = [list(r.ex) for r in mine]
        est = bootstrap_mean(ex, replicates=replicates)
        cx = [[x for x, h in zip(r.ex, r.hardness) if h in complex_levels] for r in mine]
        cx_est = bootstrap_mean(cx, replicates=replicates) if cx and cx[0] else None
        row = AcrossRow(
            name=name, method=mine[0].method, runs=len(mine), seeds=[r.seed for r in mine], ex=est.as_dict(),
            complex_ex=cx_est.as_dict() if cx_est else None,
            executes=mean_of([r.executes for r in mine]),
            median_step_seconds=median_of([r.median_step_seconds for r in mine]),
            train_seconds=mean_of([r.train_seconds for r in mine]),
            total_seconds=mean_of([r.total_seconds for r in mine]),
            peak_mb=max((r.peak_mb for r in mine if r.peak_mb is not None), default=None),
            by_db=_by_db_mean(mine),
        )
        if ctrl_runs and name != control:
            c = [list(r.ex) for r in ctrl_runs]
            if len(c[0]) == len(ex[0]):
                row.vs_control = asdict(paired_difference(ex, c, replicates=replicates))
        out_rows.append(row)
    return AcrossSeeds(seeds=seeds, control=control if ctrl_runs else None, rows=out_rows, failed=dict(failed or {}))


def _by_db_mean(runs: Sequence[RunOutcome]) -> dict[str, float]:
    dbs: dict[str, list[float]] = {}
    for r in runs:
        for db, v in (r.by_db or {}).items():
            dbs.setdefault(db, []).append(v)
    return {db: sum(v) / len(v) for db, v in sorted(dbs.items())}


def roc_auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve: the probability that a random positive scores above a random
    negative, ties counting one half (the Mann-Whitney U statistic over positives x negatives).
    ``ValueError`` unless both classes are present and the lengths agree."""
    if len(scores) != len(labels):
        raise ValueError(f"{len(scores)} scores for {len(labels)} labels")
    pos = sum(1 for y in labels if y)
    neg = len(labels) - pos
    if not pos or not neg:
        raise ValueError("AUC needs at least one positive and one negative")
    # rank-sum with average ranks for ties: O(n log n)
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for t in range(i, j + 1):
            ranks[order[t]] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = sum(r for r, y in zip(ranks, labels) if y)
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)
