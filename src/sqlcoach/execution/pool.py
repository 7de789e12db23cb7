"""Run many untrusted queries fast, with a hard wall-clock limit, in long-lived worker processes.

``ExecutorPool.run(jobs)`` takes ``(db_path, sql)`` pairs and returns one ``ExecResult`` per job,
in job order. Design, and why:

* Workers are started lazily on the first ``run`` and reused until ``close()``: starting a
  process costs more than a whole Spider evaluation's queries. Each keeps one read-only
  connection per database file (``sandbox``'s cache).
* Jobs travel in chunks (one pickle per chunk each way, results as plain tuples), so the
  per-query overhead is a few microseconds. Chunks are small enough that two workers stay busy,
  and each worker has two in flight, so it never waits for the parent to read a reply.
* Each worker publishes the index and start time of the query it is running in a shared
  two-slot array. The parent kills (SIGKILL) a worker whose query has run past
  ``limits.timeout * hard_timeout_factor + HARD_GRACE`` seconds; that query gets ``timeout``, the
  unfinished queries of its chunk are re-run on a fresh worker, nothing is lost. A worker that
  dies by itself gives its current query ``too_large`` when it was SIGKILLed from outside (the
  kernel's out-of-memory killer) or ``exec_error`` otherwise (segfault, ...), and the rest
  continue. Results made up this way are never cached.
* No orphans: ``close()`` (or leaving the ``with`` block) stops every worker before returning;
  a pool that is garbage-collected or still open at interpreter exit is stopped by a
  ``weakref.finalize``; on Linux a worker gets SIGKILL when its parent dies (even if the parent
  was SIGKILLed); a run interrupted by Ctrl-C kills the workers that were busy, so the pool stays
  usable. Workers ignore SIGINT themselves: interruption is the parent's business.
* Start method: ``fork`` when the parent is single-threaded and has not imported torch (cheapest:
  a few ms per worker); otherwise ``forkserver`` (or ``spawn`` where that is missing), because
  forking a multi-threaded process (torch, tokenizers) can deadlock the child.
* ``workers=0`` runs everything in the calling process: no start-up cost, but no hard kill and no
  memory cap (only the sandbox's in-VM deadline). Meant for tests and tiny batches.
* ``cache=True`` memoises results by (real path, file size, mtime_ns, sql) and de-duplicates
  identical jobs within one call, so a gold query runs once per database however many
  predictions are scored against it. Timeouts and worker deaths are never cached (they depend on
  load).
* ``run_dml`` does the same for data-modifying statements through ``sandbox.execute_on_copy``.

The private ``_SLEEP`` job kind exists only so that tests can exercise the hard-kill path: it is
a Python object, not a string, so no SQL text or path can reach it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import weakref
from collections import OrderedDict, deque
from multiprocessing.connection import wait
from typing import Any, Sequence

from sqlcoach.errors import ConfigError, ExecutionError
from sqlcoach.execution import sandbox
from sqlcoach.execution.sandbox import Limits
from sqlcoach.types import ExecResult

#: Seconds added to ``timeout * hard_timeout_factor`` before a worker is killed.
HARD_GRACE = 0.5
#: Most jobs in one chunk sent to a worker.
MAX_CHUNK = 64
#: Chunks sent to a worker before its first reply is read.
IN_FLIGHT = 2
# How often the parent wakes to check hard deadlines while waiting for results.
_POLL = 0.05
# A worker that dies this many times in a row without finishing a query means the environment
# is broken (e.g. memory cap below what Python needs), not the SQL.
_MAX_START_FAILURES = 3


class _Sleep:
    """Test-only job: the worker sleeps ``float(sql)`` seconds outside SQLite (cannot be interrupted)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_sleep_marker, ())


def _sleep_marker() -> "_Sleep":
    return _SLEEP


_SLEEP = _Sleep()

_KIND_QUERY = 0
_KIND_DML = 1


def _run_job(db: Any, sql: str, limits: Limits, kind: int) -> ExecResult:
    if db is _SLEEP:
        t0 = time.monotonic()
        time.sleep(float(sql))
        return ExecResult(rows=(), columns=(), seconds=time.monotonic() - t0)
    if kind == _KIND_DML:
        return sandbox.execute_on_copy(db, sql, limits)
    return sandbox.execute(db, sql, limits)


def _pack(r: ExecResult) -> tuple[Any, ...]:
    # Plain tuples pickle smaller and faster than dataclass instances.
    return (r.rows, r.columns, r.error, r.message, r.seconds)


def _unpack(t: tuple[Any, ...]) -> ExecResult:
    return ExecResult(rows=t[0], columns=t[1], error=t[2], message=t[3], seconds=t[4])


def _worker_main(conn: Any, state: Any, limits: Limits) -> None:
    """Worker loop: receive a chunk [(index, db, sql, kind)], send back [packed result]."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _die_with_parent()
    sandbox.configure_worker_process(limits)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return  # parent gone
        if msg is None:
            return
        out = []
        for index, db, sql, kind in msg:
            state[1] = time.monotonic()  # start time first, then index: see _past_hard_deadline
            state[0] = index
            out.append(_pack(_run_job(db, sql, limits, kind)))
        state[0] = -1.0
        try:
            conn.send(out)
        except (EOFError, OSError):
            return


def _die_with_parent() -> None:
    # Linux: SIGKILL this worker when its parent dies, even mid-query (a SIGKILLed evaluation must
    # not leave a worker burning CPU). Elsewhere the worker exits at its next read from the pipe.
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        parent = os.getppid()
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)
    except (OSError, AttributeError):
        pass


def _choose_context() -> Any:
    methods = mp.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1 and "torch" not in sys.modules:
        return mp.get_context("fork")
    if "forkserver" in methods:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["sqlcoach.execution.sandbox"])
        return ctx
    return mp.get_context("spawn")


class _Worker:
    __slots__ = ("proc", "conn", "state", "chunks")

    def __init__(self, ctx: Any, limits: Limits):
        self.state = ctx.RawArray("d", 2)
        self.state[0] = -1.0
        parent_end, child_end = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(child_end, self.state, limits), daemon=True)
        self.proc.start()
        child_end.close()  # so that the parent sees EOF when the worker dies
        self.conn = parent_end
        self.chunks: deque[list[tuple[int, Any, str, int]]] = deque()  # sent, reply not yet read

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=5)
        self.conn.close()


def _shutdown(workers: list[_Worker]) -> None:
    """Stop every worker: polite message, short join, then SIGKILL. Safe to call twice."""
    for w in workers:
        try:
            w.conn.send(None)
        except (OSError, ValueError):
            pass
    deadline = time.monotonic() + 1.0
    for w in workers:
        w.proc.join(timeout=max(0.0, deadline - time.monotonic()))
        if w.proc.is_alive():
            w.proc.kill()
            w.proc.join(timeout=5)
        try:
            w.conn.close()
        except OSError:
            pass
    workers.clear()


class ExecutorPool:
    """Long-lived sandboxed SQL workers with a hard wall-clock limit and a result cache.

    Use as a context manager (or call ``close()``); leftover workers are also stopped when the
    pool is garbage-collected or the interpreter exits.
    """

    def __init__(
        self,
        workers: int | None = None,
        limits: Limits = Limits(),
        *,
        hard_timeout_factor: float = 2.0,
        cache_size: int = 100_000,
    ):
        if workers is None:
            workers = os.cpu_count() or 1
        if not isinstance(workers, int) or workers < 0:
            raise ConfigError(f"workers must be an int >= 0 (0 = run in this process), got {workers!r}")
        if not hard_timeout_factor >= 1.0:
            raise ConfigError(
                f"hard_timeout_factor must be >= 1 (the hard kill must not precede the sandbox's own deadline), "
                f"got {hard_timeout_factor!r}"
            )
        if not isinstance(cache_size, int) or cache_size < 0:
            raise ConfigError(f"cache_size must be an int >= 0, got {cache_size!r}")
        self.workers = workers
        self.limits = limits
        self.hard_timeout = limits.timeout * hard_timeout_factor + HARD_GRACE
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[Any, ...], ExecResult] = OrderedDict()
        self._hits = 0
        self._misses = 0
        self._ctx: Any = None
        self._procs: list[_Worker] = []
        self._closed = False
        # The finalizer holds the worker list, not self, so the pool can be garbage-collected.
        self._finalizer = weakref.finalize(self, _shutdown, self._procs)

    # ------------------------------------------------------------------ public API

    def __enter__(self) -> "ExecutorPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop all workers (they are gone when this returns) and close this process's connections."""
        self._closed = True
        self._finalizer()
        if self.workers == 0:
            sandbox.close_connections()

    def cache_info(self) -> dict[str, int]:
        """Cache counters: ``hits`` (jobs answered without executing), ``misses``, ``size``."""
        return {"hits": self._hits, "misses": self._misses, "size": len(self._cache)}

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (empty before the first run and after close)."""
        return [w.proc.pid for w in self._procs if w.proc.is_alive()]

    def run_one(self, db_path: str | os.PathLike[str], sql: str, *, cache: bool = False) -> ExecResult:
        """``run([(db_path, sql)])[0]``."""
        return self.run([(os.fspath(db_path), sql)], cache=cache)[0]

    def run(
        self,
        jobs: Sequence[tuple[str, str]],
        *,
        cache: bool = False,
        progress: bool | str = False,
    ) -> list[ExecResult]:
        """Run read-only queries; one ``ExecResult`` per ``(db_path, sql)`` job, in job order.

        Guarantees: never raises because of a job's SQL or database (see ``sandbox.execute``);
        no query outlives the hard limit (except with ``workers=0``). ``progress`` shows a tqdm bar
        on stderr (a string is its description).
        """
        return self._run(jobs, _KIND_QUERY, cache, progress)

    def run_dml(
        self,
        jobs: Sequence[tuple[str, str]],
        *,
        progress: bool | str = False,
    ) -> list[ExecResult]:
        """Run data-modifying statements, each on its own throw-away copy of the database.

        Same guarantees as ``run``; each result is ``sandbox.execute_on_copy``'s
        (``rows == ((changes,),)``). Never cached: copies are not free, but repeated DML
        rewards over the same statement are rare.
        """
        return self._run(jobs, _KIND_DML, False, progress)

    # ------------------------------------------------------------------ internals

    def _run(self, jobs: Sequence[tuple[Any, str]], kind: int, cache: bool, progress: bool | str) -> list[ExecResult]:
        if self._closed:
            raise RuntimeError("ExecutorPool is closed")
        n = len(jobs)
        results: list[ExecResult | None] = [None] * n
        # unique work: key -> list of job indices sharing it (all jobs, when not caching)
        todo: list[tuple[int, Any, str, int]] = []
        waiters: dict[int, list[int]] = {}
        keys: dict[int, tuple[Any, ...]] = {}
        if cache:
            stat_memo: dict[Any, tuple[Any, ...] | None] = {}
            first_of: dict[tuple[Any, ...], int] = {}
            for i, (db, sql) in enumerate(jobs):
                key = self._cache_key(db, sql, stat_memo)
                if key is not None:
                    hit = self._cache.get(key)
                    if hit is not None:
                        self._cache.move_to_end(key)
                        self._hits += 1
                        results[i] = hit
                        continue
                    if key in first_of:
                        self._hits += 1
                        waiters[first_of[key]].append(i)
                        continue
                    first_of[key] = i
                    keys[i] = key
                self._misses += 1
                waiters[i] = [i]
                todo.append((i, db, sql, kind))
        else:
            todo = [(i, db, sql, kind) for i, (db, sql) in enumerate(jobs)]

        bar = self._progress_bar(progress, n, n - len(todo))
        try:
            for i, res, trusted in self._execute(todo, bar):
                for j in waiters.get(i, (i,)):
                    results[j] = res
                key = keys.get(i)
                # Timeouts and worker deaths depend on the machine's load: never remembered.
                if key is not None and trusted and res.error != "timeout":
                    self._remember(key, res)
        finally:
            if bar is not None:
                bar.close()
        assert all(r is not None for r in results)
        return results  # type: ignore[return-value]

    def _cache_key(self, db: Any, sql: str, memo: dict[Any, tuple[Any, ...] | None]) -> tuple[Any, ...] | None:
        if db is _SLEEP or self.cache_size == 0:
            return None
        if db not in memo:
            try:
                real = os.path.realpath(os.fspath(db))
                st = os.stat(real)
                memo[db] = (real, st.st_size, st.st_mtime_ns)
            except (OSError, TypeError, ValueError):
                memo[db] = None  # missing file: not cached, the sandbox reports it
        ident = memo[db]
        return None if ident is None else (*ident, sql)

    def _remember(self, key: tuple[Any, ...], res: ExecResult) -> None:
        self._cache[key] = res
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    @staticmethod
    def _progress_bar(progress: bool | str, total: int, done: int) -> Any:
        if not progress:
            return None
        from tqdm import tqdm  # imported only when asked for

        desc = progress if isinstance(progress, str) else "executing"
        return tqdm(total=total, initial=done, desc=desc, file=sys.stderr, unit="q", leave=False)

    def _execute(self, todo: list[tuple[int, Any, str, int]], bar: Any):
        """Yield (job index, result, trusted) for every job of ``todo``, in completion order.

        ``trusted`` is False for results made up by the parent (hard kill, dead worker).
        """
        if not todo:
            return
        if self.workers == 0:
            for index, db, sql, kind in todo:
                yield index, _run_job(db, sql, self.limits, kind), True
                if bar is not None:
                    bar.update(1)
            return
        try:
            yield from self._execute_in_workers(todo, bar)
        finally:
            # Interrupted (Ctrl-C, an exception in the caller): workers still busy with a chunk
            # would later answer a question nobody asked; kill them, fresh ones start on demand.
            for w in [w for w in self._procs if w.chunks]:
                w.kill()
                self._procs.remove(w)

    def _execute_in_workers(self, todo: list[tuple[int, Any, str, int]], bar: Any):
        n_workers = self.workers
        size = max(1, min(MAX_CHUNK, -(-len(todo) // (n_workers * 4))))
        pending: deque[list[tuple[int, Any, str, int]]] = deque(
            todo[k : k + size] for k in range(0, len(todo), size)
        )
        start_failures = 0
        while True:
            self._hand_out(pending, n_workers)
            busy = [w for w in self._procs if w.chunks]
            if not busy:
                return
            ready = wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], timeout=_POLL)
            now = time.monotonic()
            for w in busy:
                if w.conn in ready:
                    try:
                        packed = w.conn.recv()
                    except (EOFError, OSError):
                        packed = None
                    if packed is not None:
                        chunk = w.chunks.popleft()  # replies come in the order chunks were sent
                        start_failures = 0
                        for (index, *_), t in zip(chunk, packed):
                            yield index, _unpack(t), True
                        if bar is not None:
                            bar.update(len(chunk))
                        continue
                if w.proc.sentinel in ready or w.conn in ready:
                    # EOF or process exit without a reply: the worker died by itself.
                    w.proc.join(timeout=1)
                    code = w.proc.exitcode
                    if code == -signal.SIGKILL:
                        err, why = "too_large", "worker killed by signal 9 (likely the out-of-memory killer)"
                    elif code is not None and code < 0:
                        err, why = "exec_error", f"worker killed by signal {-code}"
                    else:
                        err, why = "exec_error", f"worker died (exit code {code})"
                    done = yield from self._lose_worker(w, pending, err, why, bar)
                    start_failures = 0 if done else start_failures + 1
                elif self._past_hard_deadline(w, now):
                    why = f"killed after {self.hard_timeout:.1f}s hard limit (worker)"
                    yield from self._lose_worker(w, pending, "timeout", why, bar)
                    start_failures = 0
            if start_failures >= _MAX_START_FAILURES:
                raise ExecutionError(
                    f"executor workers keep dying before running any query ({start_failures} in a row). "
                    "With the forkserver/spawn start method (used once torch or threads are loaded) the "
                    "main script must be import-safe (`if __name__ == '__main__':`); also check that "
                    f"Limits.max_memory_mb={self.limits.max_memory_mb} leaves room for Python itself."
                )

    def _hand_out(self, pending: deque, n_workers: int) -> None:
        """Give every worker up to IN_FLIGHT chunks, round-robin, starting workers as needed.

        Two chunks in flight per worker: the worker starts its next chunk while the parent is
        still reading the previous reply, instead of waiting for the parent to be scheduled.
        """
        while pending and len(self._procs) < n_workers:
            self._send(self._spawn(), pending.popleft())
        for depth in range(1, IN_FLIGHT + 1):
            for w in self._procs:
                if pending and len(w.chunks) < depth:
                    self._send(w, pending.popleft())

    @staticmethod
    def _send(w: _Worker, chunk: list[tuple[int, Any, str, int]]) -> None:
        w.chunks.append(chunk)
        try:
            w.conn.send(chunk)
        except (OSError, ValueError):
            pass  # the worker died: noticed through its sentinel/EOF, and the chunk re-queued

    def _past_hard_deadline(self, w: _Worker, now: float) -> bool:
        # Read index, start, index: if the index changed in between, the pair is torn; skip.
        i1 = w.state[0]
        start = w.state[1]
        i2 = w.state[0]
        return i1 >= 0 and i1 == i2 and now - start > self.hard_timeout

    def _lose_worker(self, w: _Worker, pending: deque, err: str, why: str, bar: Any):
        """Kill ``w``, fail its current query with ``err``, re-queue the rest of its chunks.

        Returns True when a query was blamed (the worker had started one), False otherwise.
        """
        current = int(w.state[0])
        w.kill()
        self._procs.remove(w)
        jobs = [job for chunk in w.chunks for job in chunk]
        w.chunks.clear()
        # Jobs of these chunks that had finished are run again: their reply was never sent.
        rest = [job for job in jobs if job[0] != current]
        blamed = len(rest) < len(jobs)
        if blamed:
            secs = self.hard_timeout if err == "timeout" else 0.0
            yield current, ExecResult(rows=None, error=err, message=why, seconds=secs), False
            if bar is not None:
                bar.update(1)
        if rest:
            pending.appendleft(rest)
        return blamed

    def _spawn(self) -> _Worker:
        if self._ctx is None:
            self._ctx = _choose_context()
        w = _Worker(self._ctx, self.limits)
        self._procs.append(w)
        return w


class LazyPool:
    """One ``ExecutorPool`` shared by a run, started on first use (the one lazy pool wrapper:
    prediction's voting and the execution rewards both hold one).

    ``LazyPool(pool)`` wraps a caller's pool (never closed here); ``LazyPool(workers=...,
    limits=...)`` starts its own on first ``.pool`` or ``run`` (a greedy prediction never starts
    one) and ``close`` stops it. Thread-safe creation. It pickles without its pool (worker
    processes do not pickle): the copy makes its own when it first needs one, which is what lets
    the reward objects holding it be sent to other processes."""

    def __init__(self, pool: Any = None, *, workers: int | None = None, limits: Limits | None = None):
        self._pool = pool
        self._owned = False
        self._workers = workers
        self._limits = limits
        self._lock = threading.Lock()

    @property
    def pool(self) -> Any:
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ExecutorPool(workers=self._workers, limits=self._limits or Limits())
                    self._owned = True
        return self._pool

    @property
    def limits(self) -> Limits:
        if self._limits is not None:
            return self._limits
        return getattr(self._pool, "limits", None) or Limits()

    def run(self, jobs: Sequence[tuple[Any, str]]) -> list[ExecResult]:
        """``ExecutorPool.run`` of ``jobs``; no jobs start no pool."""
        return list(self.pool.run(list(jobs))) if jobs else []

    def close(self) -> None:
        """Stop the pool if this wrapper started it (a caller's pool is left to its owner)."""
        if self._owned and self._pool is not None:
            for method in ("close", "shutdown"):
                stop = getattr(self._pool, method, None)
                if callable(stop):
                    stop()
                    break
            self._pool = None
            self._owned = False

    def __enter__(self) -> LazyPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"_workers": self._workers, "_limits": self._limits}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(None, workers=state["_workers"], limits=state["_limits"])
