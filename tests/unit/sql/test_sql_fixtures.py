"""Golden fixture files: tests/fixtures/sql/em.txt and hardness.txt (one case per line)."""

from __future__ import annotations

import pytest
from sql_helpers import fixture_lines

from sqlcoach.sql.exact_match import em_components, exact_match
from sqlcoach.sql.hardness import component_counts, hardness

EM_CASES = fixture_lines("em.txt", 3)
HARDNESS_CASES = fixture_lines("hardness.txt", 2)


def test_fixture_files_cover_both_outcomes_and_every_level():
    assert {e for _, (_, _, e) in EM_CASES} == {"0", "1"}
    assert {e for _, (_, e) in HARDNESS_CASES} == {"easy", "medium", "hard", "extra"}


@pytest.mark.parametrize("number,case", EM_CASES, ids=[f"em.txt:{n}" for n, _ in EM_CASES])
def test_em_fixture(number, case, concert_db):
    pred, gold, expected = case
    got = exact_match(pred, gold, concert_db)
    assert got == (expected == "1"), f"em.txt:{number}: {em_components(pred, gold, concert_db)}"


@pytest.mark.parametrize("number,case", HARDNESS_CASES, ids=[f"hardness.txt:{n}" for n, _ in HARDNESS_CASES])
def test_hardness_fixture(number, case):
    sql, expected = case
    assert hardness(sql) == expected, f"hardness.txt:{number}: {component_counts(sql)}"
