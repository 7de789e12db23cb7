"""On-disk cache of gold-side analysis (Spider hardness) for repeated evaluations.

Teams score checkpoint after checkpoint against the same gold file; the gold's hardness never
changes between those runs, yet parsing it is most of the scorer's CPU time with ``--etype exec``.
The cache maps the exact list of gold queries to their hardness labels.

* Where: ``$SQLCOACH_CACHE_DIR`` or ``~/.cache/sqlcoach``; ``SQLCOACH_NO_CACHE=1`` turns it off.
* Key: SHA-256 of the source of the modules that decide hardness plus every gold query, so a
  change to the rules or to any gold line is a miss, never a stale hit.
* Failure to read or write (read-only home, corrupt file) is a miss, never an error.
Predictions are never cached: EM is always computed afresh.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from sqlcoach.runtime.files import atomic_write


def cache_dir() -> Path | None:
    if os.environ.get("SQLCOACH_NO_CACHE", "") not in ("", "0"):
        return None
    base = os.environ.get("SQLCOACH_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "sqlcoach")
    return Path(base) / "hardness"


@lru_cache(maxsize=1)
def _rules_digest() -> str:
    import sqlcoach.sql as sql_pkg

    h = hashlib.sha256()
    folder = Path(sql_pkg.__file__).parent
    for name in ("hardness.py", "hardness_scan.py", "parse.py"):
        h.update((folder / name).read_bytes())
    return h.hexdigest()


def _key(golds: Sequence[str]) -> str:
    h = hashlib.sha256(_rules_digest().encode())
    for g in golds:
        h.update(b"\x00")
        h.update(g.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def get_hardness(golds: Sequence[str]) -> list[str | None] | None:
    folder = cache_dir()
    if folder is None:
        return None
    try:
        data = json.loads((folder / f"{_key(golds)}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, list) or len(data) != len(golds):
        return None
    return data


def put_hardness(golds: Sequence[str], labels: Sequence[str | None]) -> None:
    folder = cache_dir()
    if folder is None:
        return
    try:
        atomic_write(folder / f"{_key(golds)}.json", json.dumps(list(labels)))
    except OSError:
        pass
