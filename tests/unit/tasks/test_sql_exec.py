"""The single-turn execution task: it owns the "needs gold" rule, judges on the EX comparer."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sqlcoach.errors import DataError
from sqlcoach.prompts.builder import PromptBuilder
from sqlcoach.tasks import SqlExecutionTask, build_task, needs_gold
from sqlcoach.types import Example


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = tmp_path / "shop.sqlite"
    con = sqlite3.connect(path)
    con.executescript("CREATE TABLE item (id INTEGER, name TEXT); INSERT INTO item VALUES (1, 'pen'), (2, 'ink');")
    con.commit()
    con.close()
    return str(path)


def _ex(i: int, db: str | None, gold: str | None) -> Example:
    return Example(id=f"q{i}", db_id="shop", question=f"question {i}", gold_sql=gold, db_path=db)


def test_train_rows_need_gold_and_eval_rows_do_not(db):
    task = SqlExecutionTask(PromptBuilder("sql_terminal", "compact", 0))
    exs = [_ex(0, db, "SELECT name FROM item"), _ex(1, db, None), _ex(2, None, "SELECT 1")]
    seen: list[str] = []
    train = task.train_rows(exs, log=seen.append)
    assert [r["id"] for r in train] == ["q0"]
    assert seen == ["skipped example q1: no gold SQL", "skipped example q2: no database"]
    evaluation = task.eval_rows(exs)
    assert [r["id"] for r in evaluation] == ["q0", "q1"] and evaluation[1]["gold_sql"] is None
    assert evaluation[1]["prompt"] == PromptBuilder("sql_terminal", "compact", 0).messages(exs[1])
    assert needs_gold(exs[1]) == "no gold SQL" and needs_gold(exs[0]) is None
    with pytest.raises(DataError, match="no usable RL prompt"):
        task.train_rows([exs[1]])


def test_outcome_is_the_execution_comparers(db):
    task = build_task("sql_exec", PromptBuilder("sql_terminal", "compact", 0))
    try:
        gold, gold_less = task.eval_rows([_ex(0, db, "SELECT name FROM item"), _ex(1, db, None)])
        right = task.outcome(gold, "SELECT name FROM item ORDER BY id DESC")  # spider EX: order-free without ORDER BY in gold
        assert right.gold_ok and right.equal and right.executed
        wrong, broken, unscored = task.outcomes([gold, gold, gold_less], ["SELECT id FROM item", "SELEC nope", "SELECT 1"])
        assert wrong.executed and not wrong.equal
        assert broken.error is not None and not broken.equal
        assert not unscored.gold_ok
    finally:
        task.close()
