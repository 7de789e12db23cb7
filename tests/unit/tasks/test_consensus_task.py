"""The label-free task (``tasks.consensus``): every example with a database becomes a row, and a
row never carries gold SQL, even when the example did."""

from __future__ import annotations

import sqlite3

from sqlcoach.prompts.builder import PromptBuilder
from sqlcoach.tasks import TASKS, build_task
from sqlcoach.types import Example


def test_rows_have_no_gold_and_keep_gold_less_examples(tmp_path):
    db = tmp_path / "s.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t (a INTEGER)")
    con.commit()
    con.close()
    exs = [Example(id="a", db_id="s", question="How many?", gold_sql="SELECT count(*) FROM t", db_path=str(db)),
           Example(id="b", db_id="s", question="List a.", db_path=str(db))]
    task = build_task("consensus", PromptBuilder("sql_terminal", "compact", 0))
    assert "consensus" in TASKS and task.needs_gold is False
    rows = task.train_rows(exs)
    assert [r["id"] for r in rows] == ["a", "b"] and all(r["gold_sql"] is None for r in rows)
    task.close()
