"""Execution accuracy (EX): does the prediction return the gold's result?

Two modes (``docs/comparison.md`` has the full table):

``spider`` — the test-suite scorer's semantics. Both queries are post-processed like the official
    scorer (``> =`` joined to ``>=`` ...) and, unless ``keep_distinct``, every DISTINCT is removed
    from both (the official default; it hides ``COUNT(DISTINCT x)`` errors, which is why
    ``keep_distinct`` exists). Row order matters only when the gold says ORDER BY. When the
    database folder holds several ``*.sqlite`` files (test-suite databases), the prediction must
    match the gold on every one of them. With ``plug_value`` the gold's literals are also tried in
    the prediction's value slots and the example passes if any candidate passes on every file.
``bird`` — BIRD's rule: the *sets* of rows are equal, column order significant. Only the
    database file itself is used; SQL is executed as written (no DISTINCT stripping).

Errors are data: a failing example gets exactly one class from ``types.ERROR_CLASSES``. When the
gold itself fails (or its database is missing) the example is ``gold_error``: it is reported
instead of crashing the run as the official test-suite scorer does, and ``metrics.report`` counts
it as wrong by default (the official convention; see there). A *synthetic* item (database files
filled with generated rows, ``sqlcoach.data.create_context``) on which the gold returns no row on
any file is ``unmeasurable``: an empty result matches every query that runs, so EX would say
nothing about the prediction there.

Work is done in rounds over database files (round k runs every still-passing candidate on the
k-th file), so the common one-file case costs two calls to the executor pool: the gold queries
(cached: a gold is executed once per database file however many predictions are scored against
it) and the predictions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from sqlcoach.errors import ConfigError
from sqlcoach.execution.compare import same_result
from sqlcoach.execution.pool import ExecutorPool
from sqlcoach.sql.lexical import has_order_by, postprocess, strip_distinct
from sqlcoach.types import ExecResult

EX_MODES = ("spider", "bird")
#: a database folder holding this file has synthetic fills (``sqlcoach.data.create_context``)
SYNTHETIC_MARKER = "fills.json"


@dataclass
class ExItem:
    """One prediction to score. ``files`` are the database files it must match on."""

    pred: str
    gold: str
    files: tuple[str, ...]
    synthetic: bool = False  # generated fills: EX needs a gold that returns rows on at least one


@dataclass
class ExOutcome:
    ex: bool
    error: str | None = None
    message: str = ""
    seconds: float = 0.0
    pred_result: ExecResult | None = None  # on the first database file (for Soft-F1, samples)
    gold_result: ExecResult | None = None
    pred_sql: str = ""  # the SQL actually executed (after post-processing)
    gold_sql: str = ""
    candidates_tried: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def database_files(db_dir: str | Path | None, db_id: str, *, mode: str = "spider") -> tuple[str, ...]:
    """The database files an example is scored on.

    ``spider`` mode: every ``*.sqlite`` file in ``db_dir/db_id/`` (test-suite accuracy), sorted so
    runs are reproducible. ``bird`` mode: ``db_dir/db_id/db_id.sqlite`` only. ``db_dir`` may also
    point straight at a ``.sqlite`` file. Returns ``()`` when nothing exists.
    """
    if db_dir is None:
        return ()
    root = Path(db_dir)
    if root.is_file():
        return (str(root),)
    folder = root / db_id
    main = folder / f"{db_id}.sqlite"
    if mode == "bird":
        return (str(main),) if main.is_file() else ()
    if not folder.is_dir():
        return ()
    files = sorted(str(p) for p in folder.iterdir() if p.name.endswith(".sqlite") and p.is_file())
    # the main file first, so that the rows kept for reports come from the real database
    if str(main) in files:
        files.remove(str(main))
        files.insert(0, str(main))
    return tuple(files)


def synthetic_files(files: tuple[str, ...]) -> tuple[tuple[str, ...], bool]:
    """``(files to score on, synthetic)``: for a folder with ``fills.json`` (synthetic fills of a
    schema, ``sqlcoach.data.create_context``) the fills it lists, never the empty schema database
    beside them; otherwise ``files`` as they are."""
    if not files:
        return files, False
    folder = Path(files[0]).parent
    marker = folder / SYNTHETIC_MARKER
    if not marker.is_file():
        return files, False
    try:
        listed = json.loads(marker.read_text(encoding="utf-8")).get("fills") or []
    except (OSError, ValueError, AttributeError):
        listed = []
    return tuple(str(folder / f) for f in listed if (folder / f).is_file()), True


def prepare(pred: str, gold: str, *, mode: str, keep_distinct: bool) -> tuple[str, str, bool]:
    """Return (pred, gold, order_matters) as they will be executed."""
    if mode == "spider":
        pred, gold = postprocess(pred), postprocess(gold)
        if not keep_distinct:
            pred, gold = strip_distinct(pred), strip_distinct(gold)
        return pred, gold, has_order_by(gold)
    return pred, gold, False


def score_execution(
    items: Sequence[ExItem],
    *,
    pool: ExecutorPool,
    mode: str = "spider",
    keep_distinct: bool = False,
    plug_value: bool = False,
    progress: bool = False,
) -> list[ExOutcome]:
    """Score every item; never raises for anything about the predicted SQL."""
    if mode not in EX_MODES:
        raise ConfigError(f"unknown mode {mode!r}; choose one of {', '.join(EX_MODES)}")
    n = len(items)
    out: list[ExOutcome | None] = [None] * n
    # per item: surviving candidate SQL strings, the gold as executed, and order sensitivity
    cands: list[list[str]] = [[] for _ in range(n)]
    golds: list[str] = [""] * n
    order: list[bool] = [False] * n
    for i, it in enumerate(items):
        if not it.files:
            out[i] = (ExOutcome(False, "unmeasurable", "no synthetic fill of this schema could be made") if it.synthetic
                      else ExOutcome(False, "gold_error", "database not found"))
            continue
        if not (it.gold or "").strip():
            out[i] = ExOutcome(False, "gold_error", "empty gold query")
            continue
        p, g, order[i] = prepare(it.pred or "", it.gold, mode=mode, keep_distinct=keep_distinct)
        golds[i] = g
        if not p.strip():
            out[i] = ExOutcome(False, "no_sql", "empty prediction", gold_sql=g)
            continue
        cands[i] = [p]
        if plug_value and mode == "spider":
            from sqlcoach.sql.rewrite import plug_values  # needs the parser; only for this option

            cands[i] += [c for c in plug_values(p, g) if c != p]
        out[i] = ExOutcome(False, pred_sql=p, gold_sql=g, candidates_tried=len(cands[i]))
    _mark_unmeasurable(items, golds, cands, out, pool, progress)

    n_rounds = max((len(it.files) for it in items), default=0)
    for r in range(n_rounds):
        live = [i for i in range(n) if cands[i] and r < len(items[i].files)]
        if not live:
            break
        desc = "gold" if n_rounds == 1 else f"gold (db file {r + 1}/{n_rounds})"
        gold_res = pool.run(
            [(items[i].files[r], golds[i]) for i in live], cache=True, progress=progress and desc
        )
        round_gold: dict[int, ExecResult] = dict(zip(live, gold_res))
        pred_jobs: list[tuple[str, str]] = []
        owners: list[tuple[int, int]] = []  # (item index, candidate index) per pred job
        for i, gres in zip(live, gold_res):
            o = out[i]
            assert o is not None
            if r == 0:
                o.gold_result = gres
            if not gres.ok:
                o.error, o.message = "gold_error", f"gold failed on {Path(items[i].files[r]).name}: {gres.message}"
                cands[i] = []
                continue
            for k, c in enumerate(cands[i]):
                pred_jobs.append((items[i].files[r], c))
                owners.append((i, k))
        desc = "predictions" if n_rounds == 1 else f"predictions (db file {r + 1}/{n_rounds})"
        pred_res = pool.run(pred_jobs, cache=False, progress=progress and desc)
        survivors: dict[int, list[str]] = {}
        for (i, k), pres in zip(owners, pred_res):
            o = out[i]
            assert o is not None
            o.seconds += pres.seconds
            if r == 0 and k == 0:
                o.pred_result = pres
            gres_rows = round_gold[i].rows
            if not pres.ok:
                if k == 0 and o.error is None:
                    o.error, o.message = pres.error, pres.message
                continue
            if same_result(pres.rows, gres_rows, mode=mode, order_matters=order[i]):
                survivors.setdefault(i, []).append(cands[i][k])
            elif k == 0 and o.error is None:
                o.error = "wrong_result"
                o.message = _mismatch_message(pres, gres_rows)
        for i in live:
            if out[i] is not None and out[i].error == "gold_error":
                continue
            cands[i] = survivors.get(i, [])
    for i in range(n):
        o = out[i]
        assert o is not None
        if o.error in ("gold_error", "no_sql", "unmeasurable"):
            o.ex = False
            continue
        o.ex = bool(cands[i])  # a candidate survived every database file
        if o.ex:
            o.error, o.message = None, ""
        elif o.error is None:
            # the plain prediction failed through a candidate path we did not record
            o.error, o.message = "wrong_result", "no candidate matched on every database file"
    return [o for o in out if o is not None]


def _mark_unmeasurable(items: Sequence[ExItem], golds: list[str], cands: list[list[str]],
                       out: list[ExOutcome | None], pool: ExecutorPool, progress: bool) -> None:
    """Synthetic items whose gold returns no row on every file become ``unmeasurable`` (the gold
    runs are cached, so the rounds below do not run them again)."""
    todo = [i for i, it in enumerate(items) if it.synthetic and golds[i] and out[i] is not None
            and out[i].error not in ("gold_error", "unmeasurable")]
    jobs = [(f, golds[i]) for i in todo for f in items[i].files]
    if not jobs:
        return
    results = iter(pool.run(jobs, cache=True, progress=progress and "gold (synthetic fills)"))
    for i in todo:
        res = [next(results) for _ in items[i].files]
        if all(r.ok for r in res) and not any(r.rows for r in res):
            o = out[i]
            assert o is not None
            o.error = "unmeasurable"
            o.message = f"the gold returns no row on any of the {len(res)} synthetic database fills"
            cands[i] = []


def _mismatch_message(pres: ExecResult, gold_rows: Sequence[tuple] | None) -> str:
    prow = len(pres.rows or ())
    grow = len(gold_rows or ())
    pcol = len(pres.rows[0]) if pres.rows else 0
    gcol = len(gold_rows[0]) if gold_rows else 0
    if prow != grow:
        return f"{prow} rows, gold has {grow}"
    if pcol != gcol:
        return f"{pcol} columns, gold has {gcol}"
    return "different values or order"
