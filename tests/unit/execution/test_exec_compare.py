"""same_result: golden row-level fixtures for both modes, SQL-level fixtures, speed, bad mode."""

from __future__ import annotations

import ast
import random
import time
from pathlib import Path

import pytest
from exec_testdb import make_db

from sqlcoach.execution.compare import COMPARE_MODES, same_result
from sqlcoach.execution.sandbox import execute

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "compare"


def _split_literals(head: str, path: Path, lineno: int) -> tuple[object, object]:
    # Rows may contain ';' inside strings: try every split point until both sides parse.
    for k, ch in enumerate(head):
        if ch != ";":
            continue
        try:
            return ast.literal_eval(head[:k].strip()), ast.literal_eval(head[k + 1 :].strip())
        except (ValueError, SyntaxError):
            continue
    raise ValueError(f"{path}:{lineno}: cannot split into pred_rows ; gold_rows")


def _row_cases(name: str) -> list:
    path = FIXTURES / name
    cases = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        head, order, expected = (p.strip() for p in line.rsplit(";", 2))
        pred, gold = _split_literals(head, path, lineno)
        assert order in ("True", "False") and expected in ("True", "False"), f"{path}:{lineno}"
        cases.append(pytest.param(pred, gold, order == "True", expected == "True", id=f"{name}:{lineno}"))
    return cases


def _sql_cases() -> list:
    path = FIXTURES / "sql_spider.txt"
    cases = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pred, gold, expected = (p.strip() for p in line.rsplit(" ; ", 2))
        cases.append(pytest.param(pred, gold, expected == "True", id=f"sql_spider.txt:{lineno}"))
    return cases


SPIDER_CASES = _row_cases("spider.txt")
BIRD_CASES = _row_cases("bird.txt")


def test_fixture_files_are_substantial():
    assert len(SPIDER_CASES) >= 30 and len(BIRD_CASES) >= 25 and len(_sql_cases()) >= 20
    # both outcomes are represented, so a comparer that always says True (or False) fails
    for cases in (SPIDER_CASES, BIRD_CASES):
        assert {c.values[3] for c in cases} == {True, False}


@pytest.mark.parametrize("pred, gold, order_matters, expected", SPIDER_CASES)
def test_spider_mode(pred, gold, order_matters, expected):
    assert same_result(pred, gold, mode="spider", order_matters=order_matters) is expected


@pytest.mark.parametrize("pred, gold, order_matters, expected", BIRD_CASES)
def test_bird_mode(pred, gold, order_matters, expected):
    assert same_result(pred, gold, mode="bird", order_matters=order_matters) is expected


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return make_db(tmp_path_factory.mktemp("compare") / "music.sqlite")


@pytest.mark.parametrize("pred_sql, gold_sql, expected", _sql_cases())
def test_spider_mode_on_sql(db, pred_sql, gold_sql, expected):
    pred, gold = execute(db, pred_sql), execute(db, gold_sql)
    assert pred.ok and gold.ok, (pred, gold)
    order_matters = "order by" in gold_sql.lower()  # the test-suite scorer's rule
    assert same_result(pred.rows, gold.rows, order_matters=order_matters) is expected


def test_unknown_mode_lists_the_modes():
    assert COMPARE_MODES == ("spider", "bird")
    with pytest.raises(ValueError, match="spider, bird"):
        same_result([], [], mode="test-suite")


def test_default_mode_is_spider():
    assert same_result([("a", 1)], [(1, "a")]) is True
    assert same_result([("a", 1)], [(1, "a")], mode="bird") is False


def test_spider_mode_agrees_with_brute_force_on_random_results():
    # Reference: try every permutation of the predicted columns, compare bags (or sequences).
    from collections import Counter
    from itertools import permutations

    def brute(pred, gold, order_matters):
        if not pred and not gold:
            return True
        if len(pred) != len(gold) or len(pred[0]) != len(gold[0]):
            return False
        for perm in permutations(range(len(gold[0]))):
            p = [tuple(r[i] for i in perm) for r in pred]
            if (p == gold) if order_matters else (Counter(p) == Counter(gold)):
                return True
        return False

    rng = random.Random(0)
    agree = {True: 0, False: 0}
    for _ in range(3000):
        ncols, nrows = rng.randint(1, 4), rng.randint(0, 4)
        gold = [tuple(rng.choice([0, 1, 1.0, "a", None]) for _ in range(ncols)) for _ in range(nrows)]
        perm = rng.sample(range(ncols), ncols)
        pred = [tuple(r[i] for i in perm) for r in gold]
        if rng.random() < 0.5:
            rng.shuffle(pred)
        if pred and rng.random() < 0.5:  # perturb one value
            i, j = rng.randrange(len(pred)), rng.randrange(ncols)
            row = list(pred[i])
            row[j] = rng.choice([0, 2, "b", None])
            pred[i] = tuple(row)
        order = rng.random() < 0.5
        want = brute(pred, gold, order)
        assert same_result(pred, gold, order_matters=order) is want, (pred, gold, order)
        agree[want] += 1
    assert min(agree.values()) > 300  # both outcomes exercised


def test_wide_results_with_identical_columns_stay_fast():
    rows = [tuple([None] * 12 + [i, i % 7]) for i in range(2000)]
    pred = [r[::-1] for r in reversed(rows)]
    t0 = time.perf_counter()
    assert same_result(pred, rows) is True
    bad = list(pred)
    bad[5] = (0,) + bad[5][1:]
    assert same_result(bad, rows) is False
    assert time.perf_counter() - t0 < 2.0
