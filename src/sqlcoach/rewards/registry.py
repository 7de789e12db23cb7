"""Registry of reward functions, presets, and ``build_rewards``.

``REWARDS`` maps a name to the class that builds that reward; ``PRESETS`` maps a preset name to
``(reward name, options)`` pairs. Adding a reward or a preset is adding an entry: nothing here
branches on dataset or reward names.

    rewards = build_rewards("seed-multi", format={"template": "omnisql"})
    trainer = GRPOTrainer(..., reward_funcs=rewards)   # TRL logs each by rewards[i].__name__
"""

from __future__ import annotations

import inspect
from typing import Any, Iterable

from sqlcoach.errors import ConfigError
from sqlcoach.rewards.agent import AgentFormatReward
from sqlcoach.rewards.base import RewardFn
from sqlcoach.rewards.complexity import ComplexityReward
from sqlcoach.rewards.consensus import ConsensusReward
from sqlcoach.rewards.execution import ExecutionBinaryReward, ExecutionReward, PoolHandle
from sqlcoach.rewards.format import FormatReward
from sqlcoach.rewards.linking import NgramReward, SchemaLinkingReward
from sqlcoach.rewards.reasoning import ReasoningQualityReward
from sqlcoach.rewards.reward_model import RewardModelReward
from sqlcoach.rewards.verifier import VerifierReward

REWARDS: dict[str, type] = {
    "execution": ExecutionReward,
    "execution_binary": ExecutionBinaryReward,
    "format": FormatReward,
    "complexity": ComplexityReward,
    "reasoning_quality": ReasoningQualityReward,
    "schema_linking": SchemaLinkingReward,
    "ngram": NgramReward,
    "reward_model": RewardModelReward,  # a trained RM (`sqlcoach train rm`): needs model_dir
    "consensus": ConsensusReward,  # no gold: agreement of the G samples' results (`sqlcoach adapt`)
    "verifier": VerifierReward,  # a trained verifier (`sqlcoach train verifier`): needs verifier_path; no gold read
    "agent_format": AgentFormatReward,  # multi-turn GRPO (an `agent:` block): the trajectory answered, no malformed turn
}

PRESETS: dict[str, tuple[tuple[str, dict[str, Any]], ...]] = {
    # Execution, format, reasoning and complexity with the weights of the issue (sum 3.5).
    "seed-multi": (
        ("execution", {"weight": 1.2}),
        ("format", {"weight": 1.0, "template": "reasoning_tags"}),
        ("reasoning_quality", {"weight": 0.7}),
        ("complexity", {"weight": 0.6}),
    ),
    # Arctic-Text2SQL-R1: the binary execution reward, plus a small format term.
    "arctic": (
        ("execution_binary", {"weight": 1.0}),
        ("format", {"weight": 0.1, "template": "reasoning"}),
    ),
}

# Options that configure the shared executor pool rather than a reward.
_POOL_OPTIONS = ("workers", "limits")


def _specs(preset_or_list: str | Iterable[Any]) -> list[tuple[str, dict[str, Any]]]:
    if isinstance(preset_or_list, str):
        if preset_or_list in PRESETS:
            return [(name, dict(opts)) for name, opts in PRESETS[preset_or_list]]
        if preset_or_list in REWARDS:
            return [(preset_or_list, {})]
        raise ConfigError(
            f"unknown reward preset or reward {preset_or_list!r}; presets: {sorted(PRESETS)}, rewards: {sorted(REWARDS)}"
        )
    specs: list[tuple[str, dict[str, Any]]] = []
    for item in preset_or_list:
        if isinstance(item, str):
            specs.append((item, {}))
        elif isinstance(item, dict):
            opts = dict(item)
            if "name" not in opts:
                raise ConfigError(f"reward entry {item!r} needs a 'name' key (one of {sorted(REWARDS)})")
            specs.append((str(opts.pop("name")), opts))
        elif isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[1], dict):
            specs.append((str(item[0]), dict(item[1])))
        else:
            raise ConfigError(f"reward entry {item!r} must be a name, a (name, options) pair or a dict with 'name'")
    for name, _ in specs:
        if name not in REWARDS:
            raise ConfigError(f"unknown reward {name!r}; known: {sorted(REWARDS)}")
    if not specs:
        raise ConfigError("no reward functions given: GRPO needs at least one")
    return specs


def _accepts(cls: type, key: str) -> bool:
    return key in _options_of(cls)


def _options_of(cls: type) -> set[str]:
    # Constructor parameters, following **kwargs up the class hierarchy (a subclass that only
    # changes the default weight forwards everything else to its base).
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in klass.__dict__ or klass is object:
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        names.update(p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != "self")
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names


def build_rewards(preset_or_list: str | Iterable[Any], *, pool: Any = None, **options: Any) -> list[RewardFn]:
    """Build the reward callables of a preset or of a list of rewards.

    ``preset_or_list``: a preset name (``PRESETS``), one reward name, or a list whose items are
    reward names, ``(name, options)`` pairs, or ``{"name": ..., **options}`` dicts.
    ``pool``: an ``ExecutorPool`` shared by the execution rewards; when ``None`` one is created on
    first use (``workers=`` and ``limits=`` options configure it) and shared by all of them.
    ``options``: a key that names a reward (``format={"template": "think"}``) gives options to
    that reward; any other key goes to every built reward whose constructor takes it
    (``mode="bird"``, ``gold_column="query"``). Later sources win: preset or list entry <
    shared option < per-reward option.

    Guarantees: a non-empty list, in the given order, of callables with TRL's reward contract,
    each with a distinct ``__name__``. Raises ``ConfigError`` for an unknown name, an option no
    built reward takes, or two rewards with the same name.
    """
    specs = _specs(preset_or_list)
    handle = pool if isinstance(pool, PoolHandle) else PoolHandle(
        pool, **{k: options.pop(k) for k in _POOL_OPTIONS if k in options}
    )
    per_reward = {k: options.pop(k) for k in list(options) if k in REWARDS}
    for name, opts in per_reward.items():
        if not isinstance(opts, dict):
            raise ConfigError(f"options for reward {name!r} must be a mapping, got {type(opts).__name__}")
    used_shared: set[str] = set()
    rewards: list[RewardFn] = []
    for name, opts in specs:
        cls = REWARDS[name]
        kwargs = dict(opts)
        for key, value in options.items():
            if _accepts(cls, key):
                kwargs[key] = value
                used_shared.add(key)
        kwargs.update(per_reward.get(name, {}))
        if _accepts(cls, "pool"):
            kwargs["pool"] = handle
        for key in kwargs:
            if not _accepts(cls, key):
                raise ConfigError(f"reward {name!r} has no option {key!r}")
        rewards.append(cls(**kwargs))
    unused = set(options) - used_shared
    if unused:
        raise ConfigError(f"reward options {sorted(unused)} are taken by none of {[n for n, _ in specs]}")
    names = [r.__name__ for r in rewards]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"two rewards are named {duplicates}; give one a different name= (TRL logs rewards by name)")
    return rewards


def close_rewards(rewards: Iterable[Any]) -> None:
    """Stop the executor pools that ``build_rewards`` created for these rewards (caller's pools are kept)."""
    for reward in rewards:
        scorer = getattr(reward, "scorer", None)
        handle = scorer.handle if scorer is not None else getattr(reward, "handle", None)  # consensus: its own handle
        if isinstance(handle, PoolHandle):
            handle.close()
