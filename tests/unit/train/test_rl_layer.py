"""The RL layer GRPO and PPO share (train/rl.py): one prompt-row rule, one reward list, one
sample-row builder, the pool's timeout, the outcome source."""

from __future__ import annotations

import random
import sqlite3

import pytest

from sqlcoach.config import GRPORunConfig, PPORunConfig, build_config
from sqlcoach.errors import ConfigError
from sqlcoach.execution.pool import ExecutorPool
from sqlcoach.train import rl
from sqlcoach.types import Example


@pytest.fixture()
def db(tmp_path):
    path = tmp_path / "shop.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE item (item_id INTEGER PRIMARY KEY, name TEXT)")
    con.executemany("INSERT INTO item VALUES (?, ?)", [(1, "pen"), (2, "ink")])
    con.commit()
    con.close()
    return str(path)


def _cfg(cls, **kw):
    base = dict(model="m", data_path="d", template="sql_terminal", schema_style="compact", schema_sample_values=0,
                value_retrieval=0, token_budget=0, turn_history="questions", reward_workers=0)
    return build_config(cls, {**base, **kw})


@pytest.mark.parametrize("cls", [GRPORunConfig, PPORunConfig])
def test_both_recipes_shuffle_with_the_seed_then_cut_to_max_examples(cls, db):
    exs = [Example(id=f"q{i}", db_id="shop", question=f"q {i}?", gold_sql="SELECT name FROM item", db_path=db)
           for i in range(12)]
    cfg = _cfg(cls, max_examples=5, seed=3)
    pool = ExecutorPool(workers=0)
    try:
        rows, report = rl.prompt_rows(cfg, rl.rl_task(cfg, pool), pool=pool, log=lambda m: None, examples=exs)
    finally:
        pool.close()
    order = list(exs)
    random.Random(3).shuffle(order)
    assert [r["id"] for r in rows] == [e.id for e in order[:5]]
    assert report["build"] == {"examples": 5, "rows": 5} and report["gold"]["kept"] == 5 and report["pass_rate"] is None


def test_the_pool_runs_queries_with_the_reward_timeout():
    pool = rl.rl_pool(_cfg(PPORunConfig, reward_timeout=2.5))
    try:
        assert pool.limits.timeout == 2.5
    finally:
        pool.close()


def test_rewards_a_one_preset_list_and_the_outcome_source():
    cfg = _cfg(PPORunConfig, rewards=["arctic"])
    rewards = rl.rl_rewards(cfg, None)
    assert [r.__name__ for r in rewards] == ["execution_binary", "format"]
    assert rl.outcome_source(rewards) is rewards[0] and rl.outcome_source(rewards[1:]) is None

    def format(prompts=None, completions=(), completion_ids=None, **kw):  # noqa: A001 - the clashing name is the point
        return [0.0] * len(completions)

    with pytest.raises(ConfigError, match="distinct"):
        rl.rl_rewards(cfg, None, [format])


def test_sample_rows_show_one_completion_per_group_first():
    completions = [[{"role": "assistant", "content": f"SELECT {i}"}] for i in range(6)]
    columns = {"question": ["a", "a", "a", "b", "b", "b"], "db_id": ["d"] * 6, "gold_sql": ["g"] * 6}
    rows = rl.sample_rows(completions, columns, {"r1": [1.0, None, 0.5, 0.0, 2.0, 1.0], "r2": [0.5] * 6}, None, n=3, group=3)
    assert [r["index"] for r in rows] == [0, 3, 1]
    assert rows[0]["sql"] == "SELECT 0" and rows[0]["result"] is None and rows[0]["reward"] == 1.5
    assert rows[2]["rewards"] == {"r1": None, "r2": 0.5} and rows[2]["reward"] == 0.5
    totals = rl.sample_rows(completions, columns, {"r1": [1.0] * 6}, None, n=1, totals=[0.25] * 6)
    assert totals[0]["reward"] == 0.25 and rl.sample_rows([], {}, {}, None, n=3) == []
