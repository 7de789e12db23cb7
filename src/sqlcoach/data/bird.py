"""BIRD (Li et al., 2023): questions with evidence and difficulty.

Layout read (either a folder or a bare questions file)::

    <root>/dev.json  or  <root>/train.json          questions (fields: question_id, db_id,
                                                    question, evidence, SQL, difficulty)
    <root>/dev_databases/<db_id>/<db_id>.sqlite     (train: train_databases/)

When no database folder exists (a bare questions file such as the shared
``bird-dev-questions/dev.json``) every Example has ``db_path=None``; that is not a problem.
When the folder exists, a record whose db_id has no SQLite file is reported and skipped.
"""

from __future__ import annotations

from pathlib import Path

from sqlcoach.data.jsonl import LoadReport, iter_records, optional_str, require_str, sqlite_in
from sqlcoach.data.spider import split_files
from sqlcoach.errors import DataError
from sqlcoach.types import Example

BIRD_SPLITS: dict[str, tuple[tuple[str, ...], ...]] = {
    "dev": (("dev.json",),),
    "train": (("train.json",),),
}


def _default_db_dir(base: Path, split: str) -> Path | None:
    for name in (f"{split}_databases", "databases", "database"):
        if (base / name).is_dir():
            return base / name
    return None


def load_bird(
    path: str | Path,
    split: str | None = "dev",
    *,
    db_dir: str | Path | None = None,
    report: LoadReport | None = None,
) -> list[Example]:
    """Load BIRD questions as Examples (``source="bird"``), in file order.

    ``path`` is the BIRD folder (``<split>.json`` inside) or the questions file itself. ``id`` is
    ``bird-<split>-<question_id>`` (the record's position when question_id is absent);
    ``difficulty`` is the file's field when present (older files lack it: None). Records with a
    missing field, or an unknown db_id when databases are present, are reported and skipped.
    """
    report = report if report is not None else LoadReport()
    split = split or "dev"
    p = Path(path)
    base = p.parent if p.is_file() else p
    ddir = Path(db_dir) if db_dir is not None else _default_db_dir(base, split)
    out: list[Example] = []
    for f in split_files(p, split, BIRD_SPLITS):
        index = -1
        for lineno, rec in iter_records(f, report):
            index += 1
            try:
                question = require_str(rec, "question")
                db_id = require_str(rec, "db_id")
                gold = optional_str(rec, "SQL", "sql", "query")
                evidence = optional_str(rec, "evidence")
                difficulty = optional_str(rec, "difficulty")
                qid = optional_str(rec, "question_id")
                db_path = sqlite_in(ddir, db_id)
                if ddir is not None and db_path is None:
                    raise DataError(f"unknown db_id {db_id!r}: no {db_id}/{db_id}.sqlite in {ddir}")
            except ValueError as exc:
                report.add(f, lineno, str(exc))
                continue
            out.append(
                Example(
                    id=f"bird-{split}-{qid if qid is not None else index}",
                    db_id=db_id,
                    question=question,
                    gold_sql=gold,
                    db_path=db_path,
                    evidence=evidence or None,
                    difficulty=difficulty,
                    source="bird",
                    meta={"file": str(f), "line": lineno, "index": index},
                )
            )
    return out
