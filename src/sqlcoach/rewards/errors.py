"""Fine-grained classes of a failed query, and the partial credit each earns.

The executor reports coarse classes (``ExecResult.error``: no_sql, parse_error, exec_error,
timeout, too_large) plus SQLite's own message. Rewards need finer ones: a query that only lacks a
table qualifier (``ambiguous column name``) is much closer to right than one that names a table
that does not exist. ``classify(result)`` maps a result to one of ``ERROR_KINDS``; ``ERROR_CREDIT``
is the fraction of the reward weight each kind earns (0.0 to 0.2, by how close the query came).

Severity table (fraction of the weight ``w``; see docs/rewards.md):

==================  ======  ==================================================================
kind                credit  typical SQLite message / executor class
==================  ======  ==================================================================
no_sql              0.00    nothing that looks like SQL in the completion
syntax              0.00    ``near "x": syntax error``, ``incomplete input``, parse_error
forbidden           0.00    refused by the sandbox: writes, ``not authorized``, several statements
other               0.05    any other SQLite error
missing_table       0.10    ``no such table: x``
missing_column      0.12    ``no such column: x``
missing_function    0.12    ``no such function: x``
timeout             0.10    ran past its deadline (``interrupted``)
too_large           0.10    more rows/bytes than the caps allow, ``out of memory``
type_mismatch       0.15    ``datatype mismatch``
misuse              0.15    ``misuse of aggregate``, wrong argument count, column-count mismatch
ambiguous_column    0.20    ``ambiguous column name: x`` (only a qualifier is missing)
==================  ======  ==================================================================
"""

from __future__ import annotations

import re

from sqlcoach.types import ExecResult

ERROR_KINDS: tuple[str, ...] = (
    "no_sql",
    "syntax",
    "forbidden",
    "other",
    "missing_table",
    "missing_column",
    "missing_function",
    "timeout",
    "too_large",
    "type_mismatch",
    "misuse",
    "ambiguous_column",
)

#: Fraction of the reward weight earned by a query that failed with each kind of error.
ERROR_CREDIT: dict[str, float] = {
    "no_sql": 0.0,
    "syntax": 0.0,
    "forbidden": 0.0,
    "other": 0.05,
    "missing_table": 0.10,
    "missing_column": 0.12,
    "missing_function": 0.12,
    "timeout": 0.10,
    "too_large": 0.10,
    "type_mismatch": 0.15,
    "misuse": 0.15,
    "ambiguous_column": 0.20,
}

# (kind, pattern) tried in order on SQLite's message; the first match wins. Order matters where
# messages overlap: "aggregate functions are not allowed in ..." is misuse, not a refused write.
_MESSAGE_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ambiguous_column", re.compile(r"ambiguous column name", re.I)),
    ("missing_table", re.compile(r"no such table|no such view|unknown database", re.I)),
    ("missing_column", re.compile(r"no such column|has no column named", re.I)),
    ("missing_function", re.compile(r"no such function|unknown function", re.I)),
    ("syntax", re.compile(r"syntax error|incomplete input|unrecognized token|unterminated", re.I)),
    ("type_mismatch", re.compile(r"datatype mismatch|type mismatch|cannot compare", re.I)),
    (
        "misuse",
        re.compile(
            r"misuse of|wrong number of arguments|do not have the same number of result columns"
            r"|sub-select returns|row value misused|not allowed in the group by|term out of range"
            r"|aggregate functions are not allowed|is not a function|must be a|only a single result",
            re.I,
        ),
    ),
    ("timeout", re.compile(r"interrupted|timed? ?out|deadline", re.I)),
    ("too_large", re.compile(r"out of memory|too big|too large|too many rows|exceed", re.I)),
    (
        "forbidden",
        re.compile(
            r"readonly|read-only|read only|not authorized|prohibited|forbidden|refus|not allowed"
            r"|cannot (write|modify|attach)|write|multiple statements",
            re.I,
        ),
    ),
)

# Executor classes that say everything on their own.
_CLASS_KINDS = {"no_sql": "no_sql", "timeout": "timeout", "too_large": "too_large"}


def classify_message(message: str) -> str:
    """The error kind of an SQLite (or sandbox) error message; ``"other"`` when no rule matches."""
    for kind, pattern in _MESSAGE_RULES:
        if pattern.search(message or ""):
            return kind
    return "other"


def classify(result: ExecResult) -> str | None:
    """The error kind of ``result``: ``None`` when it succeeded, else one of ``ERROR_KINDS``.

    The executor's own class decides for no_sql, timeout, too_large and parse_error (always
    ``syntax``: the sandbox reports missing tables/columns as exec_error); an exec_error is
    classified by SQLite's (or the sandbox's) message.
    """
    if result.error is None:
        return None
    if result.error in _CLASS_KINDS:
        return _CLASS_KINDS[result.error]
    if result.error == "parse_error":
        return "syntax"
    return classify_message(result.message)


def error_credit(kind: str | None) -> float:
    """Fraction of the weight earned by an error of ``kind`` (0.0 for unknown kinds and ``None``)."""
    return ERROR_CREDIT.get(kind or "", 0.0)
