"""Frozen records passed between the steps of the pipeline.

question + database -> Schema -> prompt -> model -> raw text -> SQL -> ExecResult -> Verdict

Every step takes and returns these, so that a step can be replaced without touching the others.
They hold plain Python values only (no numpy, no torch) so that they pickle cheaply across the
executor's worker processes and serialise to JSON with ``dataclasses.asdict``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

#: Spider's hardness levels, in increasing order.
HARDNESS_LEVELS: tuple[str, ...] = ("easy", "medium", "hard", "extra")
#: BIRD's difficulty levels, in increasing order.
BIRD_DIFFICULTIES: tuple[str, ...] = ("simple", "moderate", "challenging")

#: Why a prediction was not counted correct. ``None`` means correct.
ErrorClass = Literal[
    "no_sql",  # the prediction is empty / no SQL could be extracted
    "parse_error",  # the SQL does not parse (sqlglot or SQLite's own parser)
    "exec_error",  # SQLite raised while running it (missing table, refused write, ...)
    "timeout",  # it ran past its deadline
    "too_large",  # it returned more rows/bytes than the caps allow, or ran out of memory
    "wrong_result",  # it ran, and the result differs from the gold's
    "gold_error",  # the gold itself failed (or its database is missing)
    "unmeasurable",  # EX cannot tell right from wrong here (synthetic databases on which the gold returns nothing)
]
ERROR_CLASSES: tuple[str, ...] = (
    "no_sql",
    "parse_error",
    "exec_error",
    "timeout",
    "too_large",
    "wrong_result",
    "gold_error",
    "unmeasurable",
)


@dataclass(frozen=True)
class Turn:
    """One earlier turn of a multi-turn interaction (SParC, CoSQL, CHASE)."""

    question: str
    sql: str | None = None


@dataclass(frozen=True)
class Example:
    """One question over one database, from any benchmark.

    ``db_path`` is the SQLite file (or, for test-suite databases, the folder holding several
    ``*.sqlite`` files); ``None`` when the database is not available (e.g. BIRD questions alone).
    ``difficulty`` is what the dataset file says (BIRD: simple/moderate/challenging); ``hardness``
    is Spider's easy/medium/hard/extra, filled by ``sqlcoach.sql.hardness`` when computed.
    """

    id: str
    db_id: str
    question: str
    gold_sql: str | None = None
    db_path: str | None = None
    evidence: str | None = None
    difficulty: str | None = None
    hardness: str | None = None
    turns: tuple[Turn, ...] = ()
    source: str = ""  # which loader made it: "spider", "bird", "wikisql", ...
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Column:
    name: str
    type: str = ""
    primary_key: bool = False
    not_null: bool = False
    samples: tuple[str, ...] = ()  # a few distinct example values, already rendered as text
    description: str = ""  # what the column means (BIRD's database_description), "" when unknown
    value_description: str = ""  # what its values mean (BIRD), "" when unknown


@dataclass(frozen=True)
class ForeignKey:
    table: str
    column: str
    ref_table: str
    ref_column: str


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    row_count: int | None = None


@dataclass(frozen=True)
class Schema:
    db_id: str
    tables: tuple[Table, ...]
    foreign_keys: tuple[ForeignKey, ...] = ()

    def table(self, name: str) -> Table | None:
        low = name.lower()
        for t in self.tables:
            if t.name.lower() == low:
                return t
        return None


@dataclass(frozen=True)
class ExecResult:
    """What one query did on one database file.

    ``error`` is ``None`` on success, else one of ``parse_error``, ``exec_error``, ``timeout``,
    ``too_large`` (see ``ErrorClass``). ``rows`` is ``None`` when it failed. Values in rows are
    ``int``, ``float``, ``str`` (invalid UTF-8 decoded with replacement), ``bytes`` or ``None``.
    """

    rows: tuple[tuple[Any, ...], ...] | None
    columns: tuple[str, ...] = ()
    error: str | None = None
    message: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Verdict:
    """The scorer's decision on one prediction."""

    index: int
    db_id: str
    ex: bool
    em: bool | None = None
    hardness: str | None = None
    difficulty: str | None = None
    error: str | None = None
    message: str = ""
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Prediction:
    """One model answer: the raw text, the SQL extracted from it, and self-consistency votes."""

    index: int
    db_id: str
    raw: str
    sql: str
    samples: tuple[str, ...] = ()
    votes: tuple[int, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
