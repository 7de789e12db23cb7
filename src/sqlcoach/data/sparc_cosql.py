"""Multi-turn benchmarks: SParC, CoSQL and CHASE (Spider-style interactions).

Each interaction record is ``{"database_id": ..., "interaction": [{"utterance": ..., "query": ...},
...]}``. Turn *k* becomes one Example whose ``turns`` are turns ``0..k-1`` (question and SQL), so
that a prompt can show the history. Layouts read::

    SParC: <root>/{train,dev}.json
    CoSQL: <root>/sql_state_tracking/cosql_{train,dev}.json   (or <root>/cosql_<split>.json)
    CHASE: <root>/chase_{train,dev,test}.json                 (or <root>/<split>.json)
    all:   <root>/tables.json (CHASE: chase_tables.json), <root>/database/<db>/<db>.sqlite

An interaction with a malformed turn is reported (file, line of the interaction) and skipped
whole: its later turns would carry a wrong history.
"""

from __future__ import annotations

from pathlib import Path

from sqlcoach.data.jsonl import LoadReport, iter_records, optional_str, require_str, sqlite_in
from sqlcoach.data.spider import known_databases, read_tables_json, split_files
from sqlcoach.errors import DataError
from sqlcoach.types import Example, Turn

_LAYOUTS: dict[str, dict[str, tuple[tuple[str, ...], ...]]] = {
    "sparc": {"train": (("train.json",),), "dev": (("dev.json",),)},
    "cosql": {
        "train": (("sql_state_tracking/cosql_train.json",), ("cosql_train.json",), ("train.json",)),
        "dev": (("sql_state_tracking/cosql_dev.json",), ("cosql_dev.json",), ("dev.json",)),
    },
    "chase": {
        s: ((f"chase_{s}.json",), (f"{s}.json",)) for s in ("train", "dev", "test")
    },
}
_TABLES = {"sparc": ("tables.json",), "cosql": ("tables.json",), "chase": ("chase_tables.json", "tables.json")}


def _load_interactions(
    kind: str,
    root: str | Path,
    split: str | None,
    db_dir: str | Path | None,
    tables: str | Path | None,
    report: LoadReport | None,
) -> list[Example]:
    report = report if report is not None else LoadReport()
    split = split or "dev"
    rootp = Path(root)
    base = rootp.parent if rootp.is_file() else rootp
    ddir = Path(db_dir) if db_dir is not None else base / "database"
    if tables is not None:
        schemas = read_tables_json(tables)
    else:
        found = [base / n for n in _TABLES[kind] if (base / n).is_file()]
        schemas = read_tables_json(found[0]) if found else {}
    known = known_databases(schemas, ddir)
    out: list[Example] = []
    for f in split_files(rootp, split, _LAYOUTS[kind]):
        index = -1
        for lineno, rec in iter_records(f, report):
            index += 1
            try:
                db_id = require_str(rec, "database_id", "db_id")
                if known and db_id not in known:
                    raise DataError(f"unknown db_id {db_id!r}")
                raw_turns = rec.get("interaction")
                if not isinstance(raw_turns, list) or not raw_turns:
                    raise DataError("field 'interaction' must be a non-empty list of turns")
                turns = []
                for t_i, t in enumerate(raw_turns):
                    try:
                        turns.append(Turn(require_str(t, "utterance", "question"), optional_str(t, "query", "sql")))
                    except ValueError as exc:
                        raise DataError(f"turn {t_i}: {exc}") from None
            except ValueError as exc:
                report.add(f, lineno, str(exc))
                continue
            db_path = sqlite_in(ddir, db_id)
            for t_i, turn in enumerate(turns):
                out.append(
                    Example(
                        id=f"{kind}-{split}-{index}-{t_i}",
                        db_id=db_id,
                        question=turn.question,
                        gold_sql=turn.sql,
                        db_path=db_path,
                        turns=tuple(turns[:t_i]),
                        source=kind,
                        meta={"file": str(f), "line": lineno, "interaction": index, "turn": t_i},
                    )
                )
    return out


def load_sparc(
    root: str | Path,
    split: str | None = "dev",
    *,
    db_dir: str | Path | None = None,
    tables: str | Path | None = None,
    report: LoadReport | None = None,
) -> list[Example]:
    """SParC turns as Examples (``source="sparc"``, id ``sparc-<split>-<interaction>-<turn>``)."""
    return _load_interactions("sparc", root, split, db_dir, tables, report)


def load_cosql(
    root: str | Path,
    split: str | None = "dev",
    *,
    db_dir: str | Path | None = None,
    tables: str | Path | None = None,
    report: LoadReport | None = None,
) -> list[Example]:
    """CoSQL (SQL-grounded state tracking) turns as Examples (``source="cosql"``)."""
    return _load_interactions("cosql", root, split, db_dir, tables, report)


def load_chase(
    root: str | Path,
    split: str | None = "dev",
    *,
    db_dir: str | Path | None = None,
    tables: str | Path | None = None,
    report: LoadReport | None = None,
) -> list[Example]:
    """CHASE turns as Examples (``source="chase"``)."""
    return _load_interactions("chase", root, split, db_dir, tables, report)
