"""Rewards computed by running the completion's SQL: ``execution`` (graded) and ``execution_binary``.

The reward IS the metric: SQL is taken out of the completion by ``sqlcoach.sql.extract`` and
scored by the EX metric itself (``sqlcoach.metrics.ex.score_execution``), which runs it in the
project's executor (``sqlcoach.execution.pool`` / ``sandbox``: read-only, deadline, row caps) and
compares with ``sqlcoach.execution.compare.same_result``: same post-processing, same DISTINCT
rule (stripped unless ``keep_distinct``, spider mode), same ORDER BY rule, same test-suite
folders. A completion the reward calls equal is exactly one EX counts correct. This module adds
only the grading around that decision (partial credit, error classes).

A batch costs two parallel executor calls: the golds (``cache=True``, so that the G completions
of a prompt, and later epochs, reuse one gold result) and the distinct predictions (identical
completions run once). Writes (INSERT/UPDATE/DELETE) run only when the gold is itself a write,
and then on throw-away copies of the database (``ExecutorPool.run_dml`` -> ``execute_on_copy``);
the original file is never written.

``execution`` (weight ``w``, default 1.2), first rule that applies:

* gold missing or fails to run -> ``None`` (the example cannot be scored; TRL skips it)
* no SQL in the completion, SQLite syntax error, refused write -> 0
* statement of another kind than the gold's (a write for a question that asks a read, a read
  for a write, anything else such as PRAGMA/ATTACH/CREATE) -> 0, not executed
* read that EX counts correct -> ``1.0·w``
* read that runs -> ``max(0.3·w, 0.5·w·J)``, ``J`` the Jaccard index of the two row sets,
  projected onto the columns both results have (column identity: result column NAME,
  case-insensitive, whitespace ignored; the k-th column of a name pairs with the k-th of the same
  name in the other result; 0 when no column is common)
* write that runs on the copy (gold also a write) -> ``0.5·w``
* a failing statement of the gold's kind -> ``max(0.1·w, credit(kind)·w)`` with the severity
  table of ``sqlcoach.rewards.errors`` (0.0 to 0.2)

``execution_binary`` (Arctic-Text2SQL-R1): 1 if the result equals the gold's, 0.1 if it runs,
else 0 (times ``weight``, default 1.0). Same ``None`` rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

from sqlcoach.errors import ConfigError
from sqlcoach.execution.pool import LazyPool
from sqlcoach.execution.sandbox import Limits, execute_on_copy
from sqlcoach.metrics.ex import EX_MODES, ExItem, ExOutcome, database_files, prepare, score_execution, synthetic_files
from sqlcoach.rewards.base import OutcomeSource, Reward
from sqlcoach.rewards.common import completion_sql
from sqlcoach.rewards.errors import classify, error_credit
from sqlcoach.sql.rewrite import statement_type
from sqlcoach.types import ExecResult

_WRITES = frozenset({"insert", "update", "delete"})
# Kinds of the statement a reward may execute: reads go to the read-only pool, writes to a copy.
_READ, _WRITE, _OTHER = "read", "write", "other"

# Parsing with sqlglot costs far more than running a Spider query; the G completions of a prompt
# share one gold and often repeat one another, so these pure functions are memoised.
_statement_type = lru_cache(maxsize=1 << 16)(statement_type)


# The first word after whitespace, comments and opening parentheses.
# One character per whitespace step: ``(?:\s+)*`` would backtrack exponentially on hostile text.
_LEADING = re.compile(r"(?:\s|--[^\n]*(?:\n|$)|/\*.*?(?:\*/|$)|\()*([A-Za-z_]+)", re.S)
_QUICK_KINDS = {"select": "select", "insert": "insert", "update": "update", "delete": "delete"}


@lru_cache(maxsize=1 << 16)
def _statement(sql: str) -> str:
    """``statement_type(sql)``, with a shortcut for texts that start with SELECT/INSERT/UPDATE/DELETE.

    A full sqlglot parse costs more than running a Spider query, and routing only needs to know
    read / write / other. A text whose first word is one of those four cannot be another kind
    of statement; a text sqlglot cannot parse would go to the read-only executor anyway, where
    SQLite's own parser decides. Anything else (WITH, VALUES, junk) is parsed.
    """
    match = _LEADING.match(sql)
    quick = _QUICK_KINDS.get(match.group(1).lower()) if match else None
    return quick or _statement_type(sql)


def _kind(stmt: str) -> str:
    if stmt in _WRITES:
        return _WRITE
    if stmt in ("select", "unparsable"):
        # "unparsable" means sqlglot could not parse it; SQLite's parser (read-only) decides.
        return _READ
    return _OTHER


def _safe_write(db: str, sql: str, limits: Limits) -> ExecResult:
    """``execute_on_copy``, with any exception it lets through turned into an exec_error result."""
    try:
        return execute_on_copy(db, sql, limits)
    except Exception as exc:  # noqa: BLE001 - hostile SQL must never end a training run
        return ExecResult(rows=None, error="exec_error", message=f"{type(exc).__name__}: {exc}")


#: The lazily started pool the rewards of a run share (``execution.pool.LazyPool``; this name is
#: the rewards' since they had it first).
PoolHandle = LazyPool


@dataclass(frozen=True)
class Outcome:
    """What happened to one completion; the rewards turn it into a number.

    ``gold_ok`` False means the example cannot be scored. ``error`` is a kind from
    ``sqlcoach.rewards.errors.ERROR_KINDS``, or ``"wrong_statement"`` (not executed because its
    kind differs from the gold's), or ``"gold_error"``, or ``None`` when it ran.
    """

    sql: str
    statement: str
    gold_ok: bool
    type_match: bool = False
    executed: bool = False
    equal: bool = False
    jaccard: float = 0.0
    error: str | None = None
    message: str = ""


_SPACE = re.compile(r"\s+")


def _column_key(name: str) -> str:
    return _SPACE.sub("", str(name)).lower()


def result_jaccard(
    pred_rows: Sequence[Sequence[Any]],
    pred_columns: Sequence[str],
    gold_rows: Sequence[Sequence[Any]],
    gold_columns: Sequence[str],
) -> float:
    """Jaccard index of two results' row sets, projected onto their common columns.

    Columns are identified by result column name, case-insensitively and ignoring whitespace
    (``COUNT( * )`` is ``count(*)``); the k-th column of a name pairs with the k-th column of that
    name in the other result. Both results are projected onto the paired columns, in the gold's
    order, and the row sets compared: ``|P ∩ G| / |P ∪ G|``. Guarantees a float in [0, 1]: 0 when
    no column is common, 1 when both projected sets are empty. When either side has no column
    names (or a count that does not match its rows), columns pair by position if the widths agree.
    """
    pred_width = len(pred_rows[0]) if pred_rows else len(pred_columns)
    gold_width = len(gold_rows[0]) if gold_rows else len(gold_columns)
    named = (
        len(pred_columns) == pred_width and len(gold_columns) == gold_width and pred_columns and gold_columns
    )
    if named:
        positions: dict[str, list[int]] = {}
        for i, name in enumerate(pred_columns):
            positions.setdefault(_column_key(name), []).append(i)
        used: dict[str, int] = {}
        pairs: list[tuple[int, int]] = []  # (gold index, pred index)
        for gi, name in enumerate(gold_columns):
            key = _column_key(name)
            k = used.get(key, 0)
            candidates = positions.get(key, [])
            if k < len(candidates):
                pairs.append((gi, candidates[k]))
                used[key] = k + 1
    elif pred_width == gold_width:
        pairs = [(i, i) for i in range(gold_width)]
    else:
        pairs = []
    if not pairs:
        return 0.0
    gold_idx = [g for g, _ in pairs]
    pred_idx = [p for _, p in pairs]
    gold_set = {tuple(row[i] for i in gold_idx) for row in gold_rows}
    pred_set = {tuple(row[i] for i in pred_idx) for row in pred_rows}
    union = len(gold_set | pred_set)
    if union == 0:
        return 1.0
    return len(gold_set & pred_set) / union


class ExecutionScorer:
    """Runs a batch of (db, predicted SQL, gold SQL) and reports an ``Outcome`` per completion.

    Reads are scored by the EX metric itself (``sqlcoach.metrics.ex.score_execution``: same
    post-processing, DISTINCT rule, ORDER BY rule, test-suite database folders and gold cache),
    so a completion the reward calls equal is exactly one EX counts correct. Writes are run here
    on throw-away copies. Shared by ``execution`` and ``execution_binary``.
    """

    def __init__(self, pool: PoolHandle | Any = None, *, mode: str = "spider", keep_distinct: bool = False):
        if mode not in EX_MODES:
            raise ConfigError(f"unknown execution mode {mode!r}; choose one of {', '.join(EX_MODES)}")
        self.handle = pool if isinstance(pool, PoolHandle) else PoolHandle(pool)
        self.mode = mode
        self.keep_distinct = keep_distinct
        self._write_golds: dict[tuple[str, str], ExecResult] = {}

    def _files(self, db: str, memo: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
        # A file is scored on itself; a folder (test-suite databases) on its *.sqlite files.
        if db not in memo:
            path = Path(db)
            if path.is_dir():
                memo[db] = database_files(path.parent, path.name, mode=self.mode)
            else:
                memo[db] = (db,) if path.is_file() else ()
            # synthetic fills (create-context): scored on the fills, as EX is, never on the empty schema
            memo[db] = synthetic_files(memo[db])[0] if memo[db] else memo[db]
        return memo[db]

    def _writes(self, jobs: list[tuple[str, str]]) -> list[ExecResult]:
        # Each write runs on its own throw-away copy; the pool does them in parallel when it can.
        if not jobs:
            return []
        run_dml = getattr(self.handle.pool, "run_dml", None)
        if callable(run_dml):
            return list(run_dml(jobs))
        return [_safe_write(db, sql, self.handle.limits) for db, sql in jobs]

    def score(self, sqls: Sequence[str], golds: Sequence[str | None], dbs: Sequence[str | None]) -> list[Outcome]:
        """One ``Outcome`` per position, in order. Never raises on hostile predicted SQL."""
        n = len(sqls)
        outcomes: list[Outcome | None] = [None] * n
        files_memo: dict[str, tuple[str, ...]] = {}
        # [distinct (pred, gold, files)] -> positions; GRPO groups repeat completions often.
        reads: dict[tuple[str, str, tuple[str, ...]], list[int]] = {}
        writes: dict[tuple[str, str], list[int]] = {}
        gold_only: dict[tuple[str, tuple[str, ...]], list[int]] = {}
        any_write_gold = False
        for i, (sql, gold, db) in enumerate(zip(sqls, golds, dbs)):
            gold = str(gold) if gold is not None else ""
            if not gold.strip() or not db:
                outcomes[i] = Outcome(sql=sql, statement="", gold_ok=False, error="gold_error",
                                      message="no gold SQL or database")  # fmt: skip
                continue
            gold_kind = _kind(_statement(gold))
            stmt = _statement(sql) if sql.strip() else ""
            if gold_kind == _WRITE:
                any_write_gold = True
                if sql.strip() and _kind(stmt) == _WRITE:
                    writes.setdefault((str(db), sql), []).append(i)
                else:  # settled below, once the gold is known to run
                    outcomes[i] = Outcome(sql=sql, statement=stmt, gold_ok=True,
                                          error="wrong_statement" if sql.strip() else "no_sql")  # fmt: skip
                continue
            files = self._files(str(db), files_memo)
            if not sql.strip() or _kind(stmt) != _READ:
                # No SQL, or a write/other statement where the gold reads: never executed. The
                # gold still runs (below) so that a broken gold gives None, not 0.
                outcomes[i] = Outcome(sql=sql, statement=stmt, gold_ok=True,
                                      error="wrong_statement" if sql.strip() else "no_sql")  # fmt: skip
                gold_only.setdefault((gold, files), []).append(i)
                continue
            reads.setdefault((sql, gold, files), []).append(i)

        if reads:
            keys = list(reads)
            items = [ExItem(pred=p, gold=g, files=f, synthetic=bool(f) and synthetic_files(f)[1]) for p, g, f in keys]
            ex_outcomes = score_execution(
                items, pool=self.handle.pool, mode=self.mode, keep_distinct=self.keep_distinct
            )
            for key, ex in zip(keys, ex_outcomes):
                for i in reads[key]:
                    outcomes[i] = self._judge_read(sqls[i], ex)
        if gold_only:
            self._check_golds(gold_only, outcomes)
        if any_write_gold:
            self._settle_writes(writes, sqls, golds, dbs, outcomes)
        return [o for o in outcomes if o is not None]

    def _check_golds(self, gold_only: dict[tuple[str, tuple[str, ...]], list[int]], outcomes: list[Outcome | None]) -> None:
        # Run each gold (as EX would run it, so the cache entry is shared) on each of its files.
        jobs: list[tuple[str, str]] = []
        owners: list[tuple[str, tuple[str, ...]]] = []
        failed: dict[tuple[str, tuple[str, ...]], str] = {}
        for gold, files in gold_only:
            if not files:
                failed[(gold, files)] = "database not found"
                continue
            _, prepared, _ = prepare("", gold, mode=self.mode, keep_distinct=self.keep_distinct)
            for f in files:
                jobs.append((f, prepared))
                owners.append((gold, files))
        for owner, res in zip(owners, self.handle.pool.run(jobs, cache=True) if jobs else []):
            if not res.ok and owner not in failed:
                failed[owner] = f"gold failed: {res.message}"
        for owner, message in failed.items():
            for i in gold_only[owner]:
                outcomes[i] = _gold_failed(outcomes[i].sql if outcomes[i] else "", message)

    def _settle_writes(
        self,
        writes: dict[tuple[str, str], list[int]],
        sqls: Sequence[str],
        golds: Sequence[str | None],
        dbs: Sequence[str | None],
        outcomes: list[Outcome | None],
    ) -> None:
        # Write golds prove the example is scorable by running on a copy; memoised like the
        # pool's read cache (bounded, so a long run does not grow it without limit).
        gold_keys = {(str(db), str(gold)) for gold, db in zip(golds, dbs)
                     if gold and db and _kind(_statement(str(gold))) == _WRITE}  # fmt: skip
        new = [k for k in gold_keys if k not in self._write_golds]
        if len(self._write_golds) + len(new) > 4096:
            self._write_golds.clear()
            new = sorted(gold_keys)
        for key, res in zip(new, self._writes(new)):
            self._write_golds[key] = res
        jobs = [k for k in writes if k[1]]
        results = dict(zip(jobs, self._writes(jobs)))
        for i in range(len(sqls)):
            gold, db = golds[i], dbs[i]
            if not gold or not db or _kind(_statement(str(gold))) != _WRITE:
                continue
            gold_res = self._write_golds[(str(db), str(gold))]
            if not gold_res.ok:
                outcomes[i] = _gold_failed(sqls[i], gold_res.message)
                continue
            if outcomes[i] is not None:  # no_sql / wrong_statement, gold fine
                continue
            res = results[(str(db), sqls[i])]
            stmt = _statement(sqls[i])
            if res.ok:
                outcomes[i] = Outcome(sql=sqls[i], statement=stmt, gold_ok=True, type_match=True, executed=True)
            else:
                outcomes[i] = Outcome(sql=sqls[i], statement=stmt, gold_ok=True, type_match=True,
                                      error=classify(res), message=res.message)  # fmt: skip

    def _judge_read(self, sql: str, ex: ExOutcome) -> Outcome:
        stmt = _statement(sql) if sql.strip() else ""
        if ex.error in ("gold_error", "unmeasurable"):  # no reward where EX cannot tell right from wrong
            return _gold_failed(sql, ex.message)
        if ex.error == "no_sql":
            return Outcome(sql=sql, statement=stmt, gold_ok=True, error="no_sql", message=ex.message)
        if ex.ex:
            return Outcome(sql=sql, statement=stmt, gold_ok=True, type_match=True, executed=True,
                           equal=True, jaccard=1.0)  # fmt: skip
        pres, gres = ex.pred_result, ex.gold_result
        if ex.error == "wrong_result" and pres is not None and pres.ok and gres is not None and gres.ok:
            jaccard = result_jaccard(pres.rows or (), pres.columns, gres.rows or (), gres.columns)
            return Outcome(sql=sql, statement=stmt, gold_ok=True, type_match=True, executed=True,
                           jaccard=jaccard, message=ex.message)  # fmt: skip
        # Type credit needs sqlglot to read it as a SELECT (a text only SQLite reads does not
        # count): parsed here, for failures only.
        type_match = _statement_type(sql) == "select"
        failed = pres if pres is not None and not pres.ok else ExecResult(rows=None, error=ex.error, message=ex.message)
        return Outcome(sql=sql, statement=stmt, gold_ok=True, type_match=type_match, error=classify(failed),
                       message=failed.message)  # fmt: skip


def _gold_failed(sql: str, message: str) -> Outcome:
    return Outcome(sql=sql, statement="", gold_ok=False, error="gold_error", message=message)


class _ExecutionBase(Reward, OutcomeSource):
    """TRL reward contract around an ``ExecutionScorer``; subclasses map an Outcome to a float.
    An ``OutcomeSource``: ``last_outcomes`` holds the outcomes of the last batch."""

    default_name = "execution"

    def __init__(
        self,
        weight: float = 1.0,
        *,
        pool: PoolHandle | Any = None,
        mode: str = "spider",
        keep_distinct: bool = False,
        gold_column: str = "gold_sql",
        db_column: str = "db_path",
        name: str | None = None,
    ):
        super().__init__(weight, name=name)
        self.scorer = ExecutionScorer(pool, mode=mode, keep_distinct=keep_distinct)
        self.gold_column = gold_column
        self.db_column = db_column
        #: Outcomes of the last batch, for logging samples (question, SQL, result, reward).
        self.last_outcomes: list[Outcome] = []

    def value(self, outcome: Outcome) -> float | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def score(self, completions: list[Any], columns: dict[str, Any]) -> list[float | None]:
        """One reward per completion, ``None`` where the gold cannot be scored."""
        n = len(completions)
        golds = self.column(columns, self.gold_column, n)
        dbs = self.column(columns, self.db_column, n)
        sqls = [completion_sql(c, names) for c, names in zip(completions, self.names(columns, n))]
        outcomes = self.scorer.score(sqls, golds, dbs)
        self.last_outcomes = outcomes
        rewards = [self.value(o) for o in outcomes]
        _log(columns, self.__name__, outcomes)
        return rewards


def _log(columns: dict[str, Any], name: str, outcomes: list[Outcome]) -> None:
    # The trainer's log_extra/log_metric: the SQL and outcome of every completion in the
    # completions table (reward hacking shows there first), and the batch's EX and run rates.
    log_extra: Callable[[str, list], None] | None = columns.get("log_extra")
    log_metric: Callable[[str, float], None] | None = columns.get("log_metric")
    if callable(log_extra):
        log_extra(f"{name}/sql", [o.sql for o in outcomes])
        log_extra(f"{name}/error", [o.error or ("equal" if o.equal else "ran") for o in outcomes])
    if callable(log_metric):
        scored = [o for o in outcomes if o.gold_ok]
        if scored:
            log_metric(f"{name}/ex", sum(o.equal for o in scored) / len(scored))
            log_metric(f"{name}/executes", sum(o.executed for o in scored) / len(scored))


class ExecutionReward(_ExecutionBase):
    """Graded execution reward (``execution``); the rules are in the module docstring."""

    default_name = "execution"

    def __init__(self, weight: float = 1.2, **kwargs: Any):
        super().__init__(weight, **kwargs)

    def value(self, o: Outcome) -> float | None:
        """The graded reward of one outcome (see the module docstring), or ``None``."""
        w = self.weight
        if not o.gold_ok:
            return None
        if o.error is not None:
            if o.error in ("no_sql", "syntax", "forbidden", "wrong_statement"):
                return 0.0
            base = 0.1 * w if o.type_match else 0.0
            return max(base, error_credit(o.error) * w)
        if o.equal:
            return 1.0 * w
        if o.statement in _WRITES:
            return 0.5 * w
        return max(0.3 * w, 0.5 * w * o.jaccard)


class ExecutionBinaryReward(_ExecutionBase):
    """``execution_binary`` (Arctic-Text2SQL-R1): 1 if equal, 0.1 if it runs, else 0; times weight."""

    default_name = "execution_binary"

    def __init__(self, weight: float = 1.0, **kwargs: Any):
        super().__init__(weight, **kwargs)

    def value(self, o: Outcome) -> float | None:
        """1·w when the result equals the gold's, 0.1·w when it ran, 0 otherwise, ``None`` for a bad gold."""
        if not o.gold_ok:
            return None
        if o.equal:
            return self.weight
        if o.executed:
            return 0.1 * self.weight
        return 0.0
