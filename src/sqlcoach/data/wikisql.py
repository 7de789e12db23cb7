"""WikiSQL (Zhong et al., 2017): JSONL questions over single web tables.

Layout read::

    <root>/<split>.jsonl          {"phase", "table_id", "question", "sql": {"sel", "agg", "conds"}}
    <root>/<split>.tables.jsonl   {"id", "header", "types", "rows", ...}

WikiSQL ships its SQL as a dict; :func:`wikisql_to_sql` turns it into SQL text over the
materialised table. Each table referenced by a loaded question is written once as its own SQLite
database ``<cache>/wikisql/<db_id>/<db_id>.sqlite`` holding one table named ``<db_id>`` (the
table id with non-word characters replaced: ``1-10015132-11`` -> ``table_1_10015132_11``), whose
columns are the header strings (deduplicated; an empty header becomes ``col<i>``) typed ``REAL``
or ``TEXT`` as WikiSQL says. Writing is atomic and idempotent: an existing file is reused (delete
the cache folder to rebuild).

Departure from WikiSQL's own executor: its executor compares text case-insensitively
(``lower(col) = lower(value)``); the SQL produced here uses plain ``=``, which is what a model
should learn to write for SQLite.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

from sqlcoach.data.jsonl import LoadReport, iter_records, require_str
from sqlcoach.errors import DataError
from sqlcoach.runtime.files import replacing
from sqlcoach.types import Example

AGG_OPS: tuple[str, ...] = ("", "MAX", "MIN", "COUNT", "SUM", "AVG")
COND_OPS: tuple[str, ...] = ("=", ">", "<")


def table_db_id(table_id: str) -> str:
    """The db_id (and SQLite table name) used for a WikiSQL table id."""
    return "table_" + re.sub(r"\W", "_", table_id)


def quote_ident(name: str) -> str:
    """A SQLite identifier in double quotes (inner quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def column_names(header: list[str]) -> list[str]:
    """Header strings made usable as distinct SQLite column names (case-insensitive dedupe)."""
    out: list[str] = []
    seen: set[str] = set()
    for i, h in enumerate(header):
        name = str(h).strip() or f"col{i}"
        cand, k = name, 2
        while cand.lower() in seen:
            cand, k = f"{name}_{k}", k + 1
        seen.add(cand.lower())
        out.append(cand)
    return out


def _literal(value: Any, numeric: bool) -> str:
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if numeric:
        try:
            float(text)
            return text.strip()
        except ValueError:
            pass
    return "'" + text.replace("'", "''") + "'"


def wikisql_to_sql(sql: dict, table: dict) -> str:
    """SQL text for a WikiSQL ``{"sel", "agg", "conds"}`` over ``table`` (materialised as above).

    Raises DataError (a ValueError) when an index is out of range or the dict is malformed.
    """
    if not isinstance(sql, dict):
        raise DataError("'sql' must be an object with sel/agg/conds")
    cols = column_names(table["header"])
    types = list(table.get("types") or ["text"] * len(cols))
    try:
        sel, agg = int(sql["sel"]), int(sql.get("agg", 0))
        conds = sql.get("conds") or []
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"malformed 'sql': {exc}") from None
    if not 0 <= sel < len(cols):
        raise DataError(f"sel {sel} out of range for {len(cols)} columns")
    if not 0 <= agg < len(AGG_OPS):
        raise DataError(f"agg {agg} out of range")
    target = quote_ident(cols[sel])
    if AGG_OPS[agg]:
        target = f"{AGG_OPS[agg]}({target})"
    text = f"SELECT {target} FROM {quote_ident(table_db_id(table['id']))}"
    where = []
    for cond in conds:
        if not isinstance(cond, (list, tuple)) or len(cond) != 3:
            raise DataError(f"malformed condition {cond!r}")
        c, op, value = cond
        if not (isinstance(c, int) and 0 <= c < len(cols)):
            raise DataError(f"condition column {c!r} out of range")
        if not (isinstance(op, int) and 0 <= op < len(COND_OPS)):
            raise DataError(f"condition operator {op!r} out of range")
        numeric = c < len(types) and str(types[c]).lower() == "real"
        where.append(f"{quote_ident(cols[c])} {COND_OPS[op]} {_literal(value, numeric)}")
    if where:
        text += " WHERE " + " AND ".join(where)
    return text


def materialise_table(table: dict, cache_dir: str | Path) -> str:
    """Write ``table`` as ``<cache_dir>/wikisql/<db_id>/<db_id>.sqlite`` if absent; return its path.

    Atomic (written to a temporary file, then renamed) so that a crash never leaves half a
    database that a later run would reuse.
    """
    db_id = table_db_id(table["id"])
    target = Path(cache_dir) / "wikisql" / db_id / f"{db_id}.sqlite"
    if target.is_file():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    cols = column_names(table["header"])
    types = list(table.get("types") or [])
    types += ["text"] * (len(cols) - len(types))
    decl = ", ".join(
        f"{quote_ident(c)} {'REAL' if str(t).lower() == 'real' else 'TEXT'}" for c, t in zip(cols, types)
    )
    with replacing(target, suffix=".sqlite.tmp") as tmp:
        con = sqlite3.connect(tmp)
        try:
            con.execute(f"CREATE TABLE {quote_ident(db_id)} ({decl})")
            marks = ", ".join("?" for _ in cols)
            rows = []
            for row in table.get("rows") or []:
                row = list(row) if isinstance(row, (list, tuple)) else [row]
                row = row[: len(cols)] + [None] * max(0, len(cols) - len(row))
                rows.append([_cell(v) for v in row])
            con.executemany(f"INSERT INTO {quote_ident(db_id)} VALUES ({marks})", rows)
            con.commit()
        finally:
            con.close()
    return str(target)


def _cell(v: Any) -> Any:
    if v is None or isinstance(v, (int, float, str)):
        return v
    return str(v)


def _read_tables(path: Path, report: LoadReport) -> dict[str, dict]:
    tables: dict[str, dict] = {}
    for lineno, rec in iter_records(path, report):
        try:
            tid = require_str(rec, "id")
            header = rec.get("header")
            if not isinstance(header, list) or not header:
                raise DataError("field 'header' must be a non-empty list")
            if not isinstance(rec.get("rows", []), list):
                raise DataError("field 'rows' must be a list")
        except ValueError as exc:
            report.add(path, lineno, str(exc))
            continue
        tables[tid] = rec
    return tables


def load_wikisql(
    root: str | Path,
    split: str | None = "dev",
    *,
    cache_dir: str | Path | None = None,
    report: LoadReport | None = None,
) -> list[Example]:
    """Load WikiSQL ``<split>.jsonl`` as Examples (``source="wikisql"``), materialising tables.

    ``cache_dir`` defaults to ``<root>/.sqlcoach_db``. Records with bad JSON, missing fields,
    an unknown table_id or an SQL dict that does not fit the table are reported and skipped.
    """
    report = report if report is not None else LoadReport()
    split = split or "dev"
    rootp = Path(root)
    qfile = rootp if rootp.is_file() else rootp / f"{split}.jsonl"
    base = qfile.parent
    tfile = base / f"{qfile.name[: -len('.jsonl')] if qfile.name.endswith('.jsonl') else split}.tables.jsonl"
    if not qfile.is_file():
        raise DataError("WikiSQL questions file not found", str(qfile))
    tables = _read_tables(tfile, report)
    cache = Path(cache_dir) if cache_dir is not None else base / ".sqlcoach_db"
    out: list[Example] = []
    index = -1
    for lineno, rec in iter_records(qfile, report):
        index += 1
        try:
            question = require_str(rec, "question")
            tid = require_str(rec, "table_id")
            if tid not in tables:
                raise DataError(f"unknown table_id {tid!r} (not in {tfile.name})")
            gold = wikisql_to_sql(rec.get("sql"), tables[tid])
        except ValueError as exc:
            report.add(qfile, lineno, str(exc))
            continue
        try:
            db_path = materialise_table(tables[tid], cache)
        except (sqlite3.Error, OSError) as exc:
            report.add(qfile, lineno, f"cannot materialise table {tid!r}: {exc}")
            continue
        out.append(
            Example(
                id=f"wikisql-{split}-{index}",
                db_id=table_db_id(tid),
                question=question,
                gold_sql=gold,
                db_path=db_path,
                source="wikisql",
                meta={"file": str(qfile), "line": lineno, "index": index, "table_id": tid},
            )
        )
    return out
