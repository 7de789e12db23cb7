"""Plain JSONL examples, and the record-reading helpers every loader shares.

The JSONL schema (one JSON object per line; documented in docs/data.md):

``question`` (str, required), ``db_id`` (str, required), ``sql`` or ``gold_sql`` (str, optional),
``id`` (str, optional; default ``"<file stem>-<line>"``), ``db_path`` (str, optional; relative
paths are resolved against the JSONL file's folder), ``evidence``, ``difficulty``, ``hardness``
(str, optional), ``turns`` (optional list of ``{"question": str, "sql": str | null}``: the earlier
turns of a conversation), ``meta`` (optional object, copied as is).

When ``db_path`` is absent and ``db_dir`` is given, ``<db_dir>/<db_id>/<db_id>.sqlite`` is used if
it exists.

Problems with single records (bad JSON, a missing field, a wrong type) are *data*: they are
collected in a :class:`LoadReport` with file and line, logged, and the rest of the file loads. A
missing or unreadable file is an error (:class:`~sqlcoach.errors.DataError`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from sqlcoach.errors import DataError
from sqlcoach.types import Example, Turn

log = logging.getLogger("sqlcoach.data")


@dataclass(frozen=True)
class Problem:
    """One record that could not be loaded: where it is and why."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


@dataclass
class LoadReport:
    """Collects the :class:`Problem` records of one load; each is logged as a warning when added."""

    problems: list[Problem] = field(default_factory=list)

    def add(self, path: str | Path, line: int | None, message: str) -> None:
        problem = Problem(str(path), line, message)
        self.problems.append(problem)
        log.warning("%s", problem)


def read_text(path: str | Path) -> str:
    """Return the file's text (UTF-8); raise DataError when it is missing or unreadable."""
    p = Path(path)
    if not p.is_file():
        raise DataError("file not found", str(p))
    try:
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read: {exc}", str(p)) from exc


def iter_records(path: str | Path, report: LoadReport) -> Iterator[tuple[int, Any]]:
    """Yield ``(line, value)`` for each record of a JSON array file or a JSONL file.

    A file whose first non-blank character is ``[`` is read as one JSON array, and each element
    comes with the line it starts on; a syntax error inside the array makes the whole file
    unreadable (DataError with the line). Any other file is JSONL: blank lines are skipped, a line
    that is not valid JSON is reported to ``report`` and skipped.
    """
    text = read_text(path)
    stripped = text.lstrip()
    if stripped.startswith("["):
        yield from _iter_array(text, str(path))
        return
    for lineno, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            yield lineno, json.loads(raw)
        except json.JSONDecodeError as exc:
            report.add(path, lineno, f"invalid JSON: {exc.msg} (column {exc.colno})")


def _iter_array(text: str, path: str) -> Iterator[tuple[int, Any]]:
    # raw_decode element by element, so that each record keeps the line it starts on (json.loads
    # of the whole file would lose it, and Spider's files are one big array).
    decoder = json.JSONDecoder()
    n = len(text)
    i = text.index("[") + 1
    line = 1 + text.count("\n", 0, i)
    pos_line = i  # text[:pos_line] already counted in `line`

    def skip_ws(j: int) -> int:
        while j < n and text[j] in " \t\r\n":
            j += 1
        return j

    def line_at(j: int) -> int:
        nonlocal line, pos_line
        line += text.count("\n", pos_line, j)
        pos_line = j
        return line

    i = skip_ws(i)
    if i < n and text[i] == "]":
        return
    while True:
        i = skip_ws(i)
        start_line = line_at(i)
        try:
            value, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            raise DataError(f"invalid JSON: {exc.msg}", path, exc.lineno) from exc
        yield start_line, value
        i = skip_ws(end)
        if i < n and text[i] == ",":
            i += 1
            continue
        if i < n and text[i] == "]":
            if text[i + 1 :].strip():
                raise DataError("unexpected text after the JSON array", path, line_at(i))
            return
        raise DataError("expected ',' or ']' in JSON array", path, line_at(min(i, n)))


def require_str(record: Any, key: str, *alternatives: str) -> str:
    """The string field ``key`` (or the first present alternative); DataError (a ValueError) says what is wrong."""
    if not isinstance(record, dict):
        raise DataError(f"record is a {type(record).__name__}, not an object")
    for k in (key, *alternatives):
        if k in record and record[k] is not None:
            value = record[k]
            if not isinstance(value, str):
                raise DataError(f"field {k!r} is a {type(value).__name__}, not a string")
            return value
    names = " or ".join(repr(k) for k in (key, *alternatives))
    raise DataError(f"missing field {names}")


def optional_str(record: dict, *keys: str) -> str | None:
    """The first present, non-null field of ``keys`` as a string (numbers are converted)."""
    for k in keys:
        value = record.get(k)
        if value is None:
            continue
        if isinstance(value, (str, int, float)):
            return str(value)
        raise DataError(f"field {k!r} is a {type(value).__name__}, not a string")
    return None


def sqlite_in(db_dir: Path | None, db_id: str) -> str | None:
    """``<db_dir>/<db_id>/<db_id>.sqlite`` when that file exists, else None."""
    if db_dir is None:
        return None
    p = db_dir / db_id / f"{db_id}.sqlite"
    return str(p) if p.is_file() else None


def _turns(value: Any) -> tuple[Turn, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise DataError("field 'turns' must be a list")
    out = []
    for t in value:
        if not isinstance(t, dict) or not isinstance(t.get("question"), str):
            raise DataError("each turn must be an object with a string 'question'")
        sql = t.get("sql")
        if sql is not None and not isinstance(sql, str):
            raise DataError("a turn's 'sql' must be a string or null")
        out.append(Turn(t["question"], sql))
    return tuple(out)


def load_jsonl(
    path: str | Path,
    split: str | None = None,
    *,
    db_dir: str | Path | None = None,
    report: LoadReport | None = None,
) -> list[Example]:
    """Load examples from a JSONL file in sqlcoach's documented schema (see module docstring).

    ``split`` is accepted for a uniform loader signature and ignored. Records that break the
    schema are reported (file, line) and skipped; everything else loads in file order.
    """
    report = report if report is not None else LoadReport()
    p = Path(path)
    base = p.parent
    ddir = Path(db_dir) if db_dir is not None else None
    out: list[Example] = []
    for lineno, rec in iter_records(p, report):
        try:
            question = require_str(rec, "question")
            db_id = require_str(rec, "db_id")
            gold = optional_str(rec, "sql", "gold_sql", "query")
            db_path = optional_str(rec, "db_path")
            if db_path is not None and not Path(db_path).is_absolute():
                db_path = str(base / db_path)
            if db_path is None:
                db_path = sqlite_in(ddir, db_id)
            meta = rec.get("meta") or {}
            if not isinstance(meta, dict):
                raise DataError("field 'meta' must be an object")
            ex = Example(
                id=optional_str(rec, "id") or f"{p.stem}-{lineno}",
                db_id=db_id,
                question=question,
                gold_sql=gold,
                db_path=db_path,
                evidence=optional_str(rec, "evidence"),
                difficulty=optional_str(rec, "difficulty"),
                hardness=optional_str(rec, "hardness"),
                turns=_turns(rec.get("turns")),
                source="jsonl",
                meta={**meta, "file": str(p), "line": lineno},
            )
        except ValueError as exc:
            report.add(p, lineno, str(exc))
            continue
        out.append(ex)
    return out


def spider_hardness(sql: str | None) -> str | None:
    """Spider hardness of ``sql`` via ``sqlcoach.sql.hardness`` when that module is installed.

    Returns None when the module is absent or cannot classify the query (it is optional here:
    loading never fails because hardness is unknown).
    """
    if not sql:
        return None
    try:
        from sqlcoach.sql.hardness import hardness
    except ImportError:
        return None
    try:
        return hardness(sql)
    except Exception:  # noqa: BLE001 - a classifier bug must not stop a data load
        return None
