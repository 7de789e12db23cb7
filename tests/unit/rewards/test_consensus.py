"""The consensus reward (``rewards.consensus``): grouping by result, the safeguards (empty results
never win, errors never vote, ties and thin majorities give no winner), and the reward call."""

from __future__ import annotations

import json
import sqlite3

import pytest

from sqlcoach.errors import ConfigError
from sqlcoach.rewards import build_rewards
from sqlcoach.rewards.consensus import ConsensusReward, consensus, empty_result
from sqlcoach.types import ExecResult


def ok(*rows):
    return ExecResult(rows=tuple(tuple(r) for r in rows))


ERR = ExecResult(rows=None, error="exec_error", message="no such column")


def test_largest_group_wins_and_order_of_rows_is_ignored():
    c = consensus(["a", "b", "c", "d"], [ok((1,), (2,)), ok((2,), (1,)), ok((3,)), ok((1,), (2,))], min_share=0.5)
    assert c.winner == 0 and c.sizes == (3, 1) and c.share == 0.75
    assert [c.in_winner(i) for i in range(4)] == [True, True, False, True]


def test_tie_for_largest_gives_no_winner():
    c = consensus(["a", "b", "c", "d"], [ok((1,)), ok((2,)), ok((1,)), ok((2,))], min_share=0.25)
    assert c.winner is None and c.reason.startswith("tie")
    assert not any(c.in_winner(i) for i in range(4))


def test_empty_results_never_win_even_as_the_majority():
    # [] == [] must not earn the reward (SQL-R1 issue #28); a row of NULLs is empty too
    c = consensus(["a", "b", "c", "d", "e"], [ok(), ok(), ok(), ok((7,)), ok((7,))], min_share=0.4)
    assert c.winner is not None and c.in_winner(3) and c.in_winner(4) and not c.in_winner(0)
    assert c.empty == 3
    c2 = consensus(["a", "b", "c"], [ok(), ok(), ok((None,))], min_share=0.1)
    assert c2.winner is None and c2.reason == "every result that ran is empty"
    assert empty_result(((None, None),)) and not empty_result(((None, 1),))


def test_errors_never_count_as_votes_but_count_in_the_share():
    # three identical failures are no group at all; the single success holds 1/4 < 0.5
    c = consensus(["x", "x", "x", "ok"], [ERR, ERR, ERR, ok((1,))], min_share=0.5)
    assert c.winner is None and c.errors == 3 and "min_share" in c.reason
    c = consensus(["x", "x", "x", "ok"], [ERR, ERR, ERR, ok((1,))], min_share=0.25)
    assert c.winner == 0 and not c.in_winner(0) and c.in_winner(3)
    assert consensus(["", "", ""], [None, None, None], min_share=0.1).reason == "no sample ran"


def test_share_threshold_is_inclusive():
    res = [ok((1,)), ok((1,)), ok((2,)), ok((3,))]
    assert consensus(list("abcd"), res, min_share=0.5).winner == 0
    assert consensus(list("abcd"), res, min_share=0.51).winner is None


@pytest.fixture()
def db(tmp_path):
    path = tmp_path / "d.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (a INTEGER)")
    con.executemany("INSERT INTO t VALUES (?)", [(1,), (2,), (3,)])
    con.execute("CREATE TABLE e (a INTEGER)")
    con.commit()
    con.close()
    return str(path)


def _call(reward, comps, ids, db, **extra):
    cols = {"id": ids, "db_path": [db] * len(comps), "db_id": ["d"] * len(comps),
            "question": [f"question {i}" for i in ids], **extra}
    return reward(prompts=None, completions=comps, completion_ids=None, **cols)


def test_reward_groups_by_question_id_and_never_reads_gold(db, tmp_path):
    log = tmp_path / "decisions.jsonl"
    r = ConsensusReward(weight=2.0, min_share=0.5, decisions_path=str(log))
    comps = ["SELECT count(*) FROM t", "SELECT COUNT(a) FROM t", "SELECT max(a) FROM t", "SELECT nope FROM t",
             "SELECT a FROM e", "SELECT a FROM e", "SELECT a FROM e", "SELECT 1"]
    ids = ["q1"] * 4 + ["q2"] * 4
    base = _call(r, comps, ids, db)
    # count(*) = COUNT(a) = max(a) = 3: three of four agree; q2's majority is empty -> skipped
    assert base == [2.0, 2.0, 2.0, 0.0, None, None, None, None]
    # the gold column is not read: garbage in it changes nothing
    garbage = _call(ConsensusReward(weight=2.0, min_share=0.5), comps, ids, db, gold_sql=["DROP TABLE t; --"] * 8)
    assert garbage == base
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [d["id"] for d in lines] == ["q1", "q2"] and lines[1]["reason"] == "largest group 1/4 < min_share 0.5"
    assert lines[0]["share"] == 0.75 and lines[0]["errors"] == 1 and lines[0]["winner_sql"] == "SELECT count(*) FROM t"
    r.handle.close()


def test_registered_by_name_with_options(db):
    (r,) = build_rewards(["consensus"], consensus={"min_share": 0.75})
    assert r.__name__ == "consensus" and r.min_share == 0.75
    with pytest.raises(ConfigError, match="min_share"):
        ConsensusReward(min_share=0)
