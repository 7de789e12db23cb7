"""Spider 1.0 (Yu et al., 2018): questions, tables.json and gold files.

Layout read::

    <root>/dev.json                       split "dev"
    <root>/train_spider.json (+ train_others.json)  or  <root>/train.json     split "train"
    <root>/tables.json                    schemas (optional; used to recognise db_ids)
    <root>/database/<db_id>/<db_id>.sqlite

A record whose ``db_id`` is neither in tables.json nor has a folder under ``database/`` is
reported as unknown and skipped. A known database whose SQLite file is missing (Spider's
``wta_1`` here) loads with ``db_path=None``: the question is real, it just cannot run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlcoach.data.jsonl import (
    LoadReport,
    iter_records,
    optional_str,
    read_text,
    require_str,
    spider_hardness,
    sqlite_in,
)
from sqlcoach.errors import DataError
from sqlcoach.types import Example

#: split name -> candidate file lists, first existing list wins (train_others.json is optional).
SPIDER_SPLITS: dict[str, tuple[tuple[str, ...], ...]] = {
    "dev": (("dev.json",),),
    "train": (("train_spider.json", "train_others.json"), ("train.json",)),
    "test": (("test.json",),),
}


#: A fixed cross-database split of Spider dev, for work where Spider's training questions are not
#: available (this project's shared data holds dev only): ``dev_train`` (10 databases, 519
#: questions) and ``dev_eval`` (9 databases, 453 questions), no database in both. The databases
#: were dealt alternately in order of question count, so both parts mix large and small ones.
#: ``wta_1`` (its database file is missing here) is in neither part. Ids stay ``spider-dev-<index>``
#: so that they line up with dev_gold.sql.
SPIDER_DEV_PARTS: dict[str, tuple[str, ...]] = {
    "dev_train": ("world_1", "cre_Doc_Template_Mgt", "flight_2", "tvshow", "concert_singer", "poker_player",
                  "employee_hire_evaluation", "singer", "battle_death", "real_estate_properties"),
    "dev_eval": ("car_1", "dog_kennels", "student_transcripts_tracking", "network_1", "pets_1", "orchestra",
                 "course_teach", "museum_visit", "voter_1"),
}


def split_files(root: Path, split: str, table: dict[str, tuple[tuple[str, ...], ...]]) -> list[Path]:
    """The question files of ``split`` under ``root`` (or ``root`` itself when it is a file).

    Raises DataError naming the files looked for when none exists or the split is unknown.
    """
    if root.is_file():
        return [root]
    if split not in table:
        # A split that is a file name under root ("dev_small.json") is accepted as well.
        cand = root / split
        if cand.is_file():
            return [cand]
        raise DataError(f"unknown split {split!r} (known: {', '.join(table)})", str(root))
    for names in table[split]:
        first = root / names[0]
        if first.is_file():
            return [first] + [root / n for n in names[1:] if (root / n).is_file()]
    looked = " or ".join(names[0] for names in table[split])
    raise DataError(f"no {split} file ({looked}) found", str(root))


def read_tables_json(path: str | Path) -> dict[str, dict[str, Any]]:
    """tables.json as ``{db_id: entry}``; DataError when it is missing or not a list of objects."""
    text = read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON: {exc.msg}", str(path), exc.lineno) from exc
    if not isinstance(data, list):
        raise DataError("expected a JSON list of database entries", str(path))
    return {e["db_id"]: e for e in data if isinstance(e, dict) and isinstance(e.get("db_id"), str)}


def known_databases(tables: dict[str, Any], db_dir: Path | None) -> set[str]:
    """db_ids named in tables.json plus those with a folder under ``db_dir``."""
    known = set(tables)
    if db_dir is not None and db_dir.is_dir():
        known.update(p.name for p in db_dir.iterdir() if p.is_dir())
    return known


def load_spider(
    root: str | Path,
    split: str | None = "dev",
    *,
    db_dir: str | Path | None = None,
    tables: str | Path | None = None,
    with_hardness: bool = True,
    report: LoadReport | None = None,
) -> list[Example]:
    """Load one Spider split as Examples (``source="spider"``), in file order. ``split`` is
    ``dev``, ``train``, ``test`` or a cross-database part of dev (``dev_train``, ``dev_eval``:
    ``SPIDER_DEV_PARTS``).

    ``id`` is ``spider-<split>-<index>`` where index is the record's position in its file (so it
    lines up with gold files); ``meta`` holds ``file``, ``line`` and ``index``. ``hardness`` is
    computed from the gold SQL when ``sqlcoach.sql.hardness`` is available and ``with_hardness``.
    Bad records (bad JSON line, missing field, unknown db_id) go to ``report`` and are skipped.
    """
    report = report if report is not None else LoadReport()
    split = split or "dev"
    part = SPIDER_DEV_PARTS.get(split)
    if part is not None:  # a cross-database part of dev (see SPIDER_DEV_PARTS)
        dev = load_spider(root, "dev", db_dir=db_dir, tables=tables, with_hardness=with_hardness, report=report)
        return [ex for ex in dev if ex.db_id in part]
    rootp = Path(root)
    base = rootp.parent if rootp.is_file() else rootp
    ddir = Path(db_dir) if db_dir is not None else base / "database"
    tpath = Path(tables) if tables is not None else base / "tables.json"
    schemas = read_tables_json(tpath) if (tables is not None or tpath.is_file()) else {}
    known = known_databases(schemas, ddir)
    out: list[Example] = []
    for f in split_files(rootp, split, SPIDER_SPLITS):
        index = -1
        # train_others.json restarts its index; the tag keeps ids unique across the two files.
        tag = "-others" if f.name == "train_others.json" else ""
        for lineno, rec in iter_records(f, report):
            index += 1
            try:
                question = require_str(rec, "question")
                db_id = require_str(rec, "db_id")
                gold = optional_str(rec, "query", "SQL", "sql")
                if known and db_id not in known:
                    raise DataError(f"unknown db_id {db_id!r} (not in tables.json nor {ddir})")
            except ValueError as exc:
                report.add(f, lineno, str(exc))
                continue
            out.append(
                Example(
                    id=f"spider-{split}{tag}-{index}",
                    db_id=db_id,
                    question=question,
                    gold_sql=gold,
                    db_path=sqlite_in(ddir, db_id),
                    hardness=spider_hardness(gold) if with_hardness else None,
                    source="spider",
                    meta={"file": str(f), "line": lineno, "index": index},
                )
            )
    return out


def read_gold_file(path: str | Path, *, keep_blank: bool = False) -> list[tuple[str, str]]:
    """Read a Spider gold file: one ``SQL<TAB>db_id`` per line, as ``[(sql, db_id), ...]``.

    The db_id is what follows the *last* tab (SQL may contain tabs). Blank lines are skipped,
    unless ``keep_blank`` is true: then each blank line is kept as the pair ``("", "")``, which is
    how SParC/CoSQL gold files separate interactions (use :func:`split_interactions` to group).
    A non-blank line without a tab raises DataError with file and line: a gold file that cannot
    be aligned line by line must not be scored.
    """
    out: list[tuple[str, str]] = []
    text = read_text(path)
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            if keep_blank:
                out.append(("", ""))
            continue
        if "\t" not in line:
            raise DataError("expected 'SQL<TAB>db_id'", str(path), lineno)
        sql, db_id = line.rsplit("\t", 1)
        out.append((sql.strip(), db_id.strip()))
    return out


def split_interactions(pairs: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """Group ``read_gold_file(..., keep_blank=True)`` output into interactions at ``("", "")``.

    Empty groups (several blank lines in a row, a trailing blank line) are dropped.
    """
    groups: list[list[tuple[str, str]]] = [[]]
    for pair in pairs:
        if pair == ("", ""):
            groups.append([])
        else:
            groups[-1].append(pair)
    return [g for g in groups if g]
