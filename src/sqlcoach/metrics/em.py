"""Exact match (EM) and Spider hardness over many examples.

The rules themselves live in ``sqlcoach.sql.exact_match`` and ``sqlcoach.sql.hardness``; this
module only applies them to lists, in parallel chunks when the list is long, because sqlglot
parsing is pure Python and dominates ``--etype all`` on a large file.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from typing import Sequence

from sqlcoach.metrics.cache import get_hardness, put_hardness


# Below this many examples a process pool costs more to start than it saves.
_PARALLEL_MIN = 400


def _chunk(args: tuple[list[tuple[str, str, str]], str | None, bool]) -> list[tuple[bool | None, str | None]]:
    # imported here, not at module level: in the forked children the parser loads while the
    # parent is already executing queries
    from sqlcoach.sql.tables import load_tables

    rows, tables_path, want_em = args
    tables = load_tables(tables_path) if (tables_path and want_em) else {}
    out: list[tuple[bool | None, str | None]] = []
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
    """EM and hardness being computed in forked processes; ``result()`` collects them.

    Started before execution so that parsing (one core) overlaps with the executor's workers.
    Plain ``fork`` processes with a pipe each, no executor thread: the parent stays
    single-threaded, so the executor pool may still fork its own workers cheaply afterwards.
    """

    def __init__(
        self,
        chunks: list[tuple[list[tuple[str, str, str]], str | None, bool]],
        *,
        done: list[tuple[bool | None, str | None]] | None = None,
        cache_golds: Sequence[str] | None = None,
    ):
        self._chunks = chunks
        self._done = done
        self._cache_golds = cache_golds
        self._procs: list[tuple[object, object] | None] = []
        if done is not None:
            return
        can_fork = (
            "fork" in multiprocessing.get_all_start_methods()
            and threading.active_count() == 1
            and "torch" not in sys.modules  # forking after torch started its threads can deadlock
        )
        ctx = multiprocessing.get_context("fork") if can_fork else None
        for chunk in chunks:
            if ctx is None or len(chunks) == 1:
                self._procs.append(None)
                continue
            parent, child = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_child, args=(child, chunk), daemon=True)
            proc.start()
            child.close()
            self._procs.append((proc, parent))

    def result(self) -> list[tuple[bool | None, str | None]]:
        if self._done is not None:
            return self._done
        out: list[tuple[bool | None, str | None]] = []
        for chunk, handle in zip(self._chunks, self._procs):
            part = None
            if handle is not None:
                proc, conn = handle
                try:
                    part = conn.recv()
                except (EOFError, OSError):
                    part = None  # the child died: compute its share here instead
                finally:
                    conn.close()
                    proc.join(timeout=5)
            out.extend(part if part is not None else _chunk(chunk))
        if self._cache_golds is not None:
            put_hardness(self._cache_golds, [h for _, h in out])
        self._done = out
        return out


def _child(conn, chunk) -> None:
    try:
        conn.send(_chunk(chunk))
    finally:
        conn.close()


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
