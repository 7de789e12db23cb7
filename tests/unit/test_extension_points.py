"""One conformance test per named extension point (DESIGN.md, style 13): every registered recipe
keeps ``RecipeFn``, every generator ``GenerateFn``, every registered reward ``RewardFn`` (and the
executing ones ``OutcomeSource``), every registered task ``Task``."""

from __future__ import annotations

import inspect
import typing

import pytest

from sqlcoach.generate.base import GenerateFn
from sqlcoach.rewards.base import OutcomeSource, RewardFn
from sqlcoach.tasks import TASKS, Environment, Task, is_multi_turn


def _params(fn) -> list[tuple[str, object, object]]:
    """(name, kind, default) of each parameter, ``self`` left out."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values() if p.name != "self"]


def test_every_recipe_keeps_the_recipe_contract():
    from sqlcoach.train.recipes import RECIPES, RecipeFn

    contract = {name: (kind, default) for name, kind, default in _params(RecipeFn.__call__)[1:]}
    assert set(contract) == {"resume", "callbacks", "log"}
    for name, recipe in RECIPES.items():
        params = inspect.signature(recipe.run).parameters
        first, *rest = params.values()
        assert first.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD, name  # cfg
        for key, (kind, default) in contract.items():
            assert key in params, f"{name} has no {key}="
            assert (params[key].kind, params[key].default) == (kind, default), (name, key)
        # anything beyond the contract is optional: a caller that knows only the contract can call it
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not p.empty for p in rest), name


def test_generators_keep_the_generate_contract():
    from sqlcoach.generate import vllm_backend
    from sqlcoach.generate.hf import generate_texts

    contract = _params(GenerateFn.__call__)
    # the reference keeps the contract in order; anything beyond it is keyword-only and optional
    # (HF's prefix_cache), so a caller that knows only the contract can call it
    assert _params(generate_texts)[: len(contract)] == contract
    assert all(kind is inspect.Parameter.KEYWORD_ONLY and default is not inspect.Parameter.empty
               for _, kind, default in _params(generate_texts)[len(contract):])
    for factory in (vllm_backend.vllm_generate_fn, vllm_backend.vllm_server_generate_fn):
        assert typing.get_type_hints(factory)["return"] is GenerateFn
    # the functions the vLLM factories return spell the same parameters (read from their source:
    # building them needs vLLM and a GPU)
    src = inspect.getsource(vllm_backend)
    for name, _, _default in _params(GenerateFn.__call__):
        assert src.count(f"{name}: ") >= 2, name


def test_every_registered_reward_keeps_the_reward_contract():
    from sqlcoach.rewards import REWARDS, build_rewards, close_rewards

    # the reward model and the verifier need a trained folder
    names = [n for n in REWARDS if n not in ("reward_model", "verifier")]
    rewards = build_rewards(names)
    try:
        for r in rewards:
            assert isinstance(r, RewardFn) and r.__name__ in REWARDS
            assert [p[:2] for p in _params(type(r).__call__)] == [p[:2] for p in _params(RewardFn.__call__)]
            assert isinstance(r, OutcomeSource) == r.__name__.startswith("execution"), r.__name__
            assert r(prompts=[], completions=[], completion_ids=[], gold_sql=[], db_path=[]) == []
    finally:
        close_rewards(rewards)
    from sqlcoach.rewards.reward_model import RewardModelReward

    rm = RewardModelReward("rm-folder")  # loads nothing until called
    assert isinstance(rm, RewardFn) and not isinstance(rm, OutcomeSource)
    assert [p[:2] for p in _params(RewardModelReward.__call__)] == [p[:2] for p in _params(RewardFn.__call__)]
    from sqlcoach.rewards.base import Reward
    from sqlcoach.rewards.verifier import VerifierReward

    assert issubclass(VerifierReward, Reward) and "last_outcomes" not in vars(VerifierReward)
    assert [p[:2] for p in _params(VerifierReward.__call__)] == [p[:2] for p in _params(RewardFn.__call__)]


def test_every_registered_task_keeps_the_task_contract():
    from sqlcoach.prompts.builder import PromptBuilder

    for name, factory in TASKS.items():
        task = factory(PromptBuilder(), pool=None)
        assert isinstance(task, Task) and task.name == name
        for method in ("train_rows", "eval_rows", "outcomes", "outcome"):
            assert _params(getattr(task, method)) == _params(getattr(Task, method)), (name, method)
        assert is_multi_turn(task) == isinstance(task, Environment)


def test_a_multi_turn_environment_plugs_into_the_same_contract():
    """What the agent issue adds: a Task with ``step`` and ``max_turns`` is an Environment."""
    from sqlcoach.tasks import SqlExecutionTask, Step

    class OneQueryAgent(SqlExecutionTask):
        name, max_turns = "agent", 2

        def step(self, row, history, completion):
            return Step(done=True, outcome=self.outcome(row, completion))

    class NoStep(SqlExecutionTask):
        max_turns = 2

    from sqlcoach.prompts.builder import PromptBuilder

    assert is_multi_turn(OneQueryAgent(PromptBuilder())) and not is_multi_turn(NoStep(PromptBuilder()))
    with pytest.raises(TypeError):
        Step()  # done is required


def test_the_documented_reward_and_task_examples_plug_in(tmp_path, monkeypatch):
    """docs/architecture.md's ten lines, run: a reward by name in a config, a task without gold."""
    import sqlite3

    from sqlcoach.config import PPORunConfig, build_config
    from sqlcoach.rewards import registry
    from sqlcoach.rewards.base import Reward
    from sqlcoach.rewards.common import completion_sql
    from sqlcoach.tasks import SqlExecutionTask
    from sqlcoach.train import rl
    from sqlcoach.types import Example

    class ShortSQL(Reward):
        default_name = "short_sql"

        def score(self, completions, columns):
            return [self.weight * (len(completion_sql(c)) < 200) for c in completions]

    class VerifiedSQL(SqlExecutionTask):
        name, needs_gold = "verified", False

        def train_rows(self, examples, *, tokenizer=None, log=None):
            return self.rows_where(examples, None, tokenizer=tokenizer, log=log)

    monkeypatch.setitem(registry.REWARDS, "short_sql", ShortSQL)
    monkeypatch.setitem(TASKS, "verified", VerifiedSQL)
    db = tmp_path / "t.sqlite"
    sqlite3.connect(db).executescript("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);")
    cfg = build_config(PPORunConfig, dict(model="m", data_path="d", task="verified", rewards=["execution", "short_sql"],
                                          template="sql_terminal", schema_style="compact", schema_sample_values=0,
                                          value_retrieval=0, token_budget=0, turn_history="questions"))
    short = rl.rl_rewards(cfg, None)[1]
    assert short.__name__ == "short_sql" and short(completions=["SELECT x FROM t", "SELECT " + "x" * 300 + " FROM t"]) == [1.0, 0.0]
    task = rl.rl_task(cfg, None)
    assert isinstance(task, VerifiedSQL) and isinstance(task, Task)
    gold_less = [Example(id="q0", db_id="t", question="x?", gold_sql=None, db_path=str(db))]
    rows, report = rl.prompt_rows(cfg, task, pool=None, log=lambda m: None, examples=gold_less)
    assert [r["id"] for r in rows] == ["q0"] and report["gold"] is None  # no gold curation for a gold-free task


def test_both_agent_protocols_keep_the_turn_protocol():
    """``generate.agent.TurnProtocol``: the tag and tool protocols spell its methods alike, so the
    one environment and loop drive either."""
    from sqlcoach.generate.agent import TagProtocol, ToolProtocol, TurnProtocol

    for name in ("parse", "observation", "prompt", "call_text"):
        contract = _params(getattr(TurnProtocol, name))
        for impl in (TagProtocol, ToolProtocol):
            assert _params(getattr(impl, name))[: len(contract)] == contract, (impl.__name__, name)
    assert TagProtocol().name == "tags" and ToolProtocol("t", "", "", "").name == "tools"
    assert all(isinstance(p.stop_strings, tuple) and p.stop_strings for p in (TagProtocol(), ToolProtocol("t", "", "", "")))
