import math

import pytest

from sqlcoach.metrics.bird import clean_outliers, r_ves, r_ves_reward, soft_f1, ves


@pytest.mark.parametrize(
    "ratio, reward",
    [(0, 0), (3.0, 1.25), (2.0, 1.25), (1.5, 1.0), (1.0, 1.0), (0.6, 0.75), (0.3, 0.5), (0.1, 0.25)],
)
def test_r_ves_buckets(ratio, reward):
    assert r_ves_reward(ratio) == reward


def test_ves_is_mean_sqrt_ratio_with_incorrect_as_zero():
    assert ves([4.0, 0.0]) == pytest.approx(100 * (2 + 0) / 2)
    assert r_ves([4.0, 0.0, 1.0]) == pytest.approx(100 * (1.25 + 0 + 1) / 3)


def test_clean_outliers_drops_far_values():
    values = [1.0] * 20 + [1000.0]
    assert 1000.0 not in clean_outliers(values)
    assert clean_outliers([1.0, 2.0]) == [1.0, 2.0]


def test_soft_f1_cases():
    assert soft_f1([], []) == 1.0
    assert soft_f1([(1, "a")], [(1, "a")]) == 1.0
    assert soft_f1(None, [(1,)]) == 0.0
    # half the values of the single row match: tp=0.5, fp=0.5, fn=0.5 -> F1 0.5
    assert soft_f1([(1, "x")], [(1, "a")]) == pytest.approx(0.5)
    # an extra predicted row is a whole false positive
    p = soft_f1([(1,), (2,)], [(1,)])
    assert p == pytest.approx(2 * 0.5 * 1.0 / 1.5)
    # duplicates are removed before pairing, deterministically
    assert soft_f1([(1,), (1,)], [(1,)]) == 1.0
    assert not math.isnan(soft_f1([()], [(1,)]))
