"""Unlabeled questions for ``sqlcoach adapt``: a question log, with no gold SQL, by construction.

Accepted files (the format is read from the content, not the name):

* text: one question per line (blank lines and lines starting with ``#`` ignored); every question
  is on the single database ``--db``;
* JSONL: one object per line with ``question`` and ``db_id`` (``db_id`` may be left out with
  ``--db``);
* a Spider / BIRD JSON array: only ``question``, ``db_id`` (and BIRD's ``evidence``, the hint a
  user writes with the question) are read. Gold SQL fields (``query``, ``SQL``) are never looked
  at: the records are reduced to those keys before anything else, and every ``Example`` is built
  with ``gold_sql=None``, so no consumer downstream can be handed gold from this loader.

Databases: ``--databases DIR`` holds ``DIR/<db_id>/<db_id>.sqlite`` (Spider's layout); ``--db FILE``
is one SQLite file whose stem is its ``db_id``. A question naming a database that is not there is
a ``DataError`` naming the database(s) and the folder; an unreadable or empty file is a one-line
``DataError``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from sqlcoach.data.jsonl import sqlite_in
from sqlcoach.errors import DataError
from sqlcoach.types import Example

#: the only keys read from a record; gold SQL keys are deliberately absent
QUESTION_KEYS = ("question", "db_id", "evidence")


@dataclass(frozen=True)
class QuestionSet:
    """Examples (``gold_sql`` always ``None``), the file's sha256 and format, and its databases."""

    examples: tuple[Example, ...]
    sha256: str
    format: str  # "text" | "jsonl" | "json"
    path: str

    @property
    def databases(self) -> list[str]:
        return sorted({e.db_id for e in self.examples})


def _records(text: str, path: str) -> tuple[list[dict[str, str | None]], str]:
    """``(records reduced to QUESTION_KEYS, format)``."""
    head = text.lstrip()
    if head.startswith("["):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise DataError(f"not a readable JSON question file: {exc}", path=path) from None
        raw, fmt = data, "json"
    elif head.startswith("{"):
        raw, fmt = [], "jsonl"
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    raw.append(json.loads(line))
                except ValueError as exc:
                    raise DataError(f"line {n} is not JSON: {exc}", path=path) from None
    else:
        lines = [ln.strip() for ln in text.splitlines()]
        return [{"question": ln, "db_id": None, "evidence": None} for ln in lines if ln and not ln.startswith("#")], "text"
    out = []
    for n, rec in enumerate(raw, 1):
        if not isinstance(rec, dict):
            raise DataError(f"record {n} is not an object", path=path)
        q = rec.get("question")
        if not isinstance(q, str) or not q.strip():
            raise DataError(f"record {n} has no 'question' text", path=path)
        out.append({k: (str(rec[k]) if rec.get(k) is not None else None) for k in QUESTION_KEYS})
    return out, fmt


def load_questions(path: str | Path, *, databases: str | Path | None = None, db: str | Path | None = None) -> QuestionSet:
    """The questions of ``path`` on ``databases`` (a Spider-layout folder) or on ``db`` (one file);
    exactly one of the two. Guarantees: every example has ``gold_sql=None`` and a ``db_path``
    that exists; ids are ``q<line/record number>`` in file order. ``DataError`` (one line) for an
    unreadable, empty or malformed file or a database that is not there."""
    from sqlcoach.errors import ConfigError

    if (databases is None) == (db is None):
        raise ConfigError("give exactly one of --databases DIR and --db FILE")
    p = Path(path)
    try:
        blob = p.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read the questions file: {exc.strerror or exc}", path=str(p)) from None
    try:
        text = blob.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError("the questions file is not UTF-8 text", path=str(p)) from None
    if not text.strip():
        raise DataError("the questions file is empty", path=str(p))
    records, fmt = _records(text, str(p))
    if not records:
        raise DataError("the questions file holds no question", path=str(p))
    if db is not None:
        dbf = Path(db)
        if not dbf.is_file():
            raise DataError("no such database file (--db)", path=str(dbf))
        other = sorted({r["db_id"] for r in records if r["db_id"] and r["db_id"] != dbf.stem})
        if other:
            raise DataError(f"the questions file {p} names database(s) {other}, but --db is {dbf} (db_id {dbf.stem!r})")
        paths = {dbf.stem: str(dbf)}
        for r in records:
            r["db_id"] = dbf.stem
    else:
        root = Path(databases)  # type: ignore[arg-type]
        if not root.is_dir():
            raise DataError("no such databases folder (--databases)", path=str(root))
        if any(not r["db_id"] for r in records):
            n = next(i for i, r in enumerate(records, 1) if not r["db_id"])
            raise DataError(f"question {n} of {p} names no db_id: give each question a db_id, or use --db FILE")
        wanted = sorted({str(r["db_id"]) for r in records})
        paths = {d: sqlite_in(root, d) for d in wanted}
        missing = [d for d, f in paths.items() if f is None]
        if missing:
            raise DataError(f"the questions file {p} names database(s) {missing} that are not in --databases {root} "
                            f"(expected {root}/<db_id>/<db_id>.sqlite)")
    examples = tuple(
        Example(id=f"q{i}", db_id=str(r["db_id"]), question=str(r["question"]).strip(), gold_sql=None,
                db_path=paths[str(r["db_id"])], evidence=r["evidence"], source=f"adapt-{fmt}")
        for i, r in enumerate(records, 1)
    )
    return QuestionSet(examples, hashlib.sha256(blob).hexdigest(), fmt, str(p))


def question_bucket(question: str, buckets: int = 100) -> int:
    """A fixed bucket in ``[0, buckets)`` from the sha256 of the question text (whitespace
    trimmed): the split rule adapt uses for its held-aside slice, independent of file order."""
    return int(hashlib.sha256(question.strip().encode("utf-8")).hexdigest()[:8], 16) % buckets


#: buckets (of 100) in half A: the fixed split of labelled questions into a half adapted on without
#: labels (A) and a half scored (B), used by ``benchmarks/adapt_demo.py`` and ``compare``'s adapt rows
HALF_A_BUCKETS = 50


def in_half_a(question: str) -> bool:
    """Whether a question is in half A (``question_bucket < HALF_A_BUCKETS``): decided by its text
    alone, so the split is the same in every file order, run and process."""
    return question_bucket(question) < HALF_A_BUCKETS
