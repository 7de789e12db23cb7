"""Unlabeled questions for `sqlcoach adapt` (``data.questions``): the three formats, gold never
carried, and the bad-input errors (one line each, naming what is wrong)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from sqlcoach.cli import main
from sqlcoach.data.questions import load_questions, question_bucket
from sqlcoach.errors import DataError


@pytest.fixture()
def dbs(tmp_path):
    root = tmp_path / "database"
    for name in ("shop", "zoo"):
        (root / name).mkdir(parents=True)
        con = sqlite3.connect(root / name / f"{name}.sqlite")
        con.execute("CREATE TABLE t (a INTEGER)")
        con.commit()
        con.close()
    return root


def test_spider_file_gold_is_never_carried(tmp_path, dbs):
    f = tmp_path / "dev.json"
    f.write_text(json.dumps([{"db_id": "shop", "question": "How many?", "query": "SELECT count(*) FROM t"},
                             {"db_id": "zoo", "question": "All a", "query": "SELECT a FROM t", "SQL": "x"}]))
    qs = load_questions(f, databases=dbs)
    assert qs.format == "json" and qs.databases == ["shop", "zoo"]
    assert [e.gold_sql for e in qs.examples] == [None, None]
    assert [e.question for e in qs.examples] == ["How many?", "All a"]
    assert qs.examples[0].db_path == str(dbs / "shop" / "shop.sqlite")


def test_text_lines_and_jsonl(tmp_path, dbs):
    t = tmp_path / "log.txt"
    t.write_text("# my question log\nHow many rows?\n\nList a.\n")
    qs = load_questions(t, db=dbs / "zoo" / "zoo.sqlite")
    assert qs.format == "text" and [(e.db_id, e.question) for e in qs.examples] == [("zoo", "How many rows?"), ("zoo", "List a.")]
    j = tmp_path / "q.jsonl"
    j.write_text('{"question": "How many?", "db_id": "shop"}\n{"question": "x", "db_id": "zoo"}\n')
    assert load_questions(j, databases=dbs).format == "jsonl"
    with pytest.raises(DataError, match="db_id"):
        load_questions(t, databases=dbs)  # text lines name no database


def test_unknown_database_names_both(tmp_path, dbs):
    j = tmp_path / "q.jsonl"
    j.write_text('{"question": "How many?", "db_id": "library"}\n{"question": "x", "db_id": "zoo"}\n')
    with pytest.raises(DataError) as e:
        load_questions(j, databases=dbs)
    assert "library" in str(e.value) and str(dbs) in str(e.value) and "zoo" not in str(e.value).split("[")[1]
    with pytest.raises(DataError, match="library"):
        load_questions(j, db=dbs / "zoo" / "zoo.sqlite")


def test_empty_unreadable_and_malformed_files(tmp_path, dbs):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    with pytest.raises(DataError, match="empty"):
        load_questions(empty, databases=dbs)
    with pytest.raises(DataError, match="cannot read"):
        load_questions(tmp_path / "missing.jsonl", databases=dbs)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "x", "db_id": "zoo"}\n{nope\n')
    with pytest.raises(DataError, match="line 2"):
        load_questions(bad, databases=dbs)


def test_cli_prints_one_line_and_exits_2(tmp_path, dbs, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    code = main(["adapt", "--model", str(tmp_path), "--databases", str(dbs), "--questions", str(empty), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "empty" in err
    j = tmp_path / "q.jsonl"
    j.write_text('{"question": "How many?", "db_id": "library"}\n')
    code = main(["adapt", "--model", str(tmp_path), "--databases", str(dbs), "--questions", str(j), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "library" in err and str(dbs) in err
    assert not (tmp_path / "o" / "final").exists()


def test_bucket_is_a_fixed_rule_of_the_text():
    assert question_bucket("How many?") == question_bucket("  How many?\n")
    assert 0 <= question_bucket("anything") < 100
