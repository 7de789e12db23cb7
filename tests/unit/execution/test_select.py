"""Selection rules: ties, the never-pick-a-failing rule, vote-nonempty's fallback, the registry."""

from __future__ import annotations

import itertools

import pytest

from sqlcoach.errors import ConfigError
from sqlcoach.execution.select import SELECTORS, Candidates, get_selector, select_first, select_vote, select_vote_nonempty
from sqlcoach.types import ExecResult


def ok(*rows):
    return ExecResult(rows=tuple(tuple(r) for r in rows), columns=("c",))


EMPTY = ok()
FAIL = ExecResult(rows=None, error="exec_error", message="no such table")
TIMEOUT = ExecResult(rows=None, error="timeout")


def cands(*pairs):
    return Candidates.of([p[0] for p in pairs], [p[1] for p in pairs])


def test_vote_nonempty_skips_the_empty_majority():
    c = cands(("E1", EMPTY), ("E2", EMPTY), ("E3", EMPTY), ("A", ok((1,))), ("B", ok((2,))), ("A2", ok((1,))))
    assert select_vote(c).chosen == 0  # three empty results outvote everything
    s = select_vote_nonempty(c)
    assert (s.chosen, s.sql, s.rule, s.fallback) == (3, "A", "vote-nonempty", False)
    assert s.votes == (3, 3, 3, 2, 1, 2)  # the plain vote's counts, whatever the rule


def test_vote_nonempty_falls_back_to_the_plain_vote_when_nothing_returned_rows():
    c = cands(("BAD", FAIL), ("E1", EMPTY), ("E2", EMPTY), ("SLOW", TIMEOUT))
    s = select_vote_nonempty(c)
    assert s.fallback and s.chosen == select_vote(c).chosen == 1
    c = cands(("X", FAIL), ("Y", FAIL), ("Y", FAIL))
    s = select_vote_nonempty(c)
    assert s.fallback and s.sql == "Y" and s.chosen == 1  # plain vote's string fallback


def test_ties_go_to_the_group_seen_first_under_every_voting_rule():
    c = cands(("A", ok((1,))), ("B", ok((2,))), ("C", ok((2,))), ("D", ok((1,))))
    assert select_vote(c).chosen == 0 and select_vote_nonempty(c).chosen == 0
    c = cands(("E", EMPTY), ("B", ok((2,))), ("A", ok((1,))), ("B2", ok((2,))), ("A2", ok((1,))))
    assert select_vote_nonempty(c).chosen == 1


def test_first_takes_the_first_candidate_that_ran():
    c = cands(("", None), ("BAD", FAIL), ("E", EMPTY), ("A", ok((1,))))
    s = select_first(c)
    assert (s.chosen, s.fallback) == (2, False)
    s = select_first(cands(("", None), ("X", FAIL), ("Y", TIMEOUT)))
    assert (s.chosen, s.sql, s.fallback) == (1, "X", True)
    s = select_first(cands(("", None), ("", None)))
    assert (s.chosen, s.sql) == (-1, "")


@pytest.mark.parametrize("name", sorted(SELECTORS))
def test_never_pick_a_failing_candidate_over_one_that_runs(name):
    # every arrangement of 2 failures, 1 timeout, 1 empty SQL and 1 runnable candidate (in any
    # position, failures repeated as the majority): the runnable one wins under every rule
    outcomes = [("BAD", FAIL), ("BAD", FAIL), ("SLOW", TIMEOUT), ("", None), ("GOOD", ok((7,)))]
    for perm in set(itertools.permutations(range(len(outcomes)))):
        c = cands(*[outcomes[i] for i in perm])
        s = get_selector(name)(c)
        assert c.sqls[s.chosen] == "GOOD" and not s.fallback, (name, perm)


def test_a_runnable_empty_result_beats_failures_under_vote_nonempty():
    c = cands(("BAD", FAIL), ("BAD", FAIL), ("E", EMPTY))
    s = select_vote_nonempty(c)
    assert s.chosen == 2 and s.fallback  # nothing returned rows: the plain vote decided, and it never picks a failure


def test_registry_names_and_unknown_name():
    assert set(SELECTORS) == {"first", "vote", "vote-nonempty"}
    assert all(SELECTORS[n](cands(("A", ok((1,))))).rule == n for n in SELECTORS)
    with pytest.raises(ConfigError, match="vote-nonempty"):
        get_selector("majority")
    with pytest.raises(ConfigError, match="--verifier DIR"):  # a learned selector is built from its folder
        get_selector("verifier")


def test_candidates_length_mismatch():
    with pytest.raises(ValueError):
        Candidates(("a",), ())
