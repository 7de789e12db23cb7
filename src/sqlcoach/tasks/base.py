"""The task / environment contract (DESIGN.md, style 14: a task owns its data, its metric and its
reward; the RL loop only asks it). Named as ``typing.Protocol``s, as torchtune names its recipe
interface: the protocol states what a task provides, it is not a base class to reuse code from.

``Task`` (single-turn): ``train_rows`` / ``eval_rows`` turn examples into prompt rows (``prompt``:
chat messages, plus the columns the rewards read: ``prompts.builder.RL_COLUMNS``); ``outcome(row,
completion)`` judges one completion on the project's one comparer (``execution/compare.py``
through ``rewards.execution.ExecutionScorer``), ``outcomes`` a batch. Gold is optional in the
contract: a task that scores against gold says so with ``needs_gold`` and applies that rule to its
own training rows; a task that needs none (a verifier, a vote among samples) keeps gold-less
examples, and its outcome does not read the gold column. ``needs_gold`` may be set per instance:
the RL layer builds a gold-scoring task with ``needs_gold=False`` when none of the run's rewards
reads gold (``tasks.build_task(gold_free=True)``).

``Environment`` (multi-turn) is a ``Task`` that also has ``step``: given the row, the turns so far
and the model's latest completion, it returns the next observation (messages to append: e.g. the
rendered result of a query the agent ran) or ``done`` with the final outcome.

``TASKS`` (``sqlcoach.tasks``) maps a name to a task factory, and ``RLFields.task`` picks one, so a
new task is one entry there; see docs/architecture.md, "Tasks and environments".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

if TYPE_CHECKING:
    from sqlcoach.rewards.execution import Outcome

Row = dict[str, Any]  # one prompt row: "prompt" (chat messages) + RL_COLUMNS (+ the task's own columns)
Messages = list[dict[str, Any]]


@dataclass(frozen=True)
class Step:
    """What an environment answers to one completion: ``observation`` (messages appended before
    the next turn; ``None`` when ``done``) and, when ``done``, the episode's ``outcome``."""

    done: bool
    observation: Messages | None = None
    outcome: Outcome | None = None


@runtime_checkable
class Task(Protocol):
    """A single-turn task (see the module docstring)."""

    #: the registry key (``sqlcoach.tasks.TASKS``)
    name: str
    #: True when the outcome compares with gold SQL: training rows without gold are then skipped
    needs_gold: bool

    def train_rows(self, examples: list[Any], *, tokenizer: Any = None,
                   log: Callable[[str], None] | None = None) -> list[Row]:
        """Rows to train on, in example order; the task's own rule decides which examples are usable."""
        ...

    def eval_rows(self, examples: list[Any], *, tokenizer: Any = None,
                  log: Callable[[str], None] | None = None) -> list[Row]:
        """Rows to evaluate on (a row the outcome cannot score is kept: its outcome says so)."""
        ...

    def outcomes(self, rows: list[Row], completions: list[Any]) -> list[Outcome]:
        """One outcome per (row, completion) pair, in order."""
        ...

    def outcome(self, row: Row, completion: Any) -> Outcome:
        """The outcome of one completion of ``row``."""
        ...


@runtime_checkable
class Environment(Task, Protocol):
    """A multi-turn task: ``step`` after each completion, until ``done`` or ``max_turns``."""

    max_turns: int

    def step(self, row: Row, history: Messages, completion: Any) -> Step:
        """The environment's answer to ``completion`` given the conversation so far."""
        ...


def is_multi_turn(task: Task) -> bool:
    """Whether ``task`` has a multi-turn ``step`` (an ``Environment``)."""
    return isinstance(task, Environment)
