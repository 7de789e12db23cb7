"""Value retrieval: which database values does the question mention?

A lexical matcher, no Java and no network (in the spirit of BRIDGE / CodeS value retrieval, much
simpler): every distinct text value of every column (up to ``max_distinct`` per column, values
of at most 100 characters that contain a letter) is indexed by its lower-cased word tokens. Which
values a column contributes does not depend on storage order: the most frequent first, ties in
value order (``GROUP BY ... ORDER BY COUNT(*) DESC, value``), so a column with more than
``max_distinct`` values always gives the same ones, however its rows were inserted. For a
question, candidates are the values sharing a non-stopword token with it; each candidate is
scored by the longest common substring with the question divided by the value's length (1.0 when
the whole value occurs in the question), and kept when the score is at least ``min_score``.

The index is built once per database file (cached by path, mtime, size, ``max_distinct``) from a
read-only connection.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path

from sqlcoach.errors import DataError
from sqlcoach.schema.introspect import connect_ro, qi, resolve_db_file

STOPWORDS = frozenset(
    """a an the of in on at to for by with and or not no is are was were be been being what which who
    whom whose how many much show list find give return all each every that this those these from as
    do does did has have had there their its it than more most less least me i you we they he she them
    his her our your any some other only also per into out about over under between when where why
    can could would should will shall may might must one two three""".split()
)
_TOKEN = re.compile(r"\w+", re.UNICODE)
_MAX_VALUE_LEN = 100


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens of ``text``."""
    return _TOKEN.findall(text.lower())


@dataclass
class ValueIndex:
    """Distinct text values of one database and a token -> value-ids inverted index."""

    values: list[tuple[str, str, str]] = field(default_factory=list)  # (table, column, value)
    lowered: list[str] = field(default_factory=list)
    by_token: dict[str, list[int]] = field(default_factory=dict)


_INDEX: dict[tuple, ValueIndex] = {}
_INDEX_MAX = 64


def build_index(db_path: str | Path, *, max_distinct: int = 5000) -> ValueIndex:
    """The (cached) value index of a database; DataError when it cannot be read."""
    f = resolve_db_file(db_path).resolve()
    st = f.stat()
    key = (str(f), st.st_mtime_ns, st.st_size, max_distinct)
    hit = _INDEX.get(key)
    if hit is not None:
        return hit
    idx = ValueIndex()
    try:
        con = connect_ro(f)
        try:
            tables = [
                r[0]
                for r in con.execute(
                    "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
                )
            ]
            for t in tables:
                for row in con.execute(f"PRAGMA table_info({qi(t)})").fetchall():
                    col = row[1]
                    # typeof() rather than the declared type: Spider declares years as TEXT and
                    # names as varchar; only values stored as text can be mentioned as words.
                    # ORDER BY, not storage order: which values are indexed must not depend on
                    # how the rows were inserted (most frequent first, then the value itself)
                    rows = con.execute(
                        f"SELECT {qi(col)} FROM {qi(t)} WHERE typeof({qi(col)}) = 'text' "
                        f"GROUP BY {qi(col)} ORDER BY COUNT(*) DESC, {qi(col)} LIMIT ?",
                        (max_distinct,),
                    ).fetchall()
                    for (v,) in rows:
                        v = v.strip() if isinstance(v, str) else ""
                        if not v or len(v) > _MAX_VALUE_LEN or not any(ch.isalpha() for ch in v):
                            continue
                        i = len(idx.values)
                        idx.values.append((t, col, v))
                        low = v.lower()
                        idx.lowered.append(low)
                        for tok in set(tokens(low)) - STOPWORDS:
                            idx.by_token.setdefault(tok, []).append(i)
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise DataError(f"cannot index values: {exc}", str(f)) from exc
    if len(_INDEX) >= _INDEX_MAX:
        _INDEX.pop(next(iter(_INDEX)))
    _INDEX[key] = idx
    return idx


def match_score(value_lower: str, question_lower: str) -> tuple[float, int]:
    """(score, matched chars): longest common substring of value and question over len(value).

    A value that occurs in the question on word boundaries scores exactly 1.0.
    """
    if re.search(r"(?<!\w)" + re.escape(value_lower) + r"(?!\w)", question_lower):
        return 1.0, len(value_lower)
    m = SequenceMatcher(None, value_lower, question_lower, autojunk=False).find_longest_match(
        0, len(value_lower), 0, len(question_lower)
    )
    return m.size / max(1, len(value_lower)), m.size


def retrieve_values(
    db_path: str | Path,
    question: str,
    *,
    k: int = 10,
    max_distinct: int = 5000,
    min_score: float = 0.6,
) -> list[tuple[str, str, str]]:
    """Up to ``k`` ``(table, column, value)`` triples whose value the question mentions, best first.

    Ordering: score, then matched length (longer first), then table, column, value, so that the
    result is deterministic. Returns [] for an empty question; DataError when the database cannot
    be read.
    """
    q_low = question.lower()
    q_toks = set(tokens(q_low)) - STOPWORDS
    if not q_toks or k <= 0:
        return []
    idx = build_index(db_path, max_distinct=max_distinct)
    cand: set[int] = set()
    for tok in q_toks:
        cand.update(idx.by_token.get(tok, ()))
    scored = []
    for i in cand:
        score, size = match_score(idx.lowered[i], q_low)
        # at least 3 matched characters: a shared "x" is no evidence of a mention
        if score >= min_score and size >= 3:
            t, c, v = idx.values[i]
            scored.append((-score, -size, t, c, v))
    scored.sort()
    return [(t, c, v) for _s, _n, t, c, v in scored[:k]]
