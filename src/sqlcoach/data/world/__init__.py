"""The offline demo world: small SQLite databases and template questions, generated from a seed.

No weights or datasets can be downloaded on these machines (nor, often, on a user's fresh one), so
sqlcoach ships a generated text-to-SQL benchmark that a tiny model can learn on CPU in minutes::

    sqlcoach world build OUT --seed 0          # or build_world("OUT", seed=0)

writes Spider's layout: ``OUT/train.json``, ``OUT/dev.json``, ``OUT/tables.json``,
``OUT/database/<db_id>/<db_id>.sqlite``, ``OUT/train_gold.sql``, ``OUT/dev_gold.sql``
(``SQL<TAB>db_id`` lines) and ``OUT/world.json`` (version, seed, statistics).

What the world guarantees
-------------------------
* **Deterministic.** The same seed (and the same ``n_train``/``n_dev``) gives byte-identical JSON
  files and identical table contents; every random choice comes from ``random.Random`` seeded with
  a string derived from the seed and the database name, and nothing iterates a ``set``.
* **Dev databases are never seen in training.** The split is by subject (``DEV_DB_IDS``), fixed
  so that runs with different seeds stay comparable.
* **Every gold runs and answers.** Each query is executed on its database while the world is
  built; a query that fails, returns no row or only NULLs is dropped and another is drawn. A gold
  with ``ORDER BY`` orders by a column whose values are unique in its table, or its ordering keys
  are checked to hold no ties within the rows that matter (so ``LIMIT 1`` has one right answer).
  Averages are taken over INTEGER columns only, so their value does not depend on row order.
* **Learnable by copying.** Table and column names are short English words that the question
  repeats verbatim (tables as regular plurals: ``singer`` -> "singers"), values in a question are
  copied literally into the SQL, and each SQL pattern has several paraphrases, so that a model a
  few million parameters large can learn the mapping and apply it to unseen schemas.
* **Spider's four hardness levels.** Templates cover filters (=, >, <, >=, <=, LIKE, BETWEEN, OR),
  joins over foreign keys, aggregates, GROUP BY / HAVING, ORDER BY / LIMIT, nested queries
  (IN / NOT IN, compare to an average) and INTERSECT / UNION / EXCEPT. Each record carries the
  ``hardness`` that ``sqlcoach.sql.hardness.hardness`` assigns (``None`` when that module is not
  installed), the same value as ``difficulty`` (for RL curricula), and ``answer_kind``
  (``number``: one numeric cell; ``ordered``: the gold has ORDER BY; ``list``: anything else).

The package: ``subjects`` (the schemas, value pools and row generation), ``templates`` (the
question patterns), and this module (checking golds, scoring hardness, writing the files).

Re-running into an existing folder: a folder that holds a world (``world.json``) or is empty is
replaced; the new world is built complete in a hidden folder beside it and only then renamed into
place (the old one is renamed away first and deleted after), so a failed or interrupted build never
leaves a half-written world under OUT. Any other non-empty folder is refused unless ``force=True``,
so that a typo cannot wipe a user's directory.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlcoach.data.world.subjects import (
    DEV_DB_IDS,
    SUBJECTS,
    TRAIN_DB_IDS,
    WorldDb,
    make_db,
    tables_entry,
    write_sqlite,
)
from sqlcoach.data.world.templates import LEVEL_SHARE, TEMPLATES, Draft
from sqlcoach.errors import DataError

__all__ = [
    "DEFAULT_N_DEV",
    "DEFAULT_N_TRAIN",
    "DEV_DB_IDS",
    "TRAIN_DB_IDS",
    "WORLD_VERSION",
    "build_world",
    "format_stats",
    "read_world",
]

#: Bumped whenever the generator changes its output for a given seed.
WORLD_VERSION = 1
DEFAULT_N_TRAIN = 4000
DEFAULT_N_DEV = 600

# ---------------------------------------------------------------------------------------------
# Checking golds, tokens, hardness.
# ---------------------------------------------------------------------------------------------


def _run(con: sqlite3.Connection, sql: str) -> list[tuple] | None:
    try:
        return con.execute(sql).fetchall()
    except sqlite3.Error:
        return None


def _accept(con: sqlite3.Connection, d: Draft) -> list[tuple] | None:
    """The gold's rows when it runs, answers with some non-NULL value, and has no ordering tie."""
    rows = _run(con, d.sql)
    if not rows or all(v is None for r in rows for v in r) or len(rows) > 300:
        return None
    if d.key_sql is not None:
        keys = _run(con, d.key_sql)
        if keys is None:
            return None
        keys = [r[0] for r in keys]
        head = keys if d.key_rows == 0 else keys[: d.key_rows]
        if len(set(head)) != len(head):
            return None
    return rows


_QUESTION_TOK = re.compile(r"\w+|[^\w\s]")
_SQL_TOK = re.compile(r"'(?:[^']|'')*'|\d+(?:\.\d+)?|[A-Za-z_][\w]*(?:\.[\w*]+)?|!=|>=|<=|<>|\S")


def _query_toks(sql: str) -> list[str]:
    return _SQL_TOK.findall(sql)


def _query_toks_no_value(sql: str) -> list[str]:
    out = []
    for tok in _query_toks(sql):
        if tok.startswith("'") or re.fullmatch(r"\d+(?:\.\d+)?", tok):
            out.append("value")
        else:
            out.append(tok.lower())
    return out


def _hardness_fn() -> Callable[[str], str] | None:
    """sqlcoach's Spider hardness function, when that module is installed in this checkout."""
    try:
        from sqlcoach.sql.hardness import hardness
    except ImportError:
        return None
    return hardness


def _safe_hardness(fn: Callable[[str], str] | None, sql: str) -> str | None:
    if fn is None:
        return None
    try:
        level = fn(sql)
    except Exception:  # noqa: BLE001 - another module's failure must not stop the build
        return None
    return level if isinstance(level, str) else None


_SHAPE_WORDS = frozenset(
    "select from where join as on and or not in like between group by having order limit desc asc "
    "distinct intersect union except count avg max min sum".split()
)


def _shape(sql: str) -> str:
    """The SQL with names and literals blanked: ``SELECT c FROM c WHERE c = 'v' LIMIT 1``.

    Spider's hardness counts clauses, joins, conditions, aggregates and nesting, none of which
    depends on which table, column or value is named; two golds with one shape share one level.
    """
    out = []
    for tok in _query_toks(sql):
        if tok.startswith("'"):
            out.append("'v'")
        elif tok[0].isdigit():
            out.append("1")
        elif tok[0].isalpha() or tok[0] == "_":
            out.append(tok.upper() if tok.lower() in _SHAPE_WORDS else "c")
        else:
            out.append(tok)
    return " ".join(out)


class _CachedHardness:
    """``hardness(sql)`` computed once per SQL shape: parsing every gold with sqlglot was most of
    the build time, and the world has a few hundred shapes for thousands of golds. A unit test
    checks that every record's level equals the uncached function's."""

    def __init__(self, fn: Callable[[str], str] | None):
        self.fn = fn
        self.cache: dict[str, str | None] = {}

    def __call__(self, sql: str) -> str | None:
        key = _shape(sql)
        if key not in self.cache:
            self.cache[key] = _safe_hardness(self.fn, sql)
        return self.cache[key]


def _answer_kind(sql: str, rows: list[tuple]) -> str:
    if " ORDER BY " in sql and not sql.endswith(" LIMIT 1"):
        return "ordered"
    if len(rows) == 1 and len(rows[0]) == 1 and isinstance(rows[0][0], (int, float)):
        return "number"
    return "list"


# ---------------------------------------------------------------------------------------------
# Building.
# ---------------------------------------------------------------------------------------------


def _questions_for(db: WorldDb, con: sqlite3.Connection, n: int, seed: int, max_same_sql: int,
                   hardness: Callable[[str], str | None]) -> list[dict[str, Any]]:
    """``n`` distinct questions over ``db`` (fewer only when the templates run out of slots)."""
    rng = random.Random(f"sqlcoach-world-q:{seed}:{db.db_id}")
    levels = list(LEVEL_SHARE)
    by_level = {lv: [(f, w) for f, level, w in TEMPLATES if level == lv] for lv in levels}
    seen_q: set[str] = set()
    sql_uses: dict[str, int] = {}
    out: list[dict[str, Any]] = []
    attempts = 0
    while len(out) < n and attempts < n * 40:
        attempts += 1
        level = rng.choices(levels, weights=[LEVEL_SHARE[lv] for lv in levels])[0]
        funcs, weights = zip(*by_level[level])
        make = rng.choices(funcs, weights=weights)[0]
        d = make(rng, db)
        if d is None or d.question in seen_q or sql_uses.get(d.sql, 0) >= max_same_sql:
            continue
        rows = _accept(con, d)
        if rows is None:
            continue
        seen_q.add(d.question)
        sql_uses[d.sql] = sql_uses.get(d.sql, 0) + 1
        level_found = hardness(d.sql)
        out.append({
            "db_id": db.db_id,
            "question": d.question,
            "question_toks": _QUESTION_TOK.findall(d.question),
            "query": d.sql,
            "query_toks": _query_toks(d.sql),
            "query_toks_no_value": _query_toks_no_value(d.sql),
            "hardness": level_found,
            "difficulty": level_found,
            "answer_kind": _answer_kind(d.sql, rows),
            "template": make.__name__.removeprefix("_t_"),
        })
    return out


def _split_counts(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _check_target(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise DataError("exists and is not a directory", str(out))
    if out.is_dir() and any(out.iterdir()) and not (out / "world.json").is_file() and not force:
        raise DataError("is a non-empty directory that holds no world (no world.json); "
                        "pass --force (force=True) to replace it", str(out))


def build_world(out_dir: str | os.PathLike, seed: int = 0, *, n_train: int | None = None,
                n_dev: int | None = None, progress: bool = True, force: bool = False) -> dict[str, Any]:
    """Generate the demo world into ``out_dir`` and return its statistics.

    Guarantees (see the module docstring): deterministic in (seed, n_train, n_dev); dev
    databases (``DEV_DB_IDS``) disjoint from train ones; every gold runs and returns a non-empty,
    tie-free result. ``n_train``/``n_dev`` default to 4000/600 questions, spread evenly over the
    split's databases. ``out_dir`` may be absent, empty or an earlier world: the new world is
    built complete beside it and then renamed into place. Another non-empty directory raises
    ``DataError`` unless ``force``.

    Returns ``{"version", "seed", "databases": {split: [db_id]}, "questions": {split: n},
    "requested": {split: n}, "hardness": {split: {level: n}}, "hardness_scored": bool,
    "templates": {name: n}, "tables": n, "rows": n, "seconds": s}``, also written to
    ``OUT/world.json`` without ``seconds`` so that the file is reproducible. Levels are counted
    as ``unscored`` when ``sqlcoach.sql.hardness`` is missing or cannot score a gold.
    """
    start = time.perf_counter()
    seed = int(seed)
    n_train = DEFAULT_N_TRAIN if n_train is None else int(n_train)
    n_dev = DEFAULT_N_DEV if n_dev is None else int(n_dev)
    if n_train < 0 or n_dev < 0:
        raise DataError(f"question counts must be >= 0 (n_train={n_train}, n_dev={n_dev})")
    out = Path(out_dir)
    _check_target(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.building-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    hardness_fn = _hardness_fn()
    hardness = _CachedHardness(hardness_fn)
    try:
        tables_json: list[dict[str, Any]] = []
        records: dict[str, list[dict[str, Any]]] = {"train": [], "dev": []}
        n_tables = n_rows = 0
        for split, ids, total, max_same in (("train", TRAIN_DB_IDS, n_train, 2), ("dev", DEV_DB_IDS, n_dev, 1)):
            for db_id, quota in zip(ids, _split_counts(total, len(ids))):
                db = make_db(db_id, SUBJECTS[db_id], seed)
                path = tmp / "database" / db_id / f"{db_id}.sqlite"
                write_sqlite(db, path)
                tables_json.append(tables_entry(db))
                n_tables += len(db.tables)
                n_rows += sum(len(t.rows) for t in db.tables)
                con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
                try:
                    qs = _questions_for(db, con, quota, seed, max_same, hardness)
                finally:
                    con.close()
                records[split].extend(qs)
                if len(qs) < quota:
                    # Only when the templates run out of distinct questions for this database.
                    print(f"world: warning: {db_id}: {len(qs)} of {quota} questions", file=sys.stderr)
                if progress:
                    print(f"world: {split:5s} {db_id:12s} {len(db.tables)} tables "
                          f"{sum(len(t.rows) for t in db.tables):4d} rows {len(qs):4d} questions", file=sys.stderr)
        stats = _stats(seed, records, n_tables, n_rows, hardness_fn is not None)
        stats["requested"] = {"train": n_train, "dev": n_dev}
        _dump(tmp / "tables.json", tables_json)
        for split in ("train", "dev"):
            _dump(tmp / f"{split}.json", records[split])
            (tmp / f"{split}_gold.sql").write_text(
                "".join(f"{r['query']}\t{r['db_id']}\n" for r in records[split]), encoding="utf-8")
        _dump(tmp / "world.json", stats)
        _check_target(out, force)  # again: the folder may have changed while we built
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
            try:
                tmp.rename(out)
            except OSError:
                old.rename(out)  # put the previous world back rather than leave nothing
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return {**stats, "seconds": round(time.perf_counter() - start, 2)}


def _stats(seed: int, records: dict[str, list[dict[str, Any]]], n_tables: int, n_rows: int,
           scored: bool) -> dict[str, Any]:
    hardness: dict[str, dict[str, int]] = {}
    templates: dict[str, int] = {}
    for split, recs in records.items():
        counts: dict[str, int] = {"easy": 0, "medium": 0, "hard": 0, "extra": 0}
        for r in recs:
            key = r["hardness"] or "unscored"
            counts[key] = counts.get(key, 0) + 1
            templates[r["template"]] = templates.get(r["template"], 0) + 1
        hardness[split] = counts
    return {
        "version": WORLD_VERSION,
        "seed": seed,
        "databases": {"train": list(TRAIN_DB_IDS), "dev": list(DEV_DB_IDS)},
        "questions": {split: len(recs) for split, recs in records.items()},
        "hardness_scored": scored,
        "hardness": hardness,
        "templates": dict(sorted(templates.items())),
        "tables": n_tables,
        "rows": n_rows,
    }


def _dump(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def read_world(out_dir: str | os.PathLike) -> dict[str, Any]:
    """The statistics stored in ``OUT/world.json`` by ``build_world``.

    Raises DataError when the file is missing, is not JSON, or lacks the keys ``build_world``
    writes (so a caller can tell "no world here" from "an older world": compare ``version``).
    """
    path = Path(out_dir) / "world.json"
    if not path.is_file():
        raise DataError("no world here (world.json missing); run `sqlcoach world build`", str(path))
    try:
        stats = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"not valid JSON: {exc}", str(path)) from exc
    need = ("version", "seed", "databases", "questions", "hardness", "tables", "rows")
    if not isinstance(stats, dict) or any(k not in stats for k in need):
        raise DataError(f"not a world.json (expected keys: {', '.join(need)})", str(path))
    return stats


def format_stats(stats: dict[str, Any]) -> str:
    """The statistics table printed by ``sqlcoach world build``."""
    levels = ["easy", "medium", "hard", "extra"]
    extra_keys = sorted({k for h in stats["hardness"].values() for k in h} - set(levels))
    cols = levels + extra_keys
    lines = [f"sqlcoach world v{stats['version']}  seed {stats['seed']}  "
             f"{stats['tables']} tables  {stats['rows']} rows"]
    head = f"{'split':6s} {'dbs':>4s} {'questions':>9s} " + " ".join(f"{c:>8s}" for c in cols)
    lines += [head, "-" * len(head)]
    for split in ("train", "dev"):
        h = stats["hardness"][split]
        lines.append(f"{split:6s} {len(stats['databases'][split]):4d} {stats['questions'][split]:9d} "
                     + " ".join(f"{h.get(c, 0):8d}" for c in cols))
    for split in ("train", "dev"):
        lines.append(f"{split} databases: {', '.join(stats['databases'][split])}")
    if not stats.get("hardness_scored"):
        lines.append("hardness: sqlcoach.sql.hardness is not installed; records carry hardness=null")
    if "seconds" in stats:
        lines.append(f"built in {stats['seconds']:.1f} s")
    return "\n".join(lines)
