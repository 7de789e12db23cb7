"""Dataset kinds -> loader functions, and the two public entry points.

Every loader has the signature ``loader(path, split, *, report=LoadReport, **kw) -> list[Example]``.
Adding a format means adding one entry to :data:`LOADERS`; nothing dispatches on names elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from sqlcoach.data.bird import load_bird
from sqlcoach.data.create_context import load_create_context
from sqlcoach.data.jsonl import LoadReport, Problem, load_jsonl
from sqlcoach.data.sparc_cosql import load_chase, load_cosql, load_sparc
from sqlcoach.data.spider import load_spider
from sqlcoach.data.wikisql import load_wikisql
from sqlcoach.errors import DataError
from sqlcoach.types import Example

Loader = Callable[..., list[Example]]

LOADERS: dict[str, Loader] = {
    "spider": load_spider,
    "bird": load_bird,
    "sparc": load_sparc,
    "cosql": load_cosql,
    "chase": load_chase,
    "wikisql": load_wikisql,
    "create_context": load_create_context,
    "jsonl": load_jsonl,
}


def load_examples_with_report(
    kind: str, path: str | Path, split: str | None = None, **kw: Any
) -> tuple[list[Example], list[Problem]]:
    """Load ``kind`` data from ``path``; return the examples and the problems met (each logged).

    ``split=None`` means the loader's default (``dev`` for split-based formats). Extra keyword
    arguments go to the loader (``db_dir``, ``tables``, ``cache_dir``, ...). Raises DataError for
    an unknown kind or a whole-file failure (missing file, unreadable JSON array).
    """
    try:
        loader = LOADERS[kind]
    except KeyError:
        raise DataError(f"unknown dataset kind {kind!r} (known: {', '.join(sorted(LOADERS))})") from None
    report = LoadReport()
    if split is None:
        examples = loader(path, report=report, **kw)
    else:
        examples = loader(path, split, report=report, **kw)
    return examples, report.problems


def load_examples(kind: str, path: str | Path, split: str | None = None, **kw: Any) -> list[Example]:
    """Like :func:`load_examples_with_report` without the problems (they are still logged)."""
    return load_examples_with_report(kind, path, split, **kw)[0]
