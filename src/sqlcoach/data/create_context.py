"""sql-create-context style data: question, ``CREATE TABLE`` context, answer SQL.

Records (JSON array or JSONL) look like b-mc2/sql-create-context::

    {"question": "How many heads ...?", "context": "CREATE TABLE head (age INTEGER)",
     "answer": "SELECT COUNT(*) FROM head WHERE age > 56"}

Each distinct context is materialised as an *empty* SQLite database (tables, no rows):
``<cache>/create_context/<db_id>/<db_id>.sqlite`` with ``db_id = "ctx_" + sha1(context)[:12]``.
The prompt reads its schema from that file (an empty one: no generated value, and none of the
gold's literals, can reach a prompt as a sample or retrieved value). Only ``CREATE TABLE``
statements are executed (the context is data, not a script to trust); a context holding anything
else, or one SQLite rejects, is reported and its record skipped. Writing is atomic and idempotent.

EX on an empty database means nothing (every SELECT that runs returns what the gold returns:
nothing), so each context also gets ``fills`` (default 3) independently *filled* copies,
``<db_id>.fill<k>.sqlite``, listed in ``fills.json`` beside them; the scorer
(``sqlcoach.metrics``) scores such a folder test-suite style on the fills only: a prediction must
match the gold on every fill. A fill has ``rows`` rows per table of type-aware synthetic values
(integers, reals and text by the column's declared type; small value pools so that grouping,
ordering and joins see repeats), with the literals of the questions and gold queries of every
record sharing the context mixed in: a literal the gold compares with a column (``col = 'x'``,
``col > 5``) goes into that column in about half of the rows (numbers also as their neighbours,
so that ``>`` and ``>=`` differ), other literals into type-compatible columns. Fills are
deterministic in (context, literals, fill number). When no fill can be made (SQLite refuses every
row of some table, e.g. a CHECK constraint), ``fills.json`` lists none and says why, and EX is
reported as *unmeasurable* for its examples (EM is still scored); so it is when the gold returns
no row on any fill.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sqlite3
from pathlib import Path
from typing import Any

from sqlcoach.data.jsonl import LoadReport, iter_records, optional_str, require_str
from sqlcoach.errors import DataError
from sqlcoach.runtime.files import atomic_write, replacing
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
    try:
        with replacing(target, suffix=".sqlite.tmp") as tmp:
            con = sqlite3.connect(tmp)
            try:
                for st in statements:
                    con.execute(st)
                con.commit()
            except sqlite3.Error as exc:
                raise DataError(f"context rejected by SQLite: {exc}") from None
            finally:
                con.close()
    finally:
        try:
            target.parent.rmdir()  # only succeeds when empty, i.e. when materialising failed
        except OSError:
            pass
    return str(target)

FILLS_FILE = "fills.json"
FILLS_VERSION = 1
_STRING_LIT = re.compile(r"'((?:[^']|'')*)'|\"([^\"]*)\"")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")
_COMPARED = re.compile(
    r"([A-Za-z_][\w]*|`[^`]+`|\[[^\]]+\])\s*(?:=|==|!=|<>|>=|<=|>|<|\bLIKE\b|\bNOT\s+LIKE\b)\s*"
    r"('(?:[^']|'')*'|\"[^\"]*\"|-?\d+(?:\.\d+)?)", re.IGNORECASE)
_WORDS = ("alpha", "beta", "gamma", "delta", "omega", "north", "south", "red", "blue", "green", "lake", "river",
          "stone", "oak", "pine", "iron", "gold", "silver", "ruby", "jade")


def _number(text: str) -> int | float:
    return float(text) if "." in text else int(text)


def literals(question: str, sql: str | None) -> dict[str, Any]:
    """The literals a fill must contain: ``{"columns": {column: [values]}, "loose": [values]}``.

    Values compared with a named column in the gold (``col = 'x'``, ``col > 5``) go to that column;
    the other string and number literals of the gold and the question (quoted phrases, numbers) are
    ``loose``. Column names are lower-cased; values keep their type (str, int, float)."""
    cols: dict[str, list[Any]] = {}
    loose: list[Any] = []
    sql = sql or ""
    for m in _COMPARED.finditer(sql):
        col = m.group(1).strip("`[]").lower()
        raw = m.group(2)
        value: Any = raw[1:-1].replace("''", "'") if raw[0] in "'\"" else _number(raw)
        if isinstance(value, str):
            value = value.strip("%")  # LIKE '%x%' -> x
        if value not in cols.setdefault(col, []):
            cols[col].append(value)
    placed = {v for vs in cols.values() for v in vs}
    for text in (sql, question):
        for m in _STRING_LIT.finditer(text):
            v = (m.group(1) if m.group(1) is not None else m.group(2) or "").replace("''", "'").strip("%")
            if v and v not in placed and v not in loose:
                loose.append(v)
        for m in _NUMBER.finditer(_STRING_LIT.sub(" ", text)):
            v = _number(m.group(0))
            if v not in placed and v not in loose:
                loose.append(v)
    return {"columns": cols, "loose": loose}


def merge_literals(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The union of several ``literals`` results (records sharing one context), order kept."""
    cols: dict[str, list[Any]] = {}
    loose: list[Any] = []
    for it in items:
        for c, vs in it["columns"].items():
            for v in vs:
                if v not in cols.setdefault(c, []):
                    cols[c].append(v)
        for v in it["loose"]:
            if v not in loose:
                loose.append(v)
    return {"columns": cols, "loose": loose}


def _affinity(decl: str) -> str:
    """SQLite's type affinity rules (datatype3.html, 3.1), on the declared type."""
    d = decl.upper()
    if "INT" in d:
        return "integer"
    if any(k in d for k in ("CHAR", "CLOB", "TEXT")):
        return "text"
    if not d or "BLOB" in d:
        return "blob"
    if any(k in d for k in ("REAL", "FLOA", "DOUB")):
        return "real"
    return "numeric"


def _random_value(aff: str, rng: random.Random, numeric_like: bool) -> Any:
    if aff == "integer" or (aff in ("numeric", "blob") and rng.random() < 0.7):
        return rng.randint(0, 12)
    if aff == "real":
        return round(rng.uniform(0, 12), 1)
    if numeric_like:  # a text column the gold compares with numbers (WikiSQL-style VARCHAR)
        return str(rng.randint(0, 12))
    return f"{rng.choice(_WORDS)} {rng.randint(1, 4)}" if rng.random() < 0.3 else rng.choice(_WORDS)


def _fits(aff: str, value: Any) -> bool:
    return aff in ("text", "blob", "numeric") or not isinstance(value, str)


def _literal_value(aff: str, lit: Any, rng: random.Random) -> Any:
    """``lit`` as the column stores it; a number is sometimes its neighbour, so that ``>`` and
    ``>=`` (and ``<`` and ``<=``) select different rows."""
    if isinstance(lit, (int, float)) and not isinstance(lit, bool):
        lit = lit + rng.choice((0, 0, 1, -1))
        if aff == "text":
            return str(lit)
    return lit


def _fill_rows(con: sqlite3.Connection, lits: dict[str, Any], rng: random.Random, rows: int) -> str | None:
    """Insert ``rows`` rows into every table of ``con``; the reason when some table gets none."""
    tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY rowid")]
    loose = lits["loose"]
    for t in tables:
        info = con.execute(f'PRAGMA table_info("{t.replace(chr(34), chr(34) * 2)}")').fetchall()
        cols = [(r[1], _affinity(r[2] or ""), bool(r[5])) for r in info]
        numeric_like = {c.lower() for c, _a, _p in cols
                        if any(isinstance(v, (int, float)) for v in lits["columns"].get(c.lower(), []))}
        names = ", ".join('"' + c.replace('"', '""') + '"' for c, _a, _p in cols)
        marks = ", ".join("?" for _ in cols)
        inserted = 0
        for r in range(rows):
            row = []
            for c, aff, pk in cols:
                mine = lits["columns"].get(c.lower(), [])
                if pk and aff == "integer" and len([x for x in cols if x[2]]) == 1:
                    row.append(r + 1)  # a single INTEGER PRIMARY KEY: distinct ids 1..rows
                elif mine and rng.random() < 0.5:
                    row.append(_literal_value(aff, rng.choice(mine), rng))
                else:
                    fitting = [v for v in loose if _fits(aff, v)]
                    if fitting and rng.random() < 0.2:
                        row.append(_literal_value(aff, rng.choice(fitting), rng))
                    else:
                        row.append(_random_value(aff, rng, c.lower() in numeric_like))
            try:
                inserted += con.execute(f'INSERT OR IGNORE INTO "{t.replace(chr(34), chr(34) * 2)}" ({names}) VALUES ({marks})', row).rowcount
            except sqlite3.Error as exc:
                return f"table {t!r} refuses generated rows: {exc}"
        if inserted == 0:
            return f"table {t!r} accepted none of the {rows} generated rows"
    return None


class _Refused(Exception):
    """A fill the tables refused (its reason): leaving ``replacing`` by it leaves no file."""


def _write_fill(empty: Path, target: Path, lits: dict[str, Any], seed: str, rows: int) -> str | None:
    """Copy the empty database to ``target`` and fill it; the reason (and no file) when it fails."""
    try:
        with replacing(target, suffix=".sqlite.tmp") as tmp:
            src = sqlite3.connect(f"file:{empty}?mode=ro", uri=True)
            dst = sqlite3.connect(tmp)
            try:
                src.backup(dst)
                why = _fill_rows(dst, lits, random.Random(seed), rows)
                if why is not None:
                    raise _Refused(why)
                dst.commit()
            finally:
                src.close()
                dst.close()
    except _Refused as exc:
        return str(exc)
    return None


def read_fills(folder: str | Path) -> dict[str, Any] | None:
    """The ``fills.json`` of a context folder, ``None`` when absent or unreadable."""
    p = Path(folder) / FILLS_FILE
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def materialise_fills(db_path: str | Path, lits: dict[str, Any], *, fills: int = 3, rows: int = 8) -> dict[str, Any]:
    """Make (or reuse) the filled copies of the empty context database ``db_path`` for ``lits``
    and return its ``fills.json`` (``{"fills": [file names], "reason": why none, ...}``). Files
    are rewritten only when the literals, ``fills`` or ``rows`` change; the manifest is written last."""
    empty = Path(db_path)
    folder = empty.parent
    key = hashlib.sha1(json.dumps([FILLS_VERSION, lits, fills, rows], sort_keys=True, default=str).encode()).hexdigest()[:16]
    old = read_fills(folder)
    if old is not None and old.get("key") == key and all((folder / f).is_file() for f in old.get("fills", [])):
        return old
    made: list[str] = []
    reason = None
    for k in range(1, fills + 1):
        name = f"{empty.stem}.fill{k}.sqlite"
        why = _write_fill(empty, folder / name, lits, f"{empty.stem}-{key}-{k}", rows)
        if why is None:
            made.append(name)
        else:
            reason = why
            (folder / name).unlink(missing_ok=True)
    manifest = {"version": FILLS_VERSION, "key": key, "fills": made, "rows_per_table": rows,
                "reason": None if made else reason, "literals": lits}
    atomic_write(folder / FILLS_FILE, json.dumps(manifest, indent=1, ensure_ascii=False, default=str) + "\n")
    return manifest


def load_create_context(
    path: str | Path,
    split: str | None = None,
    *,
    cache_dir: str | Path | None = None,
    report: LoadReport | None = None,
    fills: int = 3,
    rows: int = 8,
) -> list[Example]:
    """Load sql-create-context records as Examples (``source="create_context"``).

    ``split`` is ignored (the dataset has one file). ``cache_dir`` defaults to
    ``<folder of path>/.sqlcoach_db``. ``meta["context"]`` keeps the CREATE TABLE text;
    ``meta["fills"]`` the number of filled copies EX is scored on (``fills=0``: none, so EX is
    unmeasurable for every example; see the module docstring), ``meta["ex_unmeasurable"]`` why,
    when no fill could be made.
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
    by_db: dict[str, list[Example]] = {}
    for ex in out:
        by_db.setdefault(str(ex.db_path), []).append(ex)
    for db_path, exs in by_db.items():
        lits = merge_literals([literals(ex.question, ex.gold_sql) for ex in exs])
        try:
            manifest = materialise_fills(db_path, lits, fills=fills, rows=rows)
        except (OSError, sqlite3.Error) as exc:
            manifest = {"fills": [], "reason": f"cannot write fills: {exc}"}
            report.add(p, exs[0].meta["line"], f"{exs[0].db_id}: {manifest['reason']}")
        for ex in exs:
            ex.meta["fills"] = len(manifest.get("fills", []))
            if not manifest.get("fills"):
                ex.meta["ex_unmeasurable"] = manifest.get("reason") or "no fill requested (fills=0)"
    return out
