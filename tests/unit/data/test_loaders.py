"""Every loader on small hand-written files, including the malformed records it must report."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from loader_testdata import line_of
from sqlcoach.data import (
    LOADERS,
    load_bird,
    load_chase,
    load_cosql,
    load_create_context,
    load_examples,
    load_examples_with_report,
    load_jsonl,
    load_sparc,
    load_spider,
    load_wikisql,
    read_gold_file,
    split_interactions,
)
from sqlcoach.data.jsonl import LoadReport
from sqlcoach.data.wikisql import wikisql_to_sql
from sqlcoach.errors import DataError
from sqlcoach.types import Example, Turn


def run(db_path: str, sql: str):
    con = sqlite3.connect(db_path)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


# --- Spider ----------------------------------------------------------------------------------------


def test_spider_dev_loads_good_records_and_reports_bad_ones(data_dir: Path) -> None:
    report = LoadReport()
    exs = load_spider(data_dir / "spider", "dev", report=report)
    dev = data_dir / "spider" / "dev.json"
    assert [e.id for e in exs] == ["spider-dev-0", "spider-dev-3", "spider-dev-4"]
    assert [e.db_id for e in exs] == ["shop", "school", "lost"]
    assert exs[0].question == "How many items are there?"
    assert exs[0].gold_sql == "SELECT count(*) FROM item"
    assert exs[0].db_path == str(data_dir / "spider" / "database" / "shop" / "shop.sqlite")
    assert exs[0].source == "spider"
    # a record spanning several lines reports the line it starts on
    assert exs[1].meta["line"] == line_of(dev, '"db_id": "school"') - 1
    # known in tables.json, no database file: kept, not runnable
    assert exs[2].db_path is None
    msgs = {(p.line, p.message.split(" (")[0]) for p in report.problems}
    assert (line_of(dev, '"query": "SELECT name FROM item"'), "missing field 'question'") in msgs
    assert any(p.line == line_of(dev, "nowhere_db") and "unknown db_id 'nowhere_db'" in p.message for p in report.problems)
    assert all(p.path == str(dev) for p in report.problems)
    assert len(report.problems) == 2
    assert str(report.problems[0]).startswith(f"{dev}:")


def test_spider_train_split_and_explicit_db_dir(data_dir: Path, tmp_path: Path) -> None:
    exs = load_spider(data_dir / "spider", "train")
    assert [e.id for e in exs] == ["spider-train-0", "spider-train-1"]
    # train_spider.json (+ train_others.json) wins over train.json when present
    (data_dir / "spider" / "train_spider.json").write_text('[{"db_id": "shop", "question": "q", "query": "SELECT 1"}]')
    (data_dir / "spider" / "train_others.json").write_text('[{"db_id": "school", "question": "r", "query": "SELECT 2"}]')
    exs = load_spider(data_dir / "spider", "train")
    assert [e.id for e in exs] == ["spider-train-0", "spider-train-others-0"]
    # an explicit database folder elsewhere
    moved = tmp_path / "elsewhere"
    (data_dir / "spider" / "database").rename(moved)
    exs = load_spider(data_dir / "spider", "dev", db_dir=moved)
    assert exs[0].db_path == str(moved / "shop" / "shop.sqlite")


def test_spider_jsonl_bad_line_is_reported_and_rest_loads(data_dir: Path) -> None:
    f = data_dir / "spider" / "dev_lines.jsonl"
    exs, problems = load_examples_with_report("spider", f)
    assert [e.question for e in exs] == ["How many items are there?", "List the names of all students."]
    assert len(problems) == 1 and problems[0].line == 2 and "invalid JSON" in problems[0].message


def test_spider_whole_file_failures_raise(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no dev file"):
        load_spider(tmp_path)
    broken = data_dir / "spider" / "dev.json"
    broken.write_text('[\n {"db_id": "shop", "question": "a", "query": "b"},\n {"db_id": oops}\n]')
    with pytest.raises(DataError) as info:
        load_spider(data_dir / "spider")
    assert info.value.line == 3
    with pytest.raises(DataError, match="unknown split"):
        load_spider(data_dir / "spider", "nosuchsplit")


def test_read_gold_file_and_interactions(data_dir: Path) -> None:
    f = data_dir / "spider" / "gold_multi.sql"
    assert read_gold_file(f) == [
        ("SELECT count(*) FROM item", "shop"),
        ("SELECT name FROM item", "shop"),
        ("SELECT name FROM student", "school"),
    ]
    kept = read_gold_file(f, keep_blank=True)
    assert kept[2] == ("", "") and len(kept) == 6
    assert split_interactions(kept) == [
        [("SELECT count(*) FROM item", "shop"), ("SELECT name FROM item", "shop")],
        [("SELECT name FROM student", "school")],
    ]
    with pytest.raises(DataError) as info:
        read_gold_file(data_dir / "spider" / "gold_bad.sql")
    assert info.value.line == 2


# --- BIRD --------------------------------------------------------------------------------------------


def test_bird_with_databases(data_dir: Path) -> None:
    exs, problems = load_examples_with_report("bird", data_dir / "bird", "dev")
    assert [e.id for e in exs] == ["bird-dev-0", "bird-dev-1"]
    assert exs[0].evidence == "total price = SUM(price)" and exs[0].difficulty == "simple"
    assert exs[1].evidence is None  # empty evidence is no evidence
    assert run(exs[0].db_path, exs[0].gold_sql) == [(63.5,)]
    lines = sorted((p.line, p.message) for p in problems)
    assert len(lines) == 2
    assert "unknown db_id 'ghost'" in lines[0][1] and lines[0][0] == 4
    assert "missing field 'question'" in lines[1][1] and lines[1][0] == 5


def test_bird_bare_questions_file_has_no_databases(data_dir: Path, tmp_path: Path) -> None:
    bare = tmp_path / "questions" / "dev.json"
    bare.parent.mkdir()
    bare.write_text((data_dir / "bird" / "dev.json").read_text())
    exs, problems = load_examples_with_report("bird", bare)
    assert len(exs) == 3 and all(e.db_path is None for e in exs)
    assert len(problems) == 1  # only the record without a question


# --- SParC / CoSQL / CHASE ---------------------------------------------------------------------------


def test_sparc_turns_become_examples_with_history(data_dir: Path) -> None:
    report = LoadReport()
    exs = load_sparc(data_dir / "sparc", "dev", report=report)
    assert [e.id for e in exs] == ["sparc-dev-0-0", "sparc-dev-0-1", "sparc-dev-0-2", "sparc-dev-2-0"]
    assert exs[0].turns == ()
    assert exs[2].question == "Sorted by price."
    assert exs[2].turns == (
        Turn("Show all items.", "SELECT * FROM item"),
        Turn("Only their names.", "SELECT name FROM item"),
    )
    assert exs[3].turns == () and exs[3].db_id == "school"
    assert exs[0].db_path.endswith("shop.sqlite")
    # the interaction with a turn lacking its utterance is skipped whole
    assert len(report.problems) == 1 and "turn 1" in report.problems[0].message
    assert report.problems[0].line == line_of(data_dir / "sparc" / "dev.json", '"school", "interaction"')


@pytest.mark.parametrize(("loader", "kind", "rel"), [
    (load_cosql, "cosql", "sql_state_tracking/cosql_dev.json"),
    (load_chase, "chase", "chase_dev.json"),
])
def test_cosql_and_chase_layouts(data_dir: Path, loader, kind: str, rel: str) -> None:
    root = data_dir / "sparc"
    target = root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text((root / "dev.json").read_text())
    exs = loader(root, "dev")
    assert len(exs) == 4 and {e.source for e in exs} == {kind}
    assert exs[1].id == f"{kind}-dev-0-1" and len(exs[1].turns) == 1


# --- WikiSQL ----------------------------------------------------------------------------------------


def test_wikisql_materialises_tables_and_converts_sql(data_dir: Path) -> None:
    root = data_dir / "wikisql"
    exs, problems = load_examples_with_report("wikisql", root, "dev")
    assert [e.id for e in exs] == ["wikisql-dev-0", "wikisql-dev-1", "wikisql-dev-4"]  # index counts parseable records
    ann, older, coach = exs
    assert ann.db_id == "table_1_100_1"
    assert ann.gold_sql == 'SELECT "Position" FROM "table_1_100_1" WHERE "Player" = \'Ann Lee\''
    assert older.gold_sql == 'SELECT COUNT("Player") FROM "table_1_100_1" WHERE "Age" > 30'
    assert Path(ann.db_path) == root / ".sqlcoach_db" / "wikisql" / "table_1_100_1" / "table_1_100_1.sqlite"
    assert run(ann.db_path, ann.gold_sql) == [("Guard",)]
    assert run(older.db_path, older.gold_sql) == [(2,)]  # "28" stored as a number: REAL affinity
    assert run(coach.db_path, coach.gold_sql) == [("Hawks",)]
    # duplicate and empty headers become distinct columns
    cols = [r[1] for r in sqlite3.connect(ann.db_path).execute('PRAGMA table_info("table_1_100_1")')]
    assert cols == ["Player", "Age", "Position", "Age_2"]
    assert sorted(p.line for p in problems) == [3, 4, 5]
    # idempotent: a second load reuses the files untouched
    before = os.stat(ann.db_path).st_mtime_ns
    again = load_wikisql(root, "dev")
    assert [e.gold_sql for e in again] == [e.gold_sql for e in exs]
    assert os.stat(ann.db_path).st_mtime_ns == before


def test_wikisql_to_sql_rejects_out_of_range() -> None:
    table = {"id": "t-1", "header": ["a", "b"], "types": ["text", "real"], "rows": []}
    assert wikisql_to_sql({"sel": 1, "agg": 5, "conds": [[1, 2, 3.5]]}, table) == 'SELECT AVG("b") FROM "table_t_1" WHERE "b" < 3.5'
    for bad in ({"sel": 2, "agg": 0, "conds": []}, {"sel": 0, "agg": 9}, {"sel": 0, "agg": 0, "conds": [[0, 7, "x"]]}, "x"):
        with pytest.raises(ValueError):
            wikisql_to_sql(bad, table)


# --- sql-create-context ------------------------------------------------------------------------------


def test_create_context_materialises_empty_databases(data_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    report = LoadReport()
    exs = load_create_context(data_dir / "create_context" / "data.json", cache_dir=cache, report=report)
    assert [e.question[:4] for e in exs] == ["How ", "List", "Same"]
    assert exs[0].db_id == exs[2].db_id and exs[0].db_path == exs[2].db_path  # one db per context
    for e in exs:
        assert Path(e.db_path).is_relative_to(cache)
        assert run(e.db_path, e.gold_sql) in ([], [(0,)], [(None,)])  # the SQL runs on the empty schema
    reasons = sorted(p.message for p in report.problems)
    assert len(reasons) == 3
    assert any("not CREATE TABLE" in r for r in reasons)
    assert any("rejected by SQLite" in r for r in reasons)
    assert any("missing field 'question'" in r for r in reasons)
    # nothing is left behind by the rejected contexts, and reloading changes nothing
    assert len(list((cache / "create_context").iterdir())) == 2
    before = os.stat(exs[0].db_path).st_mtime_ns
    load_create_context(data_dir / "create_context" / "data.json", cache_dir=cache)
    assert os.stat(exs[0].db_path).st_mtime_ns == before


# --- plain JSONL -------------------------------------------------------------------------------------


def test_jsonl_documented_schema(data_dir: Path) -> None:
    f = data_dir / "jsonl" / "examples.jsonl"
    report = LoadReport()
    exs = load_jsonl(f, db_dir=data_dir / "spider" / "database", report=report)
    assert [e.id for e in exs] == ["q1", "examples-2", "examples-7"]
    q1, second, third = exs
    assert q1.gold_sql == "SELECT count(*) FROM item" and q1.difficulty == "simple"
    assert q1.meta["origin"] == "hand" and q1.meta["line"] == 1
    assert q1.db_path == str(data_dir / "spider" / "database" / "shop" / "shop.sqlite")  # from db_dir
    assert second.db_path == str(data_dir / "jsonl" / "dbs" / "shop.sqlite")  # relative to the file
    assert second.turns == (Turn("How many items?", "SELECT count(*) FROM item"),)
    assert third.gold_sql is None and third.evidence == "a hint"
    assert sorted(p.line for p in report.problems) == [4, 5, 6, 8]


# --- registry ---------------------------------------------------------------------------------------


def test_registry_dispatches_every_kind(data_dir: Path) -> None:
    assert set(LOADERS) == {"spider", "bird", "sparc", "cosql", "chase", "wikisql", "create_context", "jsonl"}
    exs = load_examples("spider", data_dir / "spider", "dev")
    assert len(exs) == 3 and all(isinstance(e, Example) for e in exs)
    assert len(load_examples("jsonl", data_dir / "jsonl" / "examples.jsonl")) == 3
    assert len(load_examples("create_context", data_dir / "create_context" / "data.json")) == 3
    with pytest.raises(DataError, match="unknown dataset kind"):
        load_examples("nope", data_dir)
