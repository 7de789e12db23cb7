"""Write a file so that readers see the old content or the new, never half of it.

Every file sqlcoach writes whole (prediction files, JSONL rewrites, reports, run metadata,
result files of the comparison, mined pairs, exports, generated SQLite databases, caches) goes
through :func:`replacing` or :func:`atomic_write`: the content goes to a temporary file in the
target's folder (same file system, so the final ``os.replace`` is atomic on POSIX and Windows),
which then replaces the target. A failure part-way leaves the target as it was and removes the
temporary file. The temporary name is unique (``tempfile.mkstemp``), so two processes writing the
same target (e.g. the hardness cache) do not tear each other's file; the last replace wins.

Not covered: durability across a power loss (no ``fsync`` of the file or its folder; the files
that must survive a crash line by line, the prediction JSONLs, fsync each record themselves),
and folders (PPO's checkpoint and the demo world swap whole directories with their own renames).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def default_permissions(path: str | Path) -> None:
    """Give a file made by ``tempfile.mkstemp`` (mode 0600) the usual mode for new files (umask)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


@contextmanager
def replacing(target: str | Path, *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield an empty temporary file's path beside ``target`` (its folder is created); when the
    block ends normally the file gets the usual mode and replaces ``target``; when it raises, the
    temporary file is removed and ``target`` is untouched."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        default_permissions(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | Path, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` through :func:`replacing`; returns the path."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(path)
