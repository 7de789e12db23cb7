"""The reward contract, named (DESIGN.md, style 13), and the one preamble every reward shares.

* ``RewardFn``: TRL's contract, ``f(prompts, completions, completion_ids, **columns) ->
  list[float | None]`` with a ``__name__`` (TRL logs each reward by it). One value per
  completion; ``None`` where the example cannot be scored (e.g. its gold fails). ``columns`` are
  the dataset's columns, each a list aligned with ``completions``, plus what the trainer adds
  (``trainer_state``, ``log_extra``, ``log_metric``). GRPO hands the list to TRL's
  ``GRPOTrainer``; PPO calls it the same way (``train.ppo.score_completions``).
* ``OutcomeSource``: a reward that judges completions by executing them keeps the execution
  ``Outcome`` of its last batch in ``last_outcomes``; the RL layer reads them for the sample log
  and for DAPO's dynamic sampling (``train.rl.outcome_source``). A reward declares it by
  inheriting the protocol, so nobody has to probe with ``hasattr``.
* ``needs_gold``: whether a reward reads the gold SQL (the ``gold_sql`` column). The RL layer
  trains on questions without gold when none of the run's rewards does
  (``train.rl.rewards_need_gold``); a callable that does not say is taken to need it.
* ``Reward``: the base of the project's rewards. It owns the preamble each of them used to repeat
  (weight >= 0, ``__name__``, TRL's keyword signature, the batch size); a subclass writes
  ``score(completions, columns)`` only, reading columns with ``self.column``.

Adding a reward (docs/architecture.md, "Extension points")::

    class ShortSQL(Reward):
        default_name = "short_sql"
        def score(self, completions, columns):
            return [self.weight * (len(completion_sql(c)) < 200) for c in completions]

    REWARDS["short_sql"] = ShortSQL       # rewards/registry.py: `rewards: [execution, short_sql]`
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, Sequence, runtime_checkable

from sqlcoach.errors import ConfigError
from sqlcoach.rewards.common import column, names_of

if TYPE_CHECKING:
    from sqlcoach.rewards.execution import Outcome


@runtime_checkable
class RewardFn(Protocol):
    """TRL's reward contract (see the module docstring). ``__name__`` must be distinct among the
    rewards of one run."""

    __name__: str

    def __call__(self, prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (),
                 completion_ids: Sequence[Any] | None = None, **columns: Any) -> list[float | None]: ...


@runtime_checkable
class OutcomeSource(Protocol):
    """A reward that executes completions: ``last_outcomes`` holds one execution ``Outcome`` per
    completion of its last call, in order (empty before the first call)."""

    last_outcomes: list[Outcome]


class Reward:
    """Base of sqlcoach's rewards: the shared preamble, then ``score``.

    Guarantees: ``weight`` is a float >= 0 (``ConfigError`` otherwise: a negative weight turns the
    reward upside down); ``__name__`` is ``name`` or the class's ``default_name``; a call returns
    one value per completion (``ConfigError`` if ``score`` breaks that)."""

    default_name = "reward"
    #: True when ``score`` reads the gold SQL (module docstring); a reward that needs none says False
    needs_gold: bool = True

    def __init__(self, weight: float = 1.0, *, name: str | None = None):
        if weight < 0:
            raise ConfigError(f"reward weight must be >= 0 (a negative weight turns the reward upside down), got {weight}")
        self.weight = float(weight)
        self.__name__ = name or self.default_name

    def score(self, completions: list[Any], columns: dict[str, Any]) -> list[float | None]:  # pragma: no cover - abstract
        """One value (or ``None``) per completion; ``columns`` as TRL passes them."""
        raise NotImplementedError

    def column(self, columns: dict[str, Any], name: str, n: int, *, required: bool = True) -> list[Any]:
        """The dataset column ``name`` as a list of ``n`` (``rewards.common.column``, in this reward's name)."""
        return column(columns, name, n, reward=self.__name__, required=required)

    def names(self, columns: dict[str, Any], n: int) -> list[Any]:
        """The optional ``sql_names`` column (the anonymized template's name map), ``n`` long."""
        return names_of(columns, n, reward=self.__name__)

    def __call__(
        self,
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] = (),
        completion_ids: Sequence[Any] | None = None,
        **columns: Any,
    ) -> list[float | None]:
        values = self.score(list(completions), columns)
        if len(values) != len(completions):
            raise ConfigError(f"reward {self.__name__!r} gave {len(values)} values for {len(completions)} completions")
        return values
