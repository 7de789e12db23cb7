"""The label-free text-to-SQL task of ``sqlcoach adapt``: the execution task without gold.

Rows are the execution task's (the model's own SFT prompt and the columns rewards read), built
for every example with a readable database, and their ``gold_sql`` column is always ``None``,
whatever the examples carried: a reward on these rows cannot read gold SQL even by mistake. What
a completion is worth comes from the rewards that need no gold (``rewards.consensus``: agreement
among the G samples of a question; ``rewards.verifier``: a trained verifier's score), so ``needs_gold`` is False and the RL layer
applies no gold curation. ``outcomes`` is the execution task's, which without gold says
``gold_ok=False`` (unscored): one completion alone cannot be judged without its group.
"""

from __future__ import annotations

from typing import Any, Callable

from sqlcoach.tasks.base import Row
from sqlcoach.tasks.sql_exec import SqlExecutionTask


class ConsensusTask(SqlExecutionTask):
    """Single-turn text-to-SQL without gold (module docstring)."""

    name = "consensus"
    needs_gold = False

    def __init__(self, builder: Any, *, pool: Any = None, needs_gold: bool | None = None, **kwargs: Any):
        from sqlcoach.errors import ConfigError

        if needs_gold:
            raise ConfigError("the consensus task trains without gold: it cannot be asked to need it")
        super().__init__(builder, pool=pool, needs_gold=False, **kwargs)

    def train_rows(self, examples: list[Any], *, tokenizer: Any = None,
                   log: Callable[[str], None] | None = None) -> list[Row]:
        """Rows of every example with a readable database, ``gold_sql`` set to ``None``. ``DataError`` when none."""
        return [{**row, "gold_sql": None} for row in self.rows_where(examples, None, tokenizer=tokenizer, log=log)]

    def eval_rows(self, examples: list[Any], *, tokenizer: Any = None,
                  log: Callable[[str], None] | None = None) -> list[Row]:
        return self.train_rows(examples, tokenizer=tokenizer, log=log)
