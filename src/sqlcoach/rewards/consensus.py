"""``consensus``: a reward that needs no gold SQL (label-free adaptation, ``sqlcoach adapt``).

The G completions of one question are executed on the question's database (read-only, the run's
executor pool) and grouped by result with the project's one comparer (``execution.vote.vote``:
``execution.compare.same_result``, Spider mode, row order ignored). TTRL's rule (Zuo et al. 2025:
the majority is the pseudo-label, the reward is membership in it), with safeguards against the
known trap of rewarding agreement on nothing (SQL-R1 issue #28: ``[] == []`` earns the reward):

* a sample whose SQL is missing or failed to run is in no group: errors never count as votes for
  anything, though they count in the denominator of the share;
* a group whose result is *empty* (no rows, or only rows of NULLs: ``SELECT avg(x)`` on no rows)
  can never win;
* the winner is the largest remaining group; when two groups tie for largest there is no winner
  (rewarding one of them at random teaches noise);
* the winner must hold at least ``min_share`` of the G samples (errors and empty answers
  included), else there is no winner.

With a winner, a completion in it scores ``weight`` and every other completion 0. Without one,
every completion of the question scores ``None``: TRL 1.16's ``GRPOTrainer`` treats a completion
for which every reward returned ``None`` as unscorable (left out of its group's baseline,
advantage forced to 0), so the question is skipped this round; the KL term still applies.

The reward reads the columns ``id`` (which completions belong to one question), ``db_path``,
``sql_names`` (the anonymized template's name map) and, for its log only, ``db_id`` and
``question``. It never reads ``gold_sql``. With ``decisions_path`` every question of every call
is appended to that JSONL file (``Decision.as_dict``): the adapt report and its collapse signals
are computed from it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlcoach.errors import ConfigError
from sqlcoach.execution.vote import vote
from sqlcoach.rewards.base import Reward
from sqlcoach.rewards.common import completion_sql
from sqlcoach.rewards.execution import PoolHandle
from sqlcoach.types import ExecResult


def empty_result(rows: Sequence[Sequence[Any]] | None) -> bool:
    """No rows, or only rows whose every value is NULL (an aggregate over nothing)."""
    return not rows or all(all(v is None for v in row) for row in rows)


@dataclass(frozen=True)
class Consensus:
    """The vote among the G samples of one question.

    ``winner``: the rewarded group id, ``None`` when no group qualifies (``reason`` says why);
    ``group_of[i]``: sample i's group (-1: it did not run); ``sizes[g]``: group g's size;
    ``share``: the winner's size / G (0.0 without a winner); ``top_share``: the largest
    non-empty group's size / G, winner or not; ``empty``/``errors``: samples whose result was
    empty / that did not run; ``entropy``: of the result distribution in nats (each group one
    outcome, errors one more, empty groups as they are)."""

    winner: int | None
    group_of: tuple[int, ...]
    sizes: tuple[int, ...]
    share: float
    top_share: float
    reason: str | None
    empty: int
    errors: int
    entropy: float

    def in_winner(self, i: int) -> bool:
        return self.winner is not None and self.group_of[i] == self.winner


def consensus(sqls: Sequence[str], results: Sequence[ExecResult | None], *, min_share: float) -> Consensus:
    """The consensus of one question's samples (rules in the module docstring). Pure: the same
    SQL and results give the same answer, whatever else is known about the question."""
    n = len(sqls)
    v = vote(sqls, results)
    group_of = v.group_of if not v.fallback else tuple(-1 for _ in sqls)
    sizes = v.sizes if not v.fallback else ()
    rep = {g: group_of.index(g) for g in range(len(sizes))}
    empty_groups = {g for g in rep if empty_result(results[rep[g]].rows)}  # type: ignore[union-attr]
    errors = sum(1 for g in group_of if g < 0)
    empty = sum(sizes[g] for g in empty_groups)
    counts = [*sizes, errors] if errors else list(sizes)
    entropy = -sum(c / n * math.log(c / n) for c in counts if c) if n else 0.0
    entropy = abs(entropy)  # -0.0 -> 0.0
    live = [g for g in range(len(sizes)) if g not in empty_groups]

    def none(reason: str, top: float) -> Consensus:
        return Consensus(None, group_of, sizes, 0.0, top, reason, empty, errors, entropy)

    if not live:
        why = "no sample ran" if not sizes else "every result that ran is empty"
        return none(why, 0.0)
    best = max(sizes[g] for g in live)
    top = best / n
    leaders = [g for g in live if sizes[g] == best]
    if len(leaders) > 1:
        return none(f"tie: {len(leaders)} groups of {best}/{n}", top)
    if top < min_share:
        return none(f"largest group {best}/{n} < min_share {min_share:g}", top)
    return Consensus(leaders[0], group_of, sizes, top, top, None, empty, errors, entropy)


@dataclass(frozen=True)
class Decision:
    """One question in one reward call: what the adapt report and the collapse signals read."""

    call: int
    id: str
    db_id: str
    question: str
    samples: int
    distinct_sql: int
    share: float
    top_share: float
    reason: str | None
    empty: int
    errors: int
    entropy: float
    winner_sql: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ConsensusReward(Reward):
    """Membership in the largest qualifying result group of the question's samples (module docstring).

    ``min_share``: the share of the G samples the winning group must hold (0 < min_share <= 1);
    ``pool``: the run's executor pool (``PoolHandle``); ``decisions_path``: a JSONL file each
    call appends one ``Decision`` per question to (``None``: none written). ``last_decisions``
    holds the last call's."""

    default_name = "consensus"
    needs_gold = False

    def __init__(self, weight: float = 1.0, *, min_share: float = 0.4, pool: Any = None,
                 decisions_path: str | None = None, name: str | None = None):
        super().__init__(weight, name=name)
        if not 0 < float(min_share) <= 1:
            raise ConfigError(f"consensus min_share must be in (0, 1], got {min_share}")
        self.min_share = float(min_share)
        self.handle = pool if isinstance(pool, PoolHandle) else PoolHandle(pool, workers=0 if pool is None else None)
        self.decisions_path = decisions_path
        self.calls = 0
        self.last_decisions: list[Decision] = []

    def score(self, completions: list[Any], columns: dict[str, Any]) -> list[float | None]:
        n = len(completions)
        if n == 0:
            self.last_decisions = []
            return []
        ids = self.column(columns, "id", n)
        dbs = self.column(columns, "db_path", n)
        names = self.names(columns, n)
        db_ids = self.column(columns, "db_id", n, required=False)
        questions = self.column(columns, "question", n, required=False)
        sqls = [completion_sql(c, nm) for c, nm in zip(completions, names)]
        # identical (database, SQL) pairs run once; an empty SQL is not run; results are cached in
        # the pool, so a verifier reward on the same pool reads them instead of running the SQL again
        jobs = sorted({(str(d), s) for d, s in zip(dbs, sqls) if s and d})
        ran = dict(zip(jobs, self.handle.pool.run(jobs, cache=True))) if jobs else {}
        results = [ran.get((str(d), s)) if s and d else None for d, s in zip(dbs, sqls)]
        members: dict[Any, list[int]] = {}
        for i, qid in enumerate(ids):
            members.setdefault(qid, []).append(i)
        self.calls += 1
        out: list[float | None] = [None] * n
        decisions = []
        for qid, idx in members.items():
            c = consensus([sqls[i] for i in idx], [results[i] for i in idx], min_share=self.min_share)
            for k, i in enumerate(idx):
                out[i] = None if c.winner is None else (self.weight if c.in_winner(k) else 0.0)
            won = next((sqls[i] for k, i in enumerate(idx) if c.in_winner(k)), None)
            decisions.append(Decision(
                call=self.calls, id=str(qid), db_id=str(db_ids[idx[0]] or ""), question=str(questions[idx[0]] or ""),
                samples=len(idx), distinct_sql=len({sqls[i] for i in idx}), share=round(c.share, 4),
                top_share=round(c.top_share, 4), reason=c.reason, empty=c.empty, errors=c.errors,
                entropy=round(c.entropy, 4), winner_sql=won,
            ))
        self.last_decisions = decisions
        if self.decisions_path:
            with Path(self.decisions_path).open("a") as f:
                for d in decisions:
                    f.write(json.dumps(d.as_dict()) + "\n")
        return out
