"""Read a database's schema: from the SQLite file itself, or from Spider's tables.json.

:func:`introspect` opens the file read-only (``mode=ro`` URI), so a schema read can never change
a benchmark database. Results are cached per (resolved path, mtime, size, options).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlcoach.errors import DataError
from sqlcoach.types import Column, ForeignKey, Schema, Table

_CACHE: dict[tuple, Schema] = {}
_CACHE_MAX = 512


def resolve_db_file(db_path: str | Path) -> Path:
    """The SQLite file for ``db_path``: the path itself, or for a folder ``<dir>/<name>.sqlite``
    (else its first ``*.sqlite`` file). DataError when there is none."""
    p = Path(db_path)
    if p.is_dir():
        own = p / f"{p.name}.sqlite"
        if own.is_file():
            return own
        found = sorted(p.glob("*.sqlite"))
        if found:
            return found[0]
        raise DataError("no .sqlite file in folder", str(p))
    if not p.is_file():
        raise DataError("database not found", str(p))
    return p


def connect_ro(db_file: str | Path) -> sqlite3.Connection:
    """A read-only connection (URI ``mode=ro``); writes raise ``sqlite3.OperationalError``."""
    uri = "file:" + quote(str(Path(db_file).resolve())) + "?mode=ro"
    con = sqlite3.connect(uri, uri=True, check_same_thread=False)
    # Text that is not valid UTF-8 (it exists in BIRD) must not abort a schema read.
    con.text_factory = lambda b: b.decode("utf-8", errors="replace")
    return con


def qi(name: str) -> str:
    """SQLite identifier quoting."""
    return '"' + name.replace('"', '""') + '"'


def _render(value: Any, max_chars: int) -> str | None:
    if isinstance(value, bytes):
        return None  # blobs say nothing useful to a model
    text = str(value)
    if len(text) > max_chars:
        text = text[: max(0, max_chars - 3)] + "..."
    return text


def introspect(db_path: str | Path, *, sample_values: int = 3, max_value_chars: int = 40) -> Schema:
    """The Schema of a SQLite database: tables (in creation order), columns with declared types,
    NOT NULL, primary key (composite keys in key order), foreign keys, row counts and up to
    ``sample_values`` distinct non-null sample values per column (rendered as text, cut to
    ``max_value_chars``; blobs skipped).

    A foreign key without an explicit target column refers to the referenced table's primary key
    (SQLite's rule) and is resolved to it; the referenced table's name is given the case it has
    in the database. ``db_id`` is the file's stem. Raises DataError when the file is missing or
    not a readable SQLite database. Cached by (path, mtime, size, options). BIRD's column and value
    descriptions (``database_description/*.csv`` beside the file) fill ``Column.description`` and
    ``Column.value_description`` when present (``sqlcoach.schema.descriptions``).
    """
    from sqlcoach.schema.descriptions import read_descriptions, stamp

    f = resolve_db_file(db_path).resolve()
    st = f.stat()
    key = (str(f), st.st_mtime_ns, st.st_size, sample_values, max_value_chars, stamp(f.parent))
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    try:
        con = connect_ro(f)
        try:
            schema = _read(con, f.stem, sample_values, max_value_chars)
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise DataError(f"cannot read schema: {exc}", str(f)) from exc
    described = read_descriptions(f.parent)
    if described:
        schema = _with_descriptions(schema, described)
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = schema
    return schema


def _with_descriptions(schema: Schema, described: dict[str, dict[str, tuple[str, str]]]) -> Schema:
    from dataclasses import replace

    tables = []
    for t in schema.tables:
        cols = described.get(t.name.lower(), {})
        tables.append(replace(t, columns=tuple(
            replace(c, description=cols[c.name.lower()][0], value_description=cols[c.name.lower()][1])
            if c.name.lower() in cols else c for c in t.columns)))
    return replace(schema, tables=tuple(tables))


def _read(con: sqlite3.Connection, db_id: str, n_samples: int, max_chars: int) -> Schema:
    names = [
        r[0]
        for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
        )
    ]
    by_lower = {n.lower(): n for n in names}
    infos: dict[str, list[tuple]] = {t: con.execute(f"PRAGMA table_info({qi(t)})").fetchall() for t in names}

    def pk_of(t: str) -> tuple[str, ...]:
        # table_info's pk field is the 1-based position in the key (0 = not in the key).
        cols = sorted((r for r in infos.get(t, []) if r[5]), key=lambda r: r[5])
        return tuple(r[1] for r in cols)

    tables: list[Table] = []
    fks: list[ForeignKey] = []
    for t in names:
        pk = pk_of(t)
        cols = []
        for cid, cname, ctype, notnull, _dflt, pkpos in infos[t]:
            samples: tuple[str, ...] = ()
            if n_samples > 0:
                rows = con.execute(
                    f"SELECT DISTINCT {qi(cname)} FROM {qi(t)} WHERE {qi(cname)} IS NOT NULL LIMIT ?",
                    (n_samples * 2,),
                ).fetchall()
                rendered = [r for r in (_render(v[0], max_chars) for v in rows) if r is not None]
                samples = tuple(dict.fromkeys(rendered))[:n_samples]
            cols.append(Column(cname, ctype or "", bool(pkpos), bool(notnull), samples))
        count = con.execute(f"SELECT COUNT(*) FROM {qi(t)}").fetchone()[0]
        tables.append(Table(t, tuple(cols), pk, int(count)))
        fk_rows = con.execute(f"PRAGMA foreign_key_list({qi(t)})").fetchall()
        # rows: (id, seq, table, from, to, on_update, on_delete, match); one id per constraint
        for _id, seq, ref, frm, to, *_ in fk_rows:
            ref_name = by_lower.get(str(ref).lower(), ref)
            if to is None:
                ref_pk = pk_of(ref_name)
                to = ref_pk[seq] if seq < len(ref_pk) else (ref_pk[0] if ref_pk else "rowid")
            fks.append(ForeignKey(t, frm, ref_name, to))
    return Schema(db_id, tuple(tables), tuple(fks))


def schema_from_tables_json(entry: dict[str, Any]) -> Schema:
    """A Schema from one Spider tables.json entry (original names; no samples, no row counts).

    Handles both primary-key encodings (an int per key column, or a list of ints for a composite
    key) and foreign keys given as column-index pairs. Raises DataError on a malformed entry.
    """
    try:
        db_id = entry["db_id"]
        tnames = entry.get("table_names_original") or entry["table_names"]
        cnames = entry.get("column_names_original") or entry["column_names"]
        ctypes = entry.get("column_types") or ["text"] * len(cnames)
        pks = entry.get("primary_keys") or []
        fk_pairs = entry.get("foreign_keys") or []
        pk_cols: set[int] = set()
        for k in pks:
            pk_cols.update(k if isinstance(k, list) else [k])
        per_table: list[list[Column]] = [[] for _ in tnames]
        pk_names: list[list[str]] = [[] for _ in tnames]
        for k in pks:
            for ci in k if isinstance(k, list) else [k]:
                ti, cname = cnames[ci]
                pk_names[ti].append(cname)
        for ci, (ti, cname) in enumerate(cnames):
            if ti < 0:
                continue  # the "*" pseudo-column
            per_table[ti].append(Column(cname, ctypes[ci] if ci < len(ctypes) else "", ci in pk_cols))
        fks = []
        for a, b in fk_pairs:
            ta, ca = cnames[a]
            tb, cb = cnames[b]
            fks.append(ForeignKey(tnames[ta], ca, tnames[tb], cb))
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise DataError(f"malformed tables.json entry: {exc!r}") from exc
    tables = tuple(Table(n, tuple(per_table[i]), tuple(pk_names[i])) for i, n in enumerate(tnames))
    return Schema(db_id, tables, tuple(fks))
