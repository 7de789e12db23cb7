"""metrics.stats: intervals and paired tests against values worked out by hand."""

from __future__ import annotations

import math
import random

import pytest

from sqlcoach.metrics.stats import bootstrap_mean, mcnemar, paired_difference, wilson


def test_wilson_matches_the_closed_form():
    lo, hi = wilson(9, 300)
    assert (round(lo, 3), round(hi, 3)) == (0.016, 0.056)
    assert wilson(0, 0) == (0.0, 1.0)
    lo, hi = wilson(0, 10)
    assert lo == pytest.approx(0.0, abs=1e-12) and 0.27 < hi < 0.29  # the rule of three's neighbourhood


def test_mcnemar_exact_binomial():
    a = [[1] * 10 + [0] * 2 + [1] * 5]
    b = [[0] * 10 + [1] * 2 + [1] * 5]
    p, a_only, b_only = mcnemar(a, b)
    assert (a_only, b_only) == (10, 2)
    assert p == pytest.approx(2 * (1 + 12 + 66) / 4096)
    assert mcnemar(a, a)[0] == 1.0
    with pytest.raises(ValueError, match="seeds"):
        mcnemar(a, [b[0], b[0]])


def test_bootstrap_interval_is_near_the_normal_one_and_deterministic():
    rng = random.Random(1)
    row = [1.0 if rng.random() < 0.6 else 0.0 for _ in range(600)]
    est = bootstrap_mean([row], replicates=2000)
    p = sum(row) / 600
    half = 1.96 * math.sqrt(p * (1 - p) / 600)
    assert est.mean == pytest.approx(p)
    assert est.lo == pytest.approx(p - half, abs=0.01) and est.hi == pytest.approx(p + half, abs=0.01)
    assert est == bootstrap_mean([row], replicates=2000)  # same seed, same interval
    assert (est.questions, est.seeds) == (600, 1)


def test_seed_variance_widens_the_interval():
    rng = random.Random(2)
    base = [1.0 if rng.random() < 0.5 else 0.0 for _ in range(300)]
    same = bootstrap_mean([base, base, base], replicates=500)
    # three seeds that disagree a lot: 0.3, 0.5, 0.7 accuracy on the same questions
    spread = [[1.0 if i < k else 0.0 for i in range(300)] for k in (90, 150, 210)]
    wide = bootstrap_mean(spread, replicates=500)
    assert (wide.hi - wide.lo) > (same.hi - same.lo)
    assert wide.seeds == 3


def test_paired_difference_sees_a_consistent_gain_and_no_gain():
    rng = random.Random(3)
    ctrl = [[1.0 if rng.random() < 0.5 else 0.0 for _ in range(400)] for _ in range(3)]
    better = [[1.0 if (x or rng.random() < 0.2) else 0.0 for x in row] for row in ctrl]
    d = paired_difference(better, ctrl, replicates=500)
    assert d.mean > 0.05 and d.lo > 0 and d.p_bootstrap < 0.01 and d.p_mcnemar < 1e-6
    assert d.b_only == 0 and d.a_only > 0
    one = paired_difference(ctrl[:1], ctrl[:1])  # one seed against itself: no variance at all
    assert one.mean == 0 and one.lo == one.hi == 0 and one.p_bootstrap == 1.0 and one.p_mcnemar == 1.0
    # three seeds against themselves: seeds are resampled independently, so the interval has width, around 0
    same = paired_difference(ctrl, ctrl, replicates=500)
    assert same.mean == 0 and same.lo < 0 < same.hi and same.p_bootstrap > 0.5 and same.p_mcnemar == 1.0


def test_bad_shapes_are_errors():
    with pytest.raises(ValueError, match="same questions"):
        bootstrap_mean([[1, 0], [1]])
    with pytest.raises(ValueError, match="no scores"):
        bootstrap_mean([])
    with pytest.raises(ValueError, match="same questions"):
        paired_difference([[1, 0]], [[1, 0, 1]])
