"""sql-create-context style data: question, ``CREATE TABLE`` context, answer SQL.

Records (JSON array or JSONL) look like b-mc2/sql-create-context::

    {"question": "How many heads ...?", "context": "CREATE TABLE head (age INTEGER)",
     "answer": "SELECT COUNT(*) FROM head WHERE age > 56"}

Each distinct context is materialised as an *empty* SQLite database (tables, no rows) so that the
answer can be parsed and run against the schema: ``<cache>/create_context/<db_id>/<db_id>.sqlite``
with ``db_id = "ctx_" + sha1(context)[:12]``. Only ``CREATE TABLE`` statements are executed (the
context is data, not a script to trust); a context holding anything else, or one SQLite rejects,
is reported and its record skipped. Writing is atomic and idempotent.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import tempfile
from pathlib import Path

from sqlcoach.data.jsonl import LoadReport, default_permissions, iter_records, optional_str, require_str
from sqlcoach.errors import DataError
from sqlcoach.types import Example

_CREATE_TABLE = re.compile(r"^\s*CREATE\s+TABLE\b", re.IGNORECASE)


def context_db_id(context: str) -> str:
    """The db_id of a context: ``ctx_`` + the first 12 hex digits of sha1(stripped context)."""
    return "ctx_" + hashlib.sha1(context.strip().encode("utf-8")).hexdigest()[:12]


def split_statements(script: str) -> list[str]:
    """Split ``script`` at the semicolons that end complete SQLite statements (quotes respected)."""
    out: list[str] = []
    acc = ""
    for piece in script.split(";"):
        acc = f"{acc};{piece}" if acc else piece
        if sqlite3.complete_statement(acc + ";"):
            if acc.strip():
                out.append(acc.strip())
            acc = ""
    if acc.strip():
        out.append(acc.strip())
    return out


def materialise_context(context: str, cache_dir: str | Path) -> str:
    """Create the empty database of ``context`` if absent and return its path.

    Raises DataError (a ValueError) when the context holds a statement other than CREATE TABLE or SQLite
    rejects it (nothing is left behind in that case).
    """
    statements = split_statements(context)
    if not statements:
        raise DataError("empty context")
    for st in statements:
        if not _CREATE_TABLE.match(st):
            raise DataError(f"context statement is not CREATE TABLE: {st[:60]!r}")
    db_id = context_db_id(context)
    target = Path(cache_dir) / "create_context" / db_id / f"{db_id}.sqlite"
    if target.is_file():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".sqlite.tmp", dir=target.parent)
    os.close(fd)
    try:
        con = sqlite3.connect(tmp)
        try:
            for st in statements:
                con.execute(st)
            con.commit()
        except sqlite3.Error as exc:
            raise DataError(f"context rejected by SQLite: {exc}") from None
        finally:
            con.close()
        default_permissions(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        try:
            target.parent.rmdir()  # only succeeds when empty, i.e. when materialising failed
        except OSError:
            pass
    return str(target)


def load_create_context(
    path: str | Path,
    split: str | None = None,
    *,
    cache_dir: str | Path | None = None,
    report: LoadReport | None = None,
) -> list[Example]:
    """Load sql-create-context records as Examples (``source="create_context"``).

    ``split`` is ignored (the dataset has one file). ``cache_dir`` defaults to
    ``<folder of path>/.sqlcoach_db``. ``meta["context"]`` keeps the CREATE TABLE text.
    """
    report = report if report is not None else LoadReport()
    p = Path(path)
    cache = Path(cache_dir) if cache_dir is not None else p.parent / ".sqlcoach_db"
    out: list[Example] = []
    index = -1
    for lineno, rec in iter_records(p, report):
        index += 1
        try:
            question = require_str(rec, "question")
            context = require_str(rec, "context")
            answer = optional_str(rec, "answer", "sql")
            db_path = materialise_context(context, cache)
        except (ValueError, OSError) as exc:
            report.add(p, lineno, str(exc))
            continue
        out.append(
            Example(
                id=f"create_context-{index}",
                db_id=context_db_id(context),
                question=question,
                gold_sql=answer,
                db_path=db_path,
                source="create_context",
                meta={"file": str(p), "line": lineno, "index": index, "context": context},
            )
        )
    return out
