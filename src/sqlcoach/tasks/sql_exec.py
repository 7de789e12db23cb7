"""The single-turn text-to-SQL task scored by execution: the first ``Task`` (``tasks.base``).

A row is the SFT prompt of a question (``prompts.builder.PromptBuilder.rl_rows``: the policy sees
in RL what it saw in SFT) with the columns the rewards read. A completion's outcome is the
execution reward's own: ``ExecutionScorer`` runs the completion's SQL and the gold SQL in the
sandbox and compares the results with the EX comparer (``execution/compare.py``). The reward IS
the metric. The task needs gold (``needs_gold``): ``train_rows`` skips examples without gold SQL
(the rule ``PromptBuilder`` used to apply for every consumer); ``eval_rows`` keeps them, and their
outcome is ``gold_ok=False`` (unscored). Built with ``needs_gold=False`` (the RL layer does so
when none of the run's rewards reads gold, e.g. a verifier alone) it keeps the examples without
gold in training too, their ``gold_sql`` column as the example has it.
"""

from __future__ import annotations

from typing import Any, Callable

from sqlcoach.errors import DataError
from sqlcoach.rewards.execution import ExecutionScorer, Outcome, PoolHandle
from sqlcoach.tasks.base import Row


def needs_gold(ex: Any) -> str | None:
    """The skip rule of a task that scores against gold: ``"no gold SQL"`` or ``None``."""
    return None if ex.gold_sql else "no gold SQL"


class SqlExecutionTask:
    """Single-turn text-to-SQL judged by executing the answer against the gold (see the module docstring).

    ``builder``: the ``PromptBuilder`` of the run's prompt settings; ``pool``: an ``ExecutorPool``
    (or ``PoolHandle``) shared with the rewards, ``None`` for an in-process one; ``mode`` and
    ``keep_distinct``: the EX comparer's (``metrics.ex.EX_MODES``); ``needs_gold``: ``False`` keeps
    training examples without gold (``None``: the class's rule)."""

    name = "sql_exec"
    needs_gold = True

    def __init__(self, builder: Any, *, pool: Any = None, mode: str = "spider", keep_distinct: bool = False,
                 needs_gold: bool | None = None):
        if needs_gold is not None:
            self.needs_gold = needs_gold
        self.builder = builder
        self.handle = pool if isinstance(pool, PoolHandle) else PoolHandle(pool, workers=0 if pool is None else None)
        self.scorer = ExecutionScorer(self.handle, mode=mode, keep_distinct=keep_distinct)

    def rows_where(self, examples: list[Any], skip: Callable[[Any], str | None] | None, *, tokenizer: Any = None,
                   log: Callable[[str], None] | None = None) -> list[Row]:
        """Rows of the examples ``skip`` lets through (``skip(ex)``: a reason, or ``None`` to keep;
        ``None``: every example with a readable database); one ``log`` line per skipped example
        (the first 10, then a count). ``DataError`` when no row is left."""
        rows, skipped = self.builder.rl_rows(examples, tokenizer=tokenizer, skip=skip)
        if log is not None:
            for s in skipped[:10]:
                log(f"skipped example {s}")
            if len(skipped) > 10:
                log(f"... and {len(skipped) - 10} more skipped examples")
        if not rows:
            raise DataError(f"no usable RL prompt ({len(skipped)} examples skipped)")
        return rows

    def train_rows(self, examples: list[Any], *, tokenizer: Any = None,
                   log: Callable[[str], None] | None = None) -> list[Row]:
        """Rows of the examples that have gold SQL (when the task needs it) and a readable database.
        ``DataError`` when none has."""
        return self.rows_where(examples, needs_gold if self.needs_gold else None, tokenizer=tokenizer, log=log)

    def eval_rows(self, examples: list[Any], *, tokenizer: Any = None,
                  log: Callable[[str], None] | None = None) -> list[Row]:
        """Rows of every example with a readable database, gold or not."""
        return self.rows_where(examples, None, tokenizer=tokenizer, log=log)

    def outcomes(self, rows: list[Row], completions: list[Any]) -> list[Outcome]:
        from sqlcoach.rewards.common import completion_sql

        sqls = [completion_sql(c, r.get("sql_names")) for r, c in zip(rows, completions)]
        return self.scorer.score(sqls, [r.get("gold_sql") for r in rows], [r.get("db_path") for r in rows])

    def outcome(self, row: Row, completion: Any) -> Outcome:
        return self.outcomes([row], [completion])[0]

    def close(self) -> None:
        """Stop the executor pool the task created (a caller's pool is kept)."""
        self.handle.close()
