"""A trained verifier (``sqlcoach train verifier``) as a reward with TRL's contract: no gold needed.

    reward = VerifierReward("runs/verifier/final")
    reward(prompts=..., completions=["SELECT name FROM singer"], question=["Names of singers?"],
           db_path=["db/concert_singer/concert_singer.sqlite"])
    # -> [0.83]  (the verifier's probability that this result answers the question, times ``weight``)

    build_rewards(["verifier"], verifier={"verifier_path": "runs/verifier/final"})       # instead of execution
    build_rewards(["execution", {"name": "verifier", "verifier_path": "..."}])           # beside it

For each completion: its SQL (``rewards.common.completion_sql``; anonymized placeholders mapped
back with the ``sql_names`` column) runs read-only in the shared executor pool on the row's
``db_path`` (deadline and row caps of the pool's limits; a timeout is a result like any other,
rendered as ``error: timeout``), the result is rendered within the verifier's budget and the
verifier reads ``question`` + the schema text (built from ``db_path`` with the policy prompt
settings the verifier folder records) + SQL + result (``sqlcoach.models.verifier``). The reward is
``weight * sigmoid(score)`` in ``[0, weight]``. Only the ``question`` and ``db_path`` columns are
read: the gold is never looked at. A row without them gives ``None`` (TRL skips it). A completion
with no SQL is scored as such (the verifier read ``not run: no SQL``).

Like any learned reward it can be gamed: watch the logged samples, and prefer it beside the
execution reward where a gold exists; it is for data without gold SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlcoach.errors import ConfigError
from sqlcoach.rewards.base import Reward
from sqlcoach.rewards.common import completion_sql
from sqlcoach.rewards.execution import PoolHandle


@dataclass
class _Executor:
    """Holds the shared pool handle where ``close_rewards`` looks for it (``reward.scorer.handle``)."""

    handle: PoolHandle


class VerifierReward(Reward):
    """TRL reward callable (``rewards.base.RewardFn``); the verifier loads on first call (building
    the reward list stays cheap)."""

    default_name = "verifier"
    needs_gold = False

    def __init__(self, verifier_path: str = "", *, weight: float = 1.0, device: str = "auto", batch_size: int = 16,
                 pool: PoolHandle | None = None, name: str = "verifier") -> None:
        super().__init__(weight, name=name)
        if not verifier_path:
            raise ConfigError("reward 'verifier' needs verifier_path: the folder `sqlcoach train verifier` wrote (its final/)")
        if batch_size < 1:
            raise ConfigError(f"verifier batch_size must be >= 1, got {batch_size}")
        from sqlcoach.models.verifier import check_head, read_spec

        self.spec = read_spec(verifier_path)  # a folder that is not a verifier fails when the run is built
        check_head(verifier_path)
        self.verifier_path = str(verifier_path)
        self.device = device
        self.batch_size = batch_size
        self.scorer = _Executor(pool if isinstance(pool, PoolHandle) else PoolHandle(pool))
        self._verifier: Any = None
        self._builder: Any = None

    def _load(self) -> None:
        if self._verifier is None:
            from sqlcoach.models.verifier import load_verifier
            from sqlcoach.prompts.builder import PromptBuilder

            self._verifier = load_verifier(self.verifier_path, device=self.device, batch_size=self.batch_size)
            self._builder = PromptBuilder.from_settings(self.spec.policy_prompt) if self.spec.policy_prompt else PromptBuilder()

    def _schema_text(self, db_path: str) -> str:
        try:
            return self._builder.schema_text(db_path)
        except Exception:  # noqa: BLE001 - an unreadable database scores with no schema, never crashes a run
            return ""

    def score(self, completions: list[Any], columns: dict[str, Any]) -> list[float | None]:
        from sqlcoach.models.verifier import sigmoid

        n = len(completions)
        if not n:
            return []
        questions = self.column(columns, "question", n)
        dbs = self.column(columns, "db_path", n)
        names = self.names(columns, n)
        sqls = [completion_sql(c, nm) for c, nm in zip(completions, names)]
        jobs = sorted({(str(d), s) for d, s in zip(dbs, sqls) if d and s})
        results = dict(zip(jobs, self.scorer.handle.pool.run(jobs, cache=True))) if jobs else {}
        self._load()
        items, where = [], []
        for i, (q, d, s) in enumerate(zip(questions, dbs, sqls)):
            if not q or not d:
                continue
            items.append((str(q), self._schema_text(str(d)), s, results.get((str(d), s)) if s else None))
            where.append(i)
        out: list[float | None] = [None] * n
        for i, score in zip(where, self._verifier.score(items)):
            out[i] = self.weight * sigmoid(score)
        return out
