"""sql-create-context EX: filled databases make a wrong query that runs fail, the gold pass on
every fill, and an example without a usable fill is unmeasurable (never EX = 1 by default)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from sqlcoach.data.create_context import literals, load_create_context, read_fills
from sqlcoach.metrics import evaluate_examples

# rows in b-mc2/sql-create-context's format (question, context, answer)
ROWS = [
    {"question": "How many heads of the departments are older than 56 ?",
     "context": "CREATE TABLE head (age INTEGER)", "answer": "SELECT COUNT(*) FROM head WHERE age > 56"},
    {"question": "What is the nation of the team with 3 bronze medals?",
     "context": "CREATE TABLE table_name_12 (nation VARCHAR, bronze VARCHAR)",
     "answer": 'SELECT nation FROM table_name_12 WHERE bronze = "3"'},
    {"question": "Which venue hosted the game against Essendon?",
     "context": "CREATE TABLE table_name_5 (venue VARCHAR, away_team VARCHAR)",
     "answer": 'SELECT venue FROM table_name_5 WHERE away_team = "essendon"'},
    {"question": "List the names of the people older than 30.",
     "context": "CREATE TABLE people (name TEXT, age INTEGER CHECK (age < 0))",
     "answer": "SELECT name FROM people WHERE age > 30"},
]
# wrong queries that run: a different comparison, a different column, no filter, the other literal
WRONG = [
    "SELECT COUNT(*) FROM head WHERE age >= 56",
    'SELECT nation FROM table_name_12 WHERE bronze = "4"',
    "SELECT venue FROM table_name_5",
    "SELECT name FROM people",
]


def _load(tmp_path: Path, **kw):
    data = tmp_path / "cc.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return load_create_context(data, cache_dir=tmp_path / "cache", **kw)


def test_literals_are_placed_by_column():
    lits = literals("older than 56 ?", "SELECT COUNT(*) FROM head WHERE age > 56")
    assert lits["columns"] == {"age": [56]}
    lits = literals("against Essendon", 'SELECT venue FROM t WHERE away_team = "essendon" AND x LIKE \'%ab%\'')
    assert lits["columns"] == {"away_team": ["essendon"], "x": ["ab"]}


def test_wrong_query_that_runs_no_longer_scores_ex_1_and_gold_passes_every_fill(tmp_path):
    exs = _load(tmp_path)
    assert [e.meta["fills"] for e in exs] == [3, 3, 3, 0]
    assert "accepted none of the 8 generated rows" in exs[3].meta["ex_unmeasurable"]  # its CHECK refuses every row
    # the prompt's database stays empty (no generated value or gold literal can reach a prompt)
    con = sqlite3.connect(exs[0].db_path)
    assert con.execute("SELECT COUNT(*) FROM head").fetchone() == (0,)
    con.close()
    fills = read_fills(Path(exs[0].db_path).parent)["fills"]
    assert len(fills) == 3
    for ex in exs[:3]:  # every fill has rows, and the gold's literal is in some of them
        folder = Path(ex.db_path).parent
        for f in read_fills(folder)["fills"]:
            con = sqlite3.connect(folder / f)
            table = con.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchone()[0]
            assert con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] > 0
            con.close()

    gold = evaluate_examples(exs, [e.gold_sql for e in exs], etype="all", workers=0)
    assert [v.ex for v in gold.verdicts[:3]] == [True, True, True]
    assert gold.verdicts[3].error == "unmeasurable" and gold.verdicts[3].ex is False
    assert gold.verdicts[3].em is True  # EM is still scored
    assert gold.summary["all"]["ex"] == 1.0 and gold.summary["all"]["unmeasurable"] == 1

    wrong = evaluate_examples(exs, WRONG, etype="exec", workers=0)
    assert [v.ex for v in wrong.verdicts] == [False, False, False, False]
    assert [v.error for v in wrong.verdicts] == ["wrong_result"] * 3 + ["unmeasurable"]
    assert wrong.summary["all"]["ex"] == 0.0
    assert "1 EX-unmeasurable left out" in wrong.table()

    # the old behaviour, for contrast: on the empty schema alone every wrong query that runs "matched"
    from sqlcoach.metrics import evaluate_pairs

    import shutil

    bare = []
    for k, e in enumerate(exs[:3]):  # the empty schema databases alone, without their fills
        (tmp_path / "bare" / str(k)).mkdir(parents=True)
        bare.append((shutil.copy(e.db_path, tmp_path / "bare" / str(k) / "x.sqlite"),))
    empty = evaluate_pairs(WRONG[:3], [(e.gold_sql, e.db_id) for e in exs[:3]], db_files=bare, etype="exec", workers=0)
    assert [v.ex for v in empty.verdicts] == [True, True, True]


def test_fills_are_deterministic_and_reused(tmp_path):
    exs = _load(tmp_path)
    folder = Path(exs[1].db_path).parent
    first = {f: (folder / f).read_bytes() for f in read_fills(folder)["fills"]}
    stamp = {f: (folder / f).stat().st_mtime_ns for f in first}
    _load(tmp_path)  # same records: nothing rewritten
    assert {f: (folder / f).stat().st_mtime_ns for f in first} == stamp
    other = tmp_path / "again"
    other.mkdir()
    exs2 = _load(other)
    folder2 = Path(exs2[1].db_path).parent
    assert {f: (folder2 / f).read_bytes() for f in read_fills(folder2)["fills"]} == first


def test_no_fill_requested_is_unmeasurable_never_1(tmp_path):
    exs = _load(tmp_path, fills=0)
    rep = evaluate_examples(exs, WRONG, etype="exec", workers=0)
    assert all(v.error == "unmeasurable" for v in rep.verdicts)
    assert rep.summary["all"]["ex"] is None
