"""Spider's ``tables.json``: per-database table and column names, primary and foreign keys.

``load_tables(path)`` reads it once per (path, modification time) and returns
``{db_id: SpiderDbSchema}``. Names are lower-cased (the official scorer lower-cases everything it
compares). A malformed entry is reported (file and entry index, through ``logging`` and in
``load_report``) and skipped; the other databases are still loaded.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from sqlcoach.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class SpiderDbSchema:
    """One database of tables.json, lower-cased.

    ``column_ids[i]`` is the official id of column i (``"__table.column__"``; ``"__all__"`` for
    ``*``). ``foreign_key_map`` maps a column id to the id that stands for its foreign-key group,
    exactly as the official ``build_foreign_key_map`` builds it (its grouping is not a full
    union-find: a key pair joins the first group that holds either key). Instances hash by identity
    so that parses can be cached per database.
    """

    db_id: str
    table_names: tuple[str, ...]
    columns: dict[str, tuple[str, ...]]
    column_ids: tuple[str, ...]
    primary_keys: tuple[int, ...] = ()
    foreign_keys: tuple[tuple[int, int], ...] = ()
    foreign_key_map: dict[str, str] = field(default_factory=dict)

    def table_columns(self, table: str) -> tuple[str, ...]:
        """Lower-cased column names of ``table`` (empty when the table is unknown)."""
        return self.columns.get(table.lower(), ())


def schema_from_entry(entry: dict) -> SpiderDbSchema:
    """Build one SpiderDbSchema from a tables.json entry. Raises KeyError/TypeError/ValueError
    when a required field is missing or malformed."""
    db_id = str(entry["db_id"])
    tables = tuple(str(t).lower() for t in entry["table_names_original"])
    columns: dict[str, list[str]] = {t: [] for t in tables}
    column_ids: list[str] = []
    for table_index, name in entry["column_names_original"]:
        table_index = int(table_index)
        if table_index < 0:
            column_ids.append("__all__")
            continue
        table = tables[table_index]
        columns[table].append(str(name).lower())
        column_ids.append(f"__{table}.{str(name).lower()}__")
    fks = tuple((int(a), int(b)) for a, b in entry.get("foreign_keys", []))
    pks: list[int] = []
    for pk in entry.get("primary_keys", []):
        # Newer tables.json files write composite primary keys as lists.
        pks.extend(int(p) for p in pk) if isinstance(pk, list) else pks.append(int(pk))
    for a, b in fks:
        if not (0 <= a < len(column_ids) and 0 <= b < len(column_ids)):
            raise DataError(f"foreign key ({a}, {b}) points past the {len(column_ids)} columns")
    return SpiderDbSchema(
        db_id=db_id,
        table_names=tables,
        columns={t: tuple(c) for t, c in columns.items()},
        column_ids=tuple(column_ids),
        primary_keys=tuple(pks),
        foreign_keys=fks,
        foreign_key_map=foreign_key_map(column_ids, fks),
    )


def foreign_key_map(column_ids: list[str] | tuple[str, ...], fks) -> dict[str, str]:
    """Column id -> representative id of its foreign-key group (the lowest column index).

    Reproduces the official grouping rule: each (a, b) pair is added to the FIRST existing group
    holding a or b (groups are never merged with each other), else to a new group.
    """
    groups: list[set[int]] = []
    for a, b in fks:
        group = next((g for g in groups if a in g or b in g), None)
        if group is None:
            group = set()
            groups.append(group)
        group.update((a, b))
    mapping: dict[str, str] = {}
    for group in groups:
        ordered = sorted(group)
        for idx in ordered:
            mapping[column_ids[idx]] = column_ids[ordered[0]]
    return mapping


#: Problems found by the latest ``load_tables`` call of each path: "path: entry N: reason".
load_report: dict[str, list[str]] = {}


def load_tables(path: str | os.PathLike) -> dict[str, SpiderDbSchema]:
    """``{db_id: SpiderDbSchema}`` from a tables.json file; cached per path and modification time.

    Raises DataError when the file is missing or is not a JSON list. Bad entries are skipped and
    reported (``load_report[path]`` and a logging warning) with their index in the list.
    """
    p = Path(path).resolve()
    try:
        mtime = p.stat().st_mtime_ns
    except OSError as err:
        raise DataError(f"cannot read tables file: {err.strerror}", str(path)) from err
    return _load(str(p), mtime)


@lru_cache(maxsize=16)
def _load(path: str, mtime: int) -> dict[str, SpiderDbSchema]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read tables file: {err}", path) from err
    except json.JSONDecodeError as err:
        raise DataError(f"not valid JSON: {err.msg}", path, err.lineno) from err
    if not isinstance(data, list):
        raise DataError("expected a JSON list of databases", path)
    out: dict[str, SpiderDbSchema] = {}
    problems: list[str] = []
    for index, entry in enumerate(data):
        try:
            if not isinstance(entry, dict):
                raise TypeError("entry is not an object")
            schema = schema_from_entry(entry)
        except (KeyError, TypeError, ValueError, IndexError) as err:
            problems.append(f"{path}: entry {index}: {type(err).__name__}: {err}")
            continue
        out[schema.db_id] = schema
    for problem in problems:
        log.warning("skipped a tables.json entry: %s", problem)
    load_report[path] = problems
    return out
