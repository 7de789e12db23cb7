"""Tasks and environments: what RL trains on and how a completion is judged (``tasks.base``).

``TASKS`` maps a name (``RLFields.task``) to a factory ``(builder, *, pool) -> Task``; the RL
layer (``sqlcoach.train.rl``) asks the task for its rows and whether it needs gold. Adding a task
or a multi-turn environment is adding an entry (docs/architecture.md, "Tasks and environments").
"""

from __future__ import annotations

from typing import Any, Callable

from sqlcoach.tasks.base import Environment, Step, Task, is_multi_turn
from sqlcoach.tasks.consensus import ConsensusTask
from sqlcoach.tasks.sql_exec import SqlExecutionTask, needs_gold

#: name -> factory(builder, *, pool) -> Task
TASKS: dict[str, Callable[..., Task]] = {
    "sql_exec": SqlExecutionTask,
    "consensus": ConsensusTask,
}


def build_task(name: str, builder: Any, *, pool: Any = None, gold_free: bool = False) -> Task:
    """The task ``name`` on ``builder`` (a ``PromptBuilder``) and ``pool`` (shared with the rewards).
    ``gold_free``: the run's rewards read no gold, so a task that scores against gold is built
    with ``needs_gold=False`` (it keeps examples without gold); a task that cannot be is a
    ``ConfigError``. ``ConfigError`` names the known tasks when ``name`` is not one."""
    from sqlcoach.errors import ConfigError

    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; known: {sorted(TASKS)}")
    import inspect

    factory = TASKS[name]
    takes_flag = "needs_gold" in inspect.signature(factory).parameters
    task = factory(builder, pool=pool, needs_gold=False) if gold_free and takes_flag else factory(builder, pool=pool)
    if gold_free and task.needs_gold:
        raise ConfigError(f"task {name!r} always scores against gold SQL, and the rewards need none "
                          "(use task sql_exec or consensus, or add a reward that reads gold)")
    return task


__all__ = ["ConsensusTask", "Environment", "SqlExecutionTask", "Step", "TASKS", "Task", "build_task", "is_multi_turn", "needs_gold"]
