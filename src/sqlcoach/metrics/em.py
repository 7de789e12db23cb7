"""Exact match (EM) and Spider hardness over many examples.

The rules themselves live in ``sqlcoach.sql.exact_match`` and ``sqlcoach.sql.hardness``; this
module only applies them to lists, in parallel chunks when the list is long, because sqlglot
parsing is pure Python and dominates ``--etype all`` on a large file.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Sequence

from sqlcoach.sql.exact_match import exact_match
from sqlcoach.sql.hardness import hardness
from sqlcoach.sql.tables import load_tables

# Below this many examples a process pool costs more to start than it saves.
_PARALLEL_MIN = 400


def _chunk(args: tuple[list[tuple[str, str, str]], str | None, bool]) -> list[tuple[bool | None, str | None]]:
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
    try:
        return hardness(sql)
    except Exception:  # a gold the parser cannot read has no hardness, it must not stop the run
        return None


def _safe_em(pred: str, gold: str, db) -> bool:
    if not (pred or "").strip():
        return False
    try:
        return bool(exact_match(pred, gold, db))
    except Exception:  # junk predictions are expected; they are simply not an exact match
        return False


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
    rows = list(zip(preds, golds, db_ids))
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers <= 1 or len(rows) < _PARALLEL_MIN:
        return _chunk((rows, tables_path, want_em))
    size = (len(rows) + workers - 1) // workers
    chunks = [(rows[i : i + size], tables_path, want_em) for i in range(0, len(rows), size)]
    # fork is cheapest (sqlglot is already imported), but not once torch has started its threads
    ctx = multiprocessing.get_context("spawn" if "torch" in sys.modules else "fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as ex:
        parts = list(ex.map(_chunk, chunks))
    return [r for part in parts for r in part]
