from __future__ import annotations

import sqlite3

import pytest

from sqlcoach.sql.rewrite import (
    MAX_PLUG_CANDIDATES,
    has_order_by,
    literal_values,
    plug_values,
    postprocess,
    statement_type,
    strip_distinct,
)


def test_postprocess_is_the_official_one():
    assert postprocess("a > = 1 AND b < = 2 AND c ! = 3") == "a >= 1 AND b <= 2 AND c != 3"
    assert postprocess("a = 1") == "a = 1"


@pytest.mark.parametrize(
    "sql,expected",
    [
        ("SELECT DISTINCT a FROM t", "SELECT  a FROM t"),
        ("select count(distinct a) from t", "select count( a) from t"),
        ("SELECT a FROM t WHERE b IN (SELECT DISTINCT b FROM u)", "SELECT a FROM t WHERE b IN (SELECT  b FROM u)"),
        ("SELECT a FROM t WHERE c = 'distinct' OR d = \"DISTINCT\"", "SELECT a FROM t WHERE c = 'distinct' OR d = \"DISTINCT\""),
        ("SELECT distinct_id, t.distinct FROM t", "SELECT distinct_id, t.distinct FROM t"),
        ("SELECT a FROM t WHERE c = 'it''s distinct'", "SELECT a FROM t WHERE c = 'it''s distinct'"),
    ],
)
def test_strip_distinct(sql, expected):
    assert strip_distinct(sql) == expected


def test_strip_distinct_keeps_results_for_sqlite():
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE t (a)")
    con.executemany("INSERT INTO t VALUES (?)", [(1,), (1,), (2,)])
    assert con.execute(strip_distinct("SELECT count(DISTINCT a) FROM t")).fetchall() == [(3,)]


def test_has_order_by_is_lexical_anywhere():
    assert has_order_by("SELECT a FROM t ORDER   BY a")
    assert has_order_by("SELECT a FROM t WHERE a IN (SELECT a FROM u ORDER BY a LIMIT 1)")
    assert has_order_by("select a from t order\nby a")
    assert not has_order_by("SELECT a FROM t GROUP BY a")


@pytest.mark.parametrize(
    "sql,kind",
    [
        ("SELECT 1", "select"),
        ("SELECT a FROM t UNION SELECT b FROM u", "select"),
        ("WITH x AS (SELECT 1) SELECT * FROM x", "select"),
        ("INSERT INTO t VALUES (1)", "insert"),
        ("UPDATE t SET a = 1", "update"),
        ("DELETE FROM t", "delete"),
        ("DROP TABLE t", "other"),
        ("PRAGMA writable_schema = 1", "other"),
        ("SELECT FROM WHERE", "unparsable"),
        ("selec", "unparsable"),
        ("", "unparsable"),
        ("SELECT 1; DROP TABLE t", "unparsable"),
    ],
)
def test_statement_type(sql, kind):
    assert statement_type(sql) == kind


def test_literal_values_in_textual_order():
    sql = "SELECT a FROM t WHERE b = \"x y\" AND c > 3.5 AND d LIKE '%z%' AND e IN (1, 2) LIMIT 3"
    assert literal_values(sql) == ["x y", 3.5, "%z%", 1, 2, 3]
    assert literal_values("SELECT \"name\" FROM t") == []  # a quoted name in SELECT is a column
    assert literal_values("SELECT FROM") == []


def test_plug_values_enumerates_gold_values_into_slots():
    got = plug_values("SELECT a FROM t WHERE b = 'q' AND c > 1", 'SELECT a FROM t WHERE b = "x" AND c > 4')
    assert got == [
        "SELECT a FROM t WHERE b = 'x' AND c > 'x'",
        "SELECT a FROM t WHERE b = 'x' AND c > 4",
        "SELECT a FROM t WHERE b = 4 AND c > 'x'",
        "SELECT a FROM t WHERE b = 4 AND c > 4",
    ]


def test_plug_values_runs_on_sqlite_and_finds_the_gold_denotation():
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE t (a, b)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(1, "x"), (2, "y")])
    gold = "SELECT a FROM t WHERE b = \"y\""
    target = con.execute("SELECT a FROM t WHERE b = 'y'").fetchall()
    candidates = plug_values("SELECT a FROM t WHERE b = 'Y'", gold)
    assert any(con.execute(c).fetchall() == target for c in candidates)


def test_plug_values_keeps_values_exactly_as_written():
    got = plug_values("SELECT a FROM t WHERE b = 'x'", "SELECT a FROM t WHERE b = 'two  spaces'")
    assert got == ["SELECT a FROM t WHERE b = 'two  spaces'"]
    assert literal_values("SELECT a FROM t WHERE b = \"it's  here\"") == ["it's  here"]


def test_plug_values_is_bounded_and_skips_the_unchanged_prediction():
    pred = "SELECT a FROM t WHERE " + " AND ".join(f"c{i} = {i}" for i in range(12))
    gold = "SELECT a FROM t WHERE b = 'x' AND c > 4 AND d = 5"
    got = plug_values(pred, gold)
    assert len(got) == MAX_PLUG_CANDIDATES == len(set(got))
    assert len(plug_values(pred, gold, max_candidates=7)) == 7
    assert plug_values("SELECT a FROM t WHERE b = 4", "SELECT a FROM t WHERE b = 4") == []
    assert plug_values("SELECT a FROM t", "SELECT a FROM t WHERE b = 4") == []
    assert plug_values("SELECT a FROM t WHERE b = 4", "SELECT a FROM t") == []
    assert plug_values("SELECT FROM", "SELECT a FROM t WHERE b = 4") == []
