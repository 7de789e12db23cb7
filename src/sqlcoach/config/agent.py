"""GRPO's ``agent:`` block, typed and checked at load: ``AgentTraining`` is the environment's own
settings (``sqlcoach.generate.agent.AgentConfig``: turns, observation budgets, the answer at the
turn limit, the sandbox timeout; checked by it) plus the protocol, the prompt instruction and the
tokens of one model turn, so that ``sqlcoach train grpo`` refuses a bad block before any model
loads. The ``agent:`` block as a model folder records it (``sqlcoach_recipe.json``'s
``agent``) is ``AgentTraining.as_recipe``, read back by ``AgentTraining.of``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from sqlcoach.errors import ConfigError
from sqlcoach.generate.agent import AgentConfig


class _EnvBlock:
    """What both agent blocks share: the environment's settings and their checks."""

    max_turns: int
    observation_budget: int
    per_observation: int
    on_limit: str
    untagged: str
    observation_names: str
    timeout: float
    protocol: str
    instruction: bool
    keep: bool

    def _check_env(self) -> None:
        if not isinstance(self.instruction, bool):
            raise ConfigError(f"agent instruction must be true or false, got {self.instruction!r}")
        self.env()  # the trajectory settings' own checks

    def env(self) -> AgentConfig:
        """The environment's settings (``sqlcoach.generate.agent.SqlAgentEnv``)."""
        return AgentConfig(max_turns=self.max_turns, observation_budget=self.observation_budget,
                           per_observation=self.per_observation, on_limit=self.on_limit, untagged=self.untagged,
                           timeout=self.timeout, observation_names=self.observation_names, protocol=self.protocol,
                           keep=self.keep)


@dataclass(frozen=True)
class AgentTraining(_EnvBlock):
    """GRPO's ``agent:`` block: multi-turn rollouts (docs/agent.md). Budgets count tokens.

    ``max_turn_tokens`` bounds one model turn (``None``: the whole ``max_completion_length``, which
    bounds the trajectory, observations included); ``instruction`` appends the protocol instruction
    to the prompt (``sqlcoach.prompts.agent``; off for a model that learnt the tags without it).
    ``keep``: the keep action of the tags and review protocols (an empty ``<solution></solution>`` answers with the
    last query that ran). ``protocol``: ``tags`` (SkyRL-SQL's, any chat template) or ``tools`` (native ``run_sql`` tool
    calls through the model's chat template, checked against it when the run builds its rollout:
    ``generate.agent.ToolProtocol``)."""

    protocol: str = "tags"
    max_turns: int = 5
    observation_budget: int = 512
    per_observation: int = 256
    on_limit: str = "last_query"
    untagged: str = "error"
    observation_names: str = "template"
    timeout: float = 5.0
    max_turn_tokens: int | None = None
    instruction: bool = True
    keep: bool = False

    def __post_init__(self) -> None:
        if self.max_turn_tokens is not None and (isinstance(self.max_turn_tokens, bool)
                                                 or not isinstance(self.max_turn_tokens, int) or self.max_turn_tokens < 1):
            raise ConfigError(f"agent max_turn_tokens must be an int >= 1 or null, got {self.max_turn_tokens!r}")
        self._check_env()

    def as_recipe(self, max_total_tokens: int) -> dict[str, Any]:
        """What a model folder records (``sqlcoach_recipe.json``'s ``agent``): this block and the
        tokens per trajectory it was trained with."""
        return {**asdict(self), "max_total_tokens": int(max_total_tokens)}

    @classmethod
    def of(cls, value: Any, where: str = "agent") -> AgentTraining | None:
        """The block from a YAML mapping (unknown keys are errors naming the known ones), an
        ``AgentTraining`` as is, ``None`` / ``false`` for none, ``true`` for the defaults (also
        as the strings a ``key=value`` override gives). A recorded recipe's extra ``max_total_tokens`` is accepted."""
        return _block_of(cls, value, where, also=("max_total_tokens",))


def _block_of(cls: Any, value: Any, where: str, also: tuple[str, ...] = ()) -> Any:
    """An agent block of type ``cls`` from ``value`` (``AgentTraining.of``'s rules; ``also``: keys
    accepted and ignored)."""
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "false", "no", "off", "null", "none", ""):
        value = value.strip().lower() in ("true", "yes", "on")  # `agent=true` on the command line: the defaults
    if value is None or value is False:
        return None
    if isinstance(value, cls):
        return value
    if value is True:
        return cls()
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping of agent settings (or null), got {value!r}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(value) - known - set(also))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    return cls(**{k: v for k, v in value.items() if k in known})


@dataclass(frozen=True)
class AgentEval(_EnvBlock):
    """Evaluation as an agent (``predict --agent`` semantics): an ``agent:`` entry of a compare
    method, or the comparison's ``eval_agent``. The environment's settings (budgets in tokens), the
    tokens of a whole trajectory (``max_total_tokens``; one turn is bounded by the evaluation's
    ``max_new_tokens``), the prompt instruction and the protocol. Greedy, one trajectory per
    question. Its defaults are ``predict --agent``'s (``commands.predict.AGENT_DEFAULTS`` reads them)."""

    max_turns: int = 5
    observation_budget: int = 3000
    per_observation: int = 600
    max_total_tokens: int = 1024
    on_limit: str = "last_query"
    untagged: str = "error"
    observation_names: str = "template"
    instruction: bool = True
    protocol: str = "tags"
    timeout: float = 5.0
    keep: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.max_total_tokens, bool) or not isinstance(self.max_total_tokens, int) or self.max_total_tokens < 1:
            raise ConfigError(f"agent max_total_tokens must be an int >= 1, got {self.max_total_tokens!r}")
        self._check_env()

    @classmethod
    def of(cls, value: Any, where: str = "agent") -> AgentEval | None:
        """As ``AgentTraining.of``: a mapping (unknown keys are errors), ``true`` for the defaults,
        ``null`` / ``false`` for none."""
        return _block_of(cls, value, where)
