"""One sandboxed executor pool that several threads may share (a web server's request threads):
``SqlRunner``; and ``jsonable_value``, a result cell as JSON can carry it."""

from __future__ import annotations

import threading
from typing import Any

from sqlcoach.execution.pool import ExecutorPool
from sqlcoach.execution.sandbox import Limits
from sqlcoach.types import ExecResult


def jsonable_value(v: Any) -> Any:
    """A result cell for JSON: bytes as ``0x`` + hex of the first 64 bytes (``...`` when longer),
    NaN and infinities as their text; everything else as it is."""
    if isinstance(v, (bytes, bytearray)):
        return "0x" + bytes(v[:64]).hex() + ("..." if len(v) > 64 else "")
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return str(v)
    return v


class SqlRunner:
    """One sandboxed executor pool (``ExecutorPool``: read-only, a deadline with a hard kill, a row
    cap), safe to call from several threads (calls take turns)."""

    def __init__(self, *, timeout: float = 10.0, max_rows: int = 1000, workers: int = 1):
        self.limits = Limits(timeout=timeout, max_rows=max_rows, max_bytes=16 * 2**20)
        self.pool = ExecutorPool(workers, self.limits)
        self._lock = threading.Lock()

    def run(self, db_path: str, sql: str) -> ExecResult:
        with self._lock:
            return self.pool.run_one(db_path, sql)

    def close(self) -> None:
        with self._lock:
            self.pool.close()
