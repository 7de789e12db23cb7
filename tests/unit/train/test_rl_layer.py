"""The RL layer GRPO and PPO share (train/rl.py): one prompt-row rule, one reward list, one
sample-row builder, the pool's timeout, the outcome source."""

from __future__ import annotations

import random
import sqlite3

import pytest

from sqlcoach.config import GRPORunConfig, PPORunConfig, build_config
from sqlcoach.errors import ConfigError, DataError
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


# ---------------------------------------------------------------------- questions without gold
# With the verifier reward alone (no gold read) the task keeps gold-less questions and gold
# curation is off with a log line; with the execution reward the same questions are refused in one
# line that names the missing gold; gold curation or the pass-rate filter asked for on gold-less
# prompts is a ConfigError.


@pytest.fixture(scope="module")
def verifier(tmp_path_factory):
    """An untrained verifier folder on a tiny policy (the wiring, never the choices)."""
    pytest.importorskip("transformers")
    from fake_verifier import untrained_verifier

    from sqlcoach.models.tiny import TinySize, init_tiny_model

    root = tmp_path_factory.mktemp("gold-free")
    size = TinySize(vocab_size=300, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                    num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128)
    init_tiny_model(root / "policy", size, ["SELECT name FROM item", "how many items"] * 5, seed=0)
    return str(untrained_verifier(root / "policy", root / "verifier"))


def _no_gold(db, n=4):
    return [Example(id=f"q{i}", db_id="shop", question=f"question {i}?", gold_sql=None, db_path=db) for i in range(n)]


def _rows(cfg, examples=None, rows=None):
    from sqlcoach.rewards import close_rewards

    pool = ExecutorPool(workers=0)
    rewards = rl.rl_rewards(cfg, pool)
    logs: list[str] = []
    try:
        task = rl.rl_task(cfg, pool, rewards)
        out, report = rl.prompt_rows(cfg, task, pool=pool, log=logs.append, examples=examples, rows=rows,
                                     rewards=rewards)
    finally:
        close_rewards(rewards)
        pool.close()
    return out, report, logs, task


@pytest.mark.parametrize("cls", [GRPORunConfig, PPORunConfig])
def test_the_verifier_reward_trains_on_questions_without_gold(cls, db, verifier):
    cfg = _cfg(cls, rewards=[{"name": "verifier", "verifier_path": verifier}])
    rows, report, logs, task = _rows(cfg, examples=_no_gold(db))
    assert sorted(r["id"] for r in rows) == ["q0", "q1", "q2", "q3"] and all(r["gold_sql"] is None for r in rows)
    assert task.name == "sql_exec" and task.needs_gold is False
    assert report["gold"] is None and report["build"] == {"examples": 4, "rows": 4}
    assert any(line.startswith("gold curation off: the rewards verifier read no gold") for line in logs)


def test_the_execution_reward_refuses_them_in_one_line(db):
    with pytest.raises(DataError) as err:
        _rows(_cfg(GRPORunConfig, rewards=["execution"]), examples=_no_gold(db))
    msg = str(err.value)
    assert "none of the 4 examples has gold SQL (gold_sql), which the reward execution scores against" in msg
    assert "\n" not in msg
    # ready rows the same, and mixed ones lose only their gold-less rows
    ready = [{"prompt": [{"role": "user", "content": "q?"}], "id": f"r{i}", "db_path": db, "gold_sql": None}
             for i in range(2)]
    with pytest.raises(DataError, match="none of the 2 prompts has gold SQL"):
        _rows(_cfg(GRPORunConfig, rewards=["execution"]), rows=ready)
    mixed = ready + [{**ready[0], "id": "g", "gold_sql": "SELECT name FROM item"}]
    rows, report, logs, _ = _rows(_cfg(GRPORunConfig, rewards=["execution"]), rows=mixed)
    assert [r["id"] for r in rows] == ["g"] and report["gold"]["kept"] == 1
    assert any("dropped 2 of 3 prompts without gold SQL (the reward execution" in line for line in logs)


def test_a_reward_that_reads_gold_beside_the_verifier_needs_it(db, verifier):
    cfg = _cfg(GRPORunConfig, rewards=["format", {"name": "verifier", "verifier_path": verifier}, "execution"])
    with pytest.raises(DataError, match="which the reward execution scores against"):
        _rows(cfg, examples=_no_gold(db))


def test_gold_curation_or_the_pass_rate_filter_asked_for_on_gold_less_prompts(db, verifier):
    reward = [{"name": "verifier", "verifier_path": verifier}]
    with pytest.raises(ConfigError, match="curate_gold: true drops prompts by running their gold SQL, but 4 of 4"):
        _rows(_cfg(GRPORunConfig, rewards=reward, curate_gold=True), examples=_no_gold(db))
    with pytest.raises(ConfigError, match="pass_rate_k=2 scores the start policy's samples against gold SQL"):
        _rows(_cfg(GRPORunConfig, rewards=reward, pass_rate_k=2), examples=_no_gold(db))
    # with gold on every prompt, an explicit curate_gold still curates (the user asked)
    exs = [Example(id="g", db_id="shop", question="names?", gold_sql="SELECT name FROM item", db_path=db)]
    rows, report, _, _ = _rows(_cfg(GRPORunConfig, rewards=reward, curate_gold=True), examples=exs)
    assert report["gold"]["kept"] == 1


def test_the_consensus_task_stays_gold_free(db):
    cfg = _cfg(GRPORunConfig, task="consensus", rewards=["consensus"])
    rows, report, logs, task = _rows(cfg, examples=_no_gold(db, 2))
    assert len(rows) == 2 and report["gold"] is None and task.needs_gold is False
