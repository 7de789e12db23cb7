"""Peak memory of a block of code: this process's resident set (sampled), and CUDA's allocator peak.

``ru_maxrss`` only ever grows over a process's life, so a per-stage peak needs sampling: a daemon
thread reads ``/proc/self/statm`` every ``interval`` seconds. Memory of child processes (the SQL
executor's workers) is not counted. On systems without ``/proc`` the process-lifetime
``ru_maxrss`` is reported instead (and ``sampled`` is False).
"""

from __future__ import annotations

import os
import resource
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss_mb() -> float | None:
    """Resident set size of this process now, in MiB (``None`` without ``/proc``)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE / 2**20
    except (OSError, ValueError, IndexError):
        return None


def lifetime_peak_rss_mb() -> float:
    """Peak RSS of this process since it started, in MiB (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


@dataclass
class PeakMemory:
    rss_mb: float = 0.0
    cuda_mb: float | None = None
    sampled: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"peak_rss_mb": round(self.rss_mb, 1), "peak_cuda_mb": None if self.cuda_mb is None else round(self.cuda_mb, 1)}


@contextmanager
def track_peak(interval: float = 0.05) -> Iterator[PeakMemory]:
    """Measure the peak memory of the ``with`` block; the yielded record is filled on exit."""
    rec = PeakMemory()
    stop = threading.Event()
    start = current_rss_mb()
    rec.sampled = start is not None
    peak = [start or 0.0]

    def sample() -> None:
        while not stop.wait(interval):
            now = current_rss_mb()
            if now is not None and now > peak[0]:
                peak[0] = now

    cuda = _cuda()
    if cuda is not None:
        cuda.reset_peak_memory_stats()
    thread = threading.Thread(target=sample, daemon=True) if rec.sampled else None
    if thread is not None:
        thread.start()
    try:
        yield rec
    finally:
        stop.set()
        if thread is not None:
            thread.join()
            end = current_rss_mb() or 0.0
            rec.rss_mb = max(peak[0], end)
        else:
            rec.rss_mb = lifetime_peak_rss_mb()
        if cuda is not None:
            rec.cuda_mb = cuda.max_memory_allocated() / 2**20


def _cuda() -> Any:
    """torch.cuda when torch is already imported and a GPU is present; never imports torch itself."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return torch.cuda
    return None
