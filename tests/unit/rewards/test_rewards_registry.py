"""build_rewards: presets, options, names; and the TRL contract end to end."""

from __future__ import annotations

import inspect

import pytest

from sqlcoach.errors import ConfigError
from sqlcoach.rewards import PRESETS, REWARDS, build_rewards, close_rewards


def test_presets_build_named_callables(pool):
    rewards = build_rewards("seed-multi", pool=pool)
    assert [r.__name__ for r in rewards] == ["execution", "format", "reasoning_quality", "complexity"]
    assert [r.weight for r in rewards] == [1.2, 1.0, 0.7, 0.6]
    arctic = build_rewards("arctic", pool=pool)
    assert [r.__name__ for r in arctic] == ["execution_binary", "format"]
    assert arctic[1].weight == 0.1 and arctic[1].template == "reasoning"
    assert rewards[1].template == "reasoning_tags"
    # the execution rewards of one build share one pool handle
    both = build_rewards(["execution", "execution_binary"])
    assert both[0].scorer.handle is both[1].scorer.handle
    close_rewards(both)


def test_every_registered_reward_follows_the_trl_signature():
    for name, cls in REWARDS.items():
        params = inspect.signature(cls.__call__).parameters
        assert list(params)[1:4] == ["prompts", "completions", "completion_ids"], name
        assert any(p.kind is p.VAR_KEYWORD for p in params.values()), name
    for preset in PRESETS.values():
        assert all(name in REWARDS for name, _ in preset)


def test_options_routing(pool):
    rewards = build_rewards("seed-multi", pool=pool, format={"template": "omnisql"}, mode="bird",
                            gold_column="query")  # fmt: skip
    execution, fmt, _, complexity = rewards
    assert fmt.template == "omnisql"
    assert execution.scorer.mode == "bird" and execution.gold_column == "query"
    assert complexity.gold_column == "query"
    custom = build_rewards(["format", ("ngram", {"weight": 0.2}), {"name": "schema_linking", "weight": 0.3}], pool=pool)
    assert [(r.__name__, r.weight) for r in custom] == [("format", 1.0), ("ngram", 0.2), ("schema_linking", 0.3)]
    assert build_rewards("execution", pool=pool, execution={"weight": 2.0})[0].weight == 2.0


def test_build_errors(pool):
    with pytest.raises(ConfigError, match="unknown reward preset"):
        build_rewards("nope")
    with pytest.raises(ConfigError, match="unknown reward"):
        build_rewards(["execution", "nope"])
    with pytest.raises(ConfigError, match="taken by none"):
        build_rewards("format", colour="red")
    with pytest.raises(ConfigError, match="no option"):
        build_rewards("format", format={"mode": "bird"})
    with pytest.raises(ConfigError, match="named"):
        build_rewards(["format", "format"])
    with pytest.raises(ConfigError, match="at least one"):
        build_rewards([])
    with pytest.raises(ConfigError, match="'name'"):
        build_rewards([{"weight": 1}])


def test_seed_multi_on_a_batch(concert_db, pool):
    """The whole preset on a GRPO-shaped batch: 2 prompts x 2 generations, one bad gold."""
    rewards = build_rewards("seed-multi", pool=pool)
    good = "<reasoning>First read the singer table, then list each name.</reasoning>\n<sql>SELECT name FROM singer</sql>"
    bad = "SELECT nope FROM singer"
    columns = {
        "db_path": [str(concert_db)] * 4,
        "gold_sql": ["SELECT name FROM singer"] * 2 + ["SELECT missing FROM singer"] * 2,
        "db_id": ["concert"] * 4,
        "trainer_state": None,
    }
    logged: dict[str, list] = {}
    metrics: dict[str, float] = {}
    out = {
        r.__name__: r(prompts=["q"] * 4, completions=[good, bad, good, bad], completion_ids=None,
                      log_extra=lambda k, v: logged.setdefault(k, v), log_metric=metrics.__setitem__, **columns)
        for r in rewards
    }  # fmt: skip
    assert out["execution"][:2] == pytest.approx([1.2, 0.144]) and out["execution"][2:] == [None, None]
    assert out["format"] == [1.0, 0.0, 1.0, 0.0]
    # complexity reads the gold's text only: a gold that parses but fails to run still scores
    assert out["complexity"] == pytest.approx([0.6] * 4)
    assert all(0.0 < v <= 0.7 for v in out["reasoning_quality"][::2])
    assert logged["execution/sql"][0] == "SELECT name FROM singer"
    assert metrics["execution/ex"] == 0.5
