"""EXPLAIN QUERY PLAN audit: features read from SQLite's plan lines, the 'worse' rule, and the
audit inside evaluate_pairs (per-example fields, summary counts, the HTML page)."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from sqlcoach.execution.pool import ExecutorPool
from sqlcoach.metrics import evaluate_pairs
from sqlcoach.metrics.html import summary_html
from sqlcoach.metrics.plans import explain_plans, format_plans, plan_features, worse


@pytest.fixture()
def dbdir(tmp_path):
    root = tmp_path / "database" / "music"
    root.mkdir(parents=True)
    con = sqlite3.connect(root / "music.sqlite")
    con.executescript("""
        CREATE TABLE singer (id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER);
        CREATE TABLE song (sid INTEGER PRIMARY KEY, singer_id INTEGER, title TEXT);
        INSERT INTO singer VALUES (1,'Ann','FR',30),(2,'Bob','US',41),(3,'Cid','FR',25);
        INSERT INTO song VALUES (1,1,'a'),(2,1,'b'),(3,2,'c');
    """)
    con.commit()
    con.close()
    return tmp_path / "database"


def _plan(db, sql):
    with ExecutorPool(workers=0) as pool:
        return explain_plans(pool, [(str(db / "music" / "music.sqlite"), sql)])[0]


def test_features_of_real_plans(dbdir):
    p = _plan(dbdir, "SELECT name FROM singer ORDER BY age")
    assert p["full_scans"] == 1 and p["temp_btree_order_by"] == 1 and p["temp_btrees"] == 1 and p["loops"] == 1
    p = _plan(dbdir, "SELECT country, count(*) FROM singer GROUP BY country")
    assert p["temp_btree_group_by"] == 1
    p = _plan(dbdir, "SELECT DISTINCT country FROM singer")
    assert p["temp_btree_distinct"] == 1
    p = _plan(dbdir, "SELECT name FROM singer WHERE id = 2")
    assert p["full_scans"] == 0 and p["loops"] == 1  # SEARCH by the primary key
    p = _plan(dbdir, "SELECT name FROM singer s WHERE age > (SELECT avg(age) FROM singer t WHERE t.country = s.country)")
    assert p["correlated_subqueries"] == 1 and p["full_scans"] == 2 and p["loops"] == 2
    p = _plan(dbdir, "SELECT s.name, g.title FROM song g JOIN singer s ON g.title = s.name")
    assert p["automatic_indexes"] == 1  # singer.name has no index: SQLite builds one for this query
    p = _plan(dbdir, "WITH x AS (SELECT 1 AS v) SELECT v FROM x")
    assert p["full_scans"] == 0  # a CTE's rows are not a table scan


def test_feature_parser_on_older_wording():
    rows = [(2, 0, 0, "SCAN TABLE singer"), (3, 0, 0, "SEARCH TABLE song USING AUTOMATIC COVERING INDEX (singer_id=?)"),
            (5, 0, 0, "SCAN (subquery-1)"), (6, 0, 0, "USE TEMP B-TREE FOR RIGHT PART OF ORDER BY"),
            (7, 0, 0, "CORRELATED LIST SUBQUERY 2")]
    f = plan_features(rows)
    assert (f["full_scans"], f["automatic_indexes"], f["temp_btree_order_by"], f["correlated_subqueries"], f["loops"]) \
        == (1, 1, 1, 1, 3)


def test_worse_is_pareto_dominance():
    base = dict(full_scans=1, temp_btrees=0, automatic_indexes=0, correlated_subqueries=0, loops=1)
    assert worse(dict(base, full_scans=2), base)
    assert not worse(base, base)
    assert not worse(dict(base, full_scans=2, loops=0), base)  # better in one, worse in another


def test_explain_is_sandboxed(dbdir):
    db = dbdir / "music" / "music.sqlite"
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    for sql in ("DELETE FROM singer", "SELECT 1; DROP TABLE singer", "SELECT * FROM nowhere"):
        p = _plan(dbdir, sql)
        assert "error" in p, sql
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest


def test_evaluate_records_plans_and_finds_correct_but_worse(dbdir):
    golds = [("SELECT name FROM singer WHERE id = 2", "music"),
             ("SELECT s.name FROM singer s JOIN song g ON g.singer_id = s.id WHERE g.title = 'c'", "music"),
             ("SELECT name FROM singer ORDER BY age", "music"),
             ("SELECT count(*) FROM singer", "music")]
    preds = ["SELECT name FROM singer WHERE id + 0 = 2",  # same rows, full scan instead of a search: worse
             "SELECT name FROM singer WHERE id IN (SELECT singer_id FROM song WHERE title = 'c')",
             "SELECT name FROM singer ORDER BY age DESC",  # wrong order: not correct, not compared
             "SELEC nonsense"]
    rep = evaluate_pairs(preds, golds, db_dir=dbdir, etype="exec", workers=0)
    rows = rep.rows()
    assert rows[0]["ex"] and rows[0]["plan_worse"] is True
    assert rows[0]["plan_pred"]["full_scans"] == 1 and rows[0]["plan_gold"]["full_scans"] == 0
    assert rows[1]["ex"] and rows[1]["plan_worse"] is False
    assert rows[2]["ex"] is False and rows[2]["plan_worse"] is None and rows[2]["plan_pred"] is not None
    assert rows[3]["plan_pred"] is None and rows[3]["plan_gold"] is not None  # did not execute: not explained
    plans = rep.summary["plans"]
    assert (plans["explained_pred"], plans["explained_gold"]) == (3, 4)
    assert (plans["correct_but_worse"], plans["correct_compared"]) == (1, 2)
    assert plans["features"]["temp_btree_order_by"] == {"pred": 1, "gold": 1, "pred_total": 1, "gold_total": 1}
    table = rep.table()
    assert "correct but plans worse than the gold: 1 of 2 (50.0%)" in table and format_plans(plans) in table
    page = summary_html(rep.summary, rows)
    assert "Plans (EXPLAIN QUERY PLAN)" in page and "id + 0 = 2" in page and "<script" not in page
    off = evaluate_pairs(preds, golds, db_dir=dbdir, etype="exec", workers=0, explain=False)
    assert "plans" not in off.summary and "plan_pred" not in off.rows()[0]
