"""Question + database -> prompt -> (model) -> SQL -> sandboxed result: shared by ``serve`` and ``ask``.

``Databases`` is the only way a request reaches a database file: it lists the SQLite files under
one folder once, at start-up, and a request names one of them (``db_id``); no text from a request
is ever turned into a path. ``prompt_for`` builds the prompt exactly as prediction does
(``PromptBuilder.prediction_text`` with the model's recipe), except that a database whose schema
cannot be read is an error, not an empty schema. ``answer_from_text`` extracts the SQL
(``sql.extract.extract_sql``, placeholders of an anonymizing template mapped back) and runs it in
the sandbox (``execution.pool.ExecutorPool``: read-only, a deadline with a hard kill, a row cap).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlcoach.errors import ConfigError, DataError
from sqlcoach.execution.runner import SqlRunner, jsonable_value
from sqlcoach.types import ExecResult, Example

SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")


class Databases:
    """The SQLite files of ``folder``, by name, fixed at construction.

    Names: ``<folder>/<name>.sqlite`` (also ``.sqlite3``, ``.db``) and Spider's layout
    ``<folder>/<name>/<name>.sqlite`` (or the only SQLite file in ``<folder>/<name>/``). A file whose
    real path (symlinks resolved) lies outside ``folder`` is left out. ``path(name)`` is a
    dictionary lookup: an unknown name is a ``DataError``, never a file-system access."""

    def __init__(self, folder: str | Path | None):
        self.folder = Path(folder).resolve() if folder is not None else None
        self._paths: dict[str, str] = {}
        if self.folder is None:
            return
        if not self.folder.is_dir():
            raise ConfigError(f"--databases {folder}: not a folder")
        for entry in sorted(self.folder.iterdir()):
            if entry.is_file() and entry.suffix.lower() in SQLITE_SUFFIXES:
                self._add(entry.stem, entry)
            elif entry.is_dir():
                own = [entry / f"{entry.name}{s}" for s in SQLITE_SUFFIXES if (entry / f"{entry.name}{s}").is_file()]
                found = own or [p for p in sorted(entry.iterdir()) if p.is_file() and p.suffix.lower() in SQLITE_SUFFIXES]
                if len(own) == 1 or len(found) == 1:
                    self._add(entry.name, found[0])

    def _add(self, name: str, path: Path) -> None:
        real = Path(os.path.realpath(path))
        if self.folder is not None and (real == self.folder or self.folder in real.parents) and name not in self._paths:
            self._paths[name] = str(real)

    def names(self) -> list[str]:
        return sorted(self._paths)

    def path(self, name: Any) -> str:
        if not isinstance(name, str) or name not in self._paths:
            known = ", ".join(self.names()) or "none (start the server with --databases DIR)"
            raise DataError(f"unknown database {name!r}; known: {known}")
        return self._paths[name]

    def __len__(self) -> int:
        return len(self._paths)


def example_for(question: str, db_path: str, db_id: str | None = None) -> Example:
    """The ``Example`` a question over ``db_path`` is prompted as (no gold SQL)."""
    return Example(id="ask", db_id=db_id or Path(db_path).stem, question=question, db_path=db_path, source="ask")


def prompt_for(builder: Any, tokenizer: Any, ex: Example) -> str:
    """The chat-formatted prompt text for ``ex`` (as ``sqlcoach predict`` builds it); a
    ``DataError`` when the database's schema cannot be read."""
    builder.schema_text(ex.db_path)  # raises UnreadableDatabase (a DataError) instead of an empty schema
    return builder.prediction_text(ex, tokenizer)


def messages_for(builder: Any, ex: Example) -> list[dict]:
    """The chat messages for ``ex`` (for an OpenAI-compatible server that applies its own chat template)."""
    return builder.messages(ex)


@dataclass
class SqlAnswer:
    """What ``/v1/sql`` and ``sqlcoach ask`` return for one question."""

    database: str
    question: str
    sql: str
    raw: str
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    error: str | None = None  # None, or "<class>: <message>" (no_sql, exec_error, timeout, too_large, ...)
    seconds: float = 0.0  # generation + execution
    generation_seconds: float = 0.0
    execution_seconds: float = 0.0
    # with several candidates (``select_answer``): the rule, the chosen index, each candidate's
    # vote count (its group in the plain result vote), the chosen one's verifier score, and each
    # candidate's SQL / error / votes / score; left out of ``as_json`` for a single answer
    select: str | None = None
    chosen: int | None = None
    votes: list[int] | None = None
    score: float | None = None
    candidates: list[dict[str, Any]] | None = None

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        if self.select is None:
            for k in SELECTION_FIELDS:
                d.pop(k)
        return d


#: the fields of ``SqlAnswer`` that only an answer chosen among candidates carries
SELECTION_FIELDS = ("select", "chosen", "votes", "score", "candidates")


def sql_of(raw: str, ex: Example, template: str) -> str:
    """The SQL of a model's answer ``raw`` (``sql.extract.extract_sql``), the placeholders of an
    anonymizing template mapped back to ``ex``'s names; ``""`` when there is none."""
    from sqlcoach.prompts.templates import restore_sql
    from sqlcoach.sql.extract import extract_sql

    return restore_sql((extract_sql(raw) or "").strip(), ex, template)


def answer_from_text(raw: str, ex: Example, template: str, runner: SqlRunner, *, database: str,
                     generation_seconds: float = 0.0) -> SqlAnswer:
    """Extract the SQL of ``raw`` (mapped back from placeholders for an anonymizing template) and
    run it in the sandbox; every failure is in ``error``, nothing raises because of the text."""
    sql = sql_of(raw, ex, template)
    out = SqlAnswer(database=database, question=ex.question, sql=sql, raw=raw, generation_seconds=generation_seconds)
    if not sql:
        out.error = "no_sql: no SQL found in the model's answer"
        return _timed(out, 0.0)
    return _execute(out, runner, str(ex.db_path))


def run_user_sql(sql: str, db_path: str, runner: SqlRunner, *, database: str) -> SqlAnswer:
    """The user's own ``sql`` (edited on the page) run on ``db_path`` in the same sandbox as the
    model's SQL (read-only, the runner's deadline and row cap); every failure is in ``error``."""
    out = SqlAnswer(database=database, question="", sql=sql.strip(), raw=sql)
    if not out.sql:
        out.error = "no_sql: the SQL is empty"
        return _timed(out, 0.0)
    return _execute(out, runner, db_path)


def _execute(out: SqlAnswer, runner: SqlRunner, db_path: str) -> SqlAnswer:
    """Run ``out.sql`` in the sandbox and fill ``out``'s result (or its error) and timings."""
    t0 = time.monotonic()
    fill_result(out, runner.run(db_path, out.sql))
    return _timed(out, time.monotonic() - t0)


def fill_result(out: SqlAnswer, res: ExecResult) -> SqlAnswer:
    """``out``'s columns and rows from ``res``, or its error as ``"<class>: <message>"``."""
    if res.ok:
        out.columns = list(res.columns)
        out.rows = [[jsonable_value(v) for v in row] for row in res.rows or ()]
    else:
        out.error = f"{res.error}: {res.message}" if res.message else str(res.error)
    return out


def run_candidates(sqls: Sequence[str], db_path: str, runner: SqlRunner, *,
                   deadline: float | None = None) -> list[ExecResult | None]:
    """Each candidate's result on ``db_path`` (``None`` for an empty SQL), every distinct SQL run
    once in the sandbox, one after another. The first always runs; a later one whose turn comes
    after ``deadline`` (monotonic seconds) is not started (its result is a ``timeout`` saying so),
    so the candidates cost at most one query's time limit past the request's deadline."""
    results: dict[str, ExecResult] = {}
    for sql in dict.fromkeys(s for s in sqls if s):
        if results and deadline is not None and time.monotonic() > deadline:
            results[sql] = ExecResult(None, error="timeout", message="not run: the request's deadline had passed")
        else:
            results[sql] = runner.run(db_path, sql)
    return [results.get(s) if s else None for s in sqls]


def select_answer(ex: Example, sqls: Sequence[str], raws: Sequence[str], runner: SqlRunner, selector: Any, *,
                  database: str, schema_text: str = "", generation_seconds: float = 0.0,
                  deadline: float | None = None) -> SqlAnswer:
    """The answer chosen among candidates (``sqls[i]`` extracted from ``raws[i]``, ``""`` when none):
    each distinct SQL run once (``run_candidates``), ``selector`` (an ``execution.select.Selector``;
    a learned one reads ``schema_text``) picks one, and the chosen candidate's result is the
    answer's (not run again). The answer carries the rule, the chosen index, every candidate's vote
    count and score, and the chosen one's score (``SqlAnswer``'s selection fields)."""
    from sqlcoach.execution.select import Candidates

    t0 = time.monotonic()
    results = run_candidates(sqls, str(ex.db_path), runner, deadline=deadline)
    exec_s = time.monotonic() - t0
    sel = selector(Candidates.of(list(sqls), results, question=ex.question, schema_text=schema_text))
    k = sel.chosen if sel.chosen >= 0 else 0
    out = SqlAnswer(database=database, question=ex.question, sql=sel.sql, raw=raws[k] if raws else "",
                    generation_seconds=generation_seconds, select=sel.rule, chosen=sel.chosen, votes=list(sel.votes),
                    score=sel.scores[sel.chosen] if sel.scores is not None and sel.chosen >= 0 else None)
    out.candidates = [{"sql": s, "error": None if r is None or r.ok else r.error,
                       "rows": len(r.rows) if r is not None and r.rows is not None else None,
                       "votes": sel.votes[i], "score": None if sel.scores is None else sel.scores[i]}
                      for i, (s, r) in enumerate(zip(sqls, results))]
    chosen = results[sel.chosen] if sel.chosen >= 0 else None  # a non-empty SQL always has a result
    if chosen is None:
        out.error = "no_sql: no SQL found in any candidate"
    else:
        fill_result(out, chosen)
    return _timed(out, exec_s)


def _timed(out: SqlAnswer, execution_seconds: float) -> SqlAnswer:
    out.execution_seconds = round(execution_seconds, 4)
    out.generation_seconds = round(out.generation_seconds, 4)
    out.seconds = round(out.generation_seconds + out.execution_seconds, 4)
    return out


def schema_json(db_path: str, name: str, *, sample_values: int = 3) -> dict[str, Any]:
    """The schema of the database ``name`` at ``db_path`` for the page: each table with its row
    count and columns (type, primary key, a few distinct values), and the foreign keys; a
    ``DataError`` when the file cannot be read as SQLite."""
    from sqlcoach.schema.introspect import introspect

    schema = introspect(db_path, sample_values=sample_values)
    return {
        "database": name,
        "tables": [{"name": t.name, "rows": t.row_count,
                    "columns": [{"name": c.name, "type": c.type, "primary_key": c.primary_key, "samples": list(c.samples)}
                                for c in t.columns]} for t in schema.tables],
        "foreign_keys": [asdict(fk) for fk in schema.foreign_keys],
    }


def format_table(columns: list[str], rows: list[list[Any]], *, max_rows: int = 50, max_width: int = 40) -> str:
    """``columns`` and ``rows`` as a plain-text table (``+---+`` borders); at most ``max_rows``
    rows (a last line says how many were left out), each cell cut to ``max_width`` characters."""

    def cell(v: Any) -> str:
        s = "NULL" if v is None else str(v)
        s = " ".join(s.split()) if ("\n" in s or "\t" in s) else s
        return s if len(s) <= max_width else s[: max_width - 3] + "..."

    shown = [[cell(v) for v in row] for row in rows[:max_rows]]
    head = [cell(c) for c in columns]
    widths = [max([len(head[i])] + [len(r[i]) for r in shown if i < len(r)]) for i in range(len(head))]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths)) + " |"

    out = [rule, line(head), rule, *(line(r) for r in shown), rule]
    if len(rows) > max_rows:
        out.append(f"({len(rows) - max_rows} more rows not shown)")
    out.append(f"{len(rows)} row{'s' if len(rows) != 1 else ''}")
    return "\n".join(out)
