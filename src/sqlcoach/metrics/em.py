"""Exact match (EM) and Spider hardness over many examples.

The rules themselves live in ``sqlcoach.sql.exact_match`` and ``sqlcoach.sql.hardness``; this
module only applies them to lists, in parallel chunks when the list is long, because sqlglot
parsing is pure Python and dominates ``--etype all`` on a large file.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import sys
import threading
from typing import Sequence

from sqlcoach.metrics.cache import get_hardness, put_hardness


# Below this many examples a process pool costs more to start than it saves.
_PARALLEL_MIN = 400


Rows = list[tuple[str, str, str]]
Chunk = tuple[Rows, str | None, bool]
Labels = list[tuple[bool | None, str | None]]


def _chunk(args: Chunk) -> Labels:
    rows, tables_path, want_em = args
    return _label(rows, _tables_for(tables_path, want_em), want_em)


def _tables_for(tables_path: str | None, want_em: bool) -> dict:
    # imported here, not at module level: in the forked children the parser loads while the
    # parent is already executing queries
    from sqlcoach.sql.tables import load_tables

    return load_tables(tables_path) if (tables_path and want_em) else {}


def _label(rows: Rows, tables: dict, want_em: bool) -> Labels:
    out: Labels = []
    for pred, gold, db_id in rows:
        hard = _safe_hardness(gold)
        em: bool | None = None
        if want_em:
            em = _safe_em(pred, gold, tables.get(db_id))
        out.append((em, hard))
    return out


def _safe_hardness(sql: str) -> str | None:
    from sqlcoach.sql.hardness import hardness

    try:
        return hardness(sql)
    except Exception:  # a gold the parser cannot read has no hardness, it must not stop the run
        return None


def _safe_em(pred: str, gold: str, db) -> bool:
    from sqlcoach.sql.exact_match import exact_match

    if not (pred or "").strip():
        return False
    try:
        return bool(exact_match(pred, gold, db))
    except Exception:  # junk predictions are expected; they are simply not an exact match
        return False


class PendingEM:
    """EM and hardness being computed in a forked process; ``result()`` collects them.

    Started before execution so that parsing overlaps with the executor's workers. One plain
    ``fork`` process (a pipe, no executor thread: the parent stays single-threaded, so the
    executor pool may still fork its own workers cheaply afterwards) imports the parser and reads
    tables.json ONCE, then forks a helper per further chunk, so the ~0.25 s import of sqlglot is
    paid once however many chunks there are. A chunk whose process dies is computed where it was
    to be collected instead; results never depend on how the rows were split.
    """

    def __init__(
        self,
        chunks: list[Chunk],
        *,
        done: Labels | None = None,
        cache_golds: Sequence[str] | None = None,
    ):
        self._chunks = chunks
        self._done = done
        self._cache_golds = cache_golds
        self._proc: tuple[object, object] | None = None
        if done is not None:
            return
        can_fork = (
            "fork" in multiprocessing.get_all_start_methods()
            and threading.active_count() == 1
            and "torch" not in sys.modules  # forking after torch started its threads can deadlock
        )
        if can_fork and len(chunks) > 1:
            ctx = multiprocessing.get_context("fork")
            parent, child = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_leader, args=(child, chunks), daemon=True)
            proc.start()
            child.close()
            self._proc = (proc, parent)

    def result(self) -> Labels:
        if self._done is not None:
            return self._done
        out: Labels | None = None
        if self._proc is not None:
            proc, conn = self._proc
            try:
                out = conn.recv()
            except (EOFError, OSError):
                out = None  # the process died: compute everything here instead
            finally:
                conn.close()
                proc.join(timeout=5)
        if out is None:
            out = [label for chunk in self._chunks for label in _chunk(chunk)]
        if self._cache_golds is not None:
            put_hardness(self._cache_golds, [h for _, h in out])
        self._done = out
        return out


def _leader(conn, chunks: list[Chunk]) -> None:
    """Load the parser (for EM) and tables once, fork one helper per chunk after the first, label
    the first chunk here, then send every chunk's labels back in order."""
    try:
        _, tables_path, want_em = chunks[0]
        tables = _tables_for(tables_path, want_em)
        if want_em:  # the parser (sqlglot); hardness alone reads plain SQL without it (sql.hardness_scan)
            import sqlcoach.sql.exact_match  # noqa: F401 - loaded before the fork, shared by the helpers
        import sqlcoach.sql.hardness  # noqa: F401

        helpers = [_fork_helper(rows, tables, want_em) for rows, _, _ in chunks[1:]]
        parts = [_label(chunks[0][0], tables, want_em)]
        for (rows, _, _), helper in zip(chunks[1:], helpers):
            part = _collect_helper(helper)
            parts.append(part if part is not None else _label(rows, tables, want_em))
        conn.send([label for part in parts for label in part])
    finally:
        conn.close()


def _fork_helper(rows: Rows, tables: dict, want_em: bool) -> tuple[int, int] | None:
    """(pid, read end of its pipe) of a forked process labelling ``rows``; None if fork failed."""
    try:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
    except OSError:
        return None
    if pid == 0:  # the helper: label, write the pickle, leave without running any cleanup
        code = 1
        try:
            os.close(read_fd)
            with os.fdopen(write_fd, "wb") as fh:
                pickle.dump(_label(rows, tables, want_em), fh, protocol=pickle.HIGHEST_PROTOCOL)
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    return pid, read_fd


def _collect_helper(helper: tuple[int, int] | None) -> Labels | None:
    if helper is None:
        return None
    pid, read_fd = helper
    try:
        with os.fdopen(read_fd, "rb") as fh:
            data = fh.read()
        os.waitpid(pid, 0)
        return pickle.loads(data) if data else None
    except (OSError, pickle.UnpicklingError, EOFError, ChildProcessError):
        return None


def start_em_and_hardness(
    preds: Sequence[str],
    golds: Sequence[str],
    db_ids: Sequence[str],
    *,
    tables_path: str | None,
    want_em: bool = True,
    workers: int | None = None,
) -> PendingEM:
    """Start computing ``(em, hardness)`` per example; see ``em_and_hardness``.

    Without EM, hardness labels come from the on-disk cache when this exact gold list was seen
    before (``sqlcoach.metrics.cache``), and are stored there after a miss.
    """
    rows = list(zip(preds, golds, db_ids))
    cache_golds = None
    if not want_em:
        hit = get_hardness(golds)
        if hit is not None:
            return PendingEM([], done=[(None, h) for h in hit])
        cache_golds = list(golds)
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers <= 1 or len(rows) < _PARALLEL_MIN:
        return PendingEM([(rows, tables_path, want_em)], cache_golds=cache_golds)
    size = (len(rows) + workers - 1) // workers
    chunks = [(rows[i : i + size], tables_path, want_em) for i in range(0, len(rows), size)]
    return PendingEM(chunks, cache_golds=cache_golds)


def em_and_hardness(
    preds: Sequence[str],
    golds: Sequence[str],
    db_ids: Sequence[str],
    *,
    tables_path: str | None,
    want_em: bool = True,
    workers: int | None = None,
) -> list[tuple[bool | None, str | None]]:
    """Return ``(em, hardness)`` per example; ``em`` is ``None`` when ``want_em`` is false.

    Hardness is always computed from the gold (Spider's convention). EM merges columns linked by
    foreign keys when ``tables_path`` (Spider's tables.json) is given, and not otherwise.
    """
    return start_em_and_hardness(
        preds, golds, db_ids, tables_path=tables_path, want_em=want_em, workers=workers
    ).result()
