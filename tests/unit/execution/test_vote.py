"""Self-consistency voting rules (see sqlcoach.execution.vote's docstring)."""

from __future__ import annotations

import pytest

from sqlcoach.execution.vote import vote
from sqlcoach.types import ExecResult


def ok(*rows):
    return ExecResult(rows=tuple(tuple(r) for r in rows))


FAIL = ExecResult(rows=None, error="exec_error", message="no such table")
TIMEOUT = ExecResult(rows=None, error="timeout")


def test_largest_result_group_wins_even_when_sql_differs():
    sqls = ["SELECT 1", "SELECT a FROM t", "SELECT a FROM t WHERE 1", "SELECT 2"]
    res = [ok((1,)), ok((5,), (6,)), ok((6,), (5,)), ok((2,))]
    v = vote(sqls, res)
    assert v.chosen == 1 and v.sql == "SELECT a FROM t"  # rows 5,6 in any order: a group of 2
    assert v.group_of == (0, 1, 1, 2) and v.sizes == (1, 2, 1) and not v.fallback


def test_tie_goes_to_the_group_seen_first():
    sqls = ["A", "B", "C", "D"]
    res = [ok((1,)), ok((2,)), ok((2,)), ok((1,))]
    assert vote(sqls, res).chosen == 0


def test_failed_and_empty_samples_do_not_vote():
    sqls = ["", "BAD", "SELECT x", "SLOW", "SELECT y"]
    res = [None, FAIL, ok((3,)), TIMEOUT, ok((4,))]
    v = vote(sqls, res)
    assert v.chosen == 2 and v.group_of == (-1, -1, 0, -1, 1)


def test_all_failed_falls_back_to_most_frequent_sql_string():
    sqls = ["X", "Y", "Y", "", "X", "Y"]
    v = vote(sqls, [FAIL, FAIL, TIMEOUT, None, FAIL, FAIL])
    assert v.fallback and v.sql == "Y" and v.chosen == 1


def test_all_failed_tie_falls_back_to_earliest():
    v = vote(["X", "Y"], [FAIL, FAIL])
    assert v.fallback and v.sql == "X" and v.chosen == 0


def test_all_empty_gives_empty():
    v = vote(["", ""], [None, None])
    assert v.chosen == -1 and v.sql == "" and v.fallback


def test_custom_comparer_is_used():
    v = vote(["a", "b"], [ok((1,)), ok((2,))], same=lambda x, y: True)
    assert v.sizes == (2,)


def test_length_mismatch():
    with pytest.raises(ValueError):
        vote(["a"], [])


def test_default_comparer_treats_float_and_int_per_project_rules():
    # Whatever the one comparer says, the vote must agree with it (no second comparer here).
    from sqlcoach.execution.compare import same_result

    a, b = ok((1,), (2,)), ok((2,), (1,))
    v = vote(["p", "q"], [a, b])
    assert (v.sizes == (2,)) == same_result(a.rows, b.rows, mode="spider", order_matters=False)
