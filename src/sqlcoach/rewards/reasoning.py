"""``reasoning_quality``: a cheap, transparent score of the reasoning that precedes the SQL.

The reasoning is the content of the first ``<reasoning>...</reasoning>`` or ``<think>...</think>``
block; without one, the completion with its SQL parts (``<sql>``/``<answer>`` blocks, fenced
code, and everything from a line that starts with SELECT or WITH) removed. Reward = ``min(1, sum of parts)·w`` (``w`` default 0.7); parts:

* length: 0.20 at >= 50 words, 0.15 at >= 25, 0.10 at >= 10
* SQL terms: 0.03 per distinct term of ``SQL_TERMS`` named, at most 0.20
* structure: 0.15 at >= 3 non-blank lines, 0.10 at >= 2
* steps: 0.15 when both a first step (first, to begin, step 1, ...) and a later step
  (then, next, finally, step 2, ...) are named
* schema: 0.05 per distinct table or column of this example's database named, at most 0.30
  (names read from the SQLite file in the ``db_path`` column; 0 when it is absent)

It rewards the form of reasoning, not its truth; keep its weight below the execution reward's.
"""

from __future__ import annotations

import re
import sqlite3
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlcoach.rewards.base import Reward
from sqlcoach.rewards.common import completion_text, identifiers, words

SQL_TERMS: tuple[str, ...] = (
    "select", "where", "join", "group by", "order by", "having", "count", "sum", "avg", "average",
    "min", "max", "distinct", "limit", "union", "intersect", "except", "subquery", "aggregate",
    "foreign key", "primary key", "like", "between", "null", "ascending", "descending", "table",
    "column", "filter", "sort",
)  # fmt: skip
_TERM_RES = tuple(re.compile(r"\b" + re.escape(t).replace(r"\ ", r"\s+") + r"\b", re.I) for t in SQL_TERMS)

_FIRST_STEP = re.compile(r"\b(first|firstly|to begin|begin by|start by|step\s*1)\b|^\s*1[.)]", re.I | re.M)
_LATER_STEP = re.compile(
    r"\b(then|next|second|secondly|finally|lastly|after that|afterwards|step\s*[2-9])\b|^\s*[2-9][.)]", re.I | re.M
)

_BLOCK = re.compile(r"<(reasoning|think)>(.*?)(?:</\1>|$)", re.I | re.S)
_SQL_PARTS = re.compile(r"<(sql|answer)>.*?(?:</\1>|$)|```.*?(?:```|$)", re.I | re.S)
# Bare SQL after the reasoning: from the first line that starts with SELECT or WITH to the end.
_BARE_SQL = re.compile(r"^[ \t]*(select|with)\b.*", re.I | re.S | re.M)


def reasoning_text(text: str) -> str:
    """The reasoning part of a completion (see the module docstring); ``""`` when there is none."""
    match = _BLOCK.search(text)
    if match:
        return match.group(2).strip()
    return _BARE_SQL.sub(" ", _SQL_PARTS.sub(" ", text)).strip()


@lru_cache(maxsize=1024)
def schema_names(db_path: str) -> frozenset[str]:
    """Lower-cased table and column names of the SQLite database at ``db_path`` (a file, or a
    test-suite folder: its main file), empty on any failure.

    Opened read-only through a ``mode=ro`` URI; only ``sqlite_master`` and ``pragma_table_info``
    are read (trusted queries, no model SQL), so this needs no sandbox.
    """
    path = Path(db_path)
    if path.is_dir():  # a test-suite folder: its main file <folder>/<folder>.sqlite, else the first
        main = path / f"{path.name}.sqlite"
        files = [main] if main.is_file() else sorted(path.glob("*.sqlite"))
        if not files:
            return frozenset()
        path = files[0]
    if not path.is_file():
        return frozenset()
    names: set[str] = set()
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table','view')")]
            for table in tables:
                if table.startswith("sqlite_"):
                    continue
                names.add(table.lower())
                for (col,) in conn.execute("SELECT name FROM pragma_table_info(?)", (table,)):
                    names.add(str(col).lower())
        finally:
            conn.close()
    except sqlite3.Error:
        return frozenset()
    return frozenset(names)


def _mentions(text: str, names: frozenset[str]) -> int:
    if not names:
        return 0
    tokens = identifiers(text)
    low = text.lower()
    count = 0
    for name in names:
        if re.fullmatch(r"\w+", name):
            count += name in tokens
        else:  # names with spaces or punctuation (a few Spider columns)
            count += re.search(r"(?<!\w)" + re.escape(name) + r"(?!\w)", low) is not None
    return count


def reasoning_parts(reasoning: str, names: frozenset[str] = frozenset()) -> dict[str, float]:
    """The five unweighted parts of the score (keys: length, terms, structure, steps, schema)."""
    n_words = len(words(reasoning))
    length = 0.20 if n_words >= 50 else 0.15 if n_words >= 25 else 0.10 if n_words >= 10 else 0.0
    terms = min(0.20, 0.03 * sum(1 for r in _TERM_RES if r.search(reasoning)))
    lines = sum(1 for line in reasoning.splitlines() if line.strip())
    structure = 0.15 if lines >= 3 else 0.10 if lines >= 2 else 0.0
    steps = 0.15 if (_FIRST_STEP.search(reasoning) and _LATER_STEP.search(reasoning)) else 0.0
    schema = min(0.30, 0.05 * _mentions(reasoning, names))
    return {"length": length, "terms": terms, "structure": structure, "steps": steps, "schema": schema}


class ReasoningQualityReward(Reward):
    """``reasoning_quality`` reward: ``min(1, sum(reasoning_parts))·weight``."""

    default_name = "reasoning_quality"
    needs_gold = False

    def __init__(self, weight: float = 0.7, *, db_column: str = "db_path", name: str = "reasoning_quality"):
        super().__init__(weight, name=name)
        self.db_column = db_column

    def score(self, completions: list[Any], columns: dict[str, Any]) -> list[float | None]:
        """One reward in [0, weight] per completion; never ``None`` (it needs no gold)."""
        n = len(completions)
        dbs = self.column(columns, self.db_column, n, required=False)
        out: list[float | None] = []
        for completion, db in zip(completions, dbs):
            text = reasoning_text(completion_text(completion))
            names = schema_names(str(db)) if db else frozenset()
            out.append(self.weight * min(1.0, sum(reasoning_parts(text, names).values())))
        return out
