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
