"""The HTTP side of ``sqlcoach view``: a JSON API over a ``runs.Catalog`` and one page.

Routes (``build_app``), every ``/api`` and ``/blob`` route behind ``--api-key`` when one is set:

* ``GET /api/catalog``: the prediction files (counts, EX, bad lines), training runs (summary,
  curves, plot ids), reports (ids), problems met while loading;
* ``GET /api/files/{f}/rows``: one page of file ``f``'s rows, filtered by ``verdict``, ``error``,
  ``hardness``, ``db`` (exact values) and ``q`` (case-insensitive text in the question, SQL,
  database or id), sorted by ``sort`` (``order`` asc/desc), ``offset`` / ``limit`` (at most 500);
  with the file's facet counts for the filter menus;
* ``GET /api/files/{f}/rows/{pos}``: one question opened: both SQL formatted (``sql.parse.pretty_sql``),
  both result tables run now in the sandbox (``execution.runner.SqlRunner``: read-only, deadline,
  row cap; the first ``SHOW_ROWS`` rows sent), the EXPLAIN QUERY PLAN of both with
  ``metrics.plans``' features and its ``worse`` rule, the samples with every per-sample field
  the record has (votes, errors, verifier scores when a record carries them), agent turns;
* ``GET /api/diff?a=&b=``: the questions of file ``a`` and file ``b`` paired by example, right in
  A and wrong in B and the reverse, with the exact McNemar p-value (``metrics.stats.mcnemar_counts``);
* ``GET /blob/{id}``: a plot (PNG) or report (HTML, served with a CSP that lets it run nothing).

Nothing a request sends becomes a path: files, rows and plots are integers indexing the lists
``runs.load_catalog`` built from the folders on the command line; anything else is 400 or 404.
"""

from __future__ import annotations

import asyncio
import logging
from importlib import resources
from typing import Any

from fastapi import Depends, FastAPI, Query
from fastapi.responses import FileResponse, HTMLResponse

from sqlcoach.runtime.web import ApiError, add_error_handlers, bearer_auth
from sqlcoach.view.runs import VERDICTS, Catalog, PredFile, Row, inside

log = logging.getLogger("sqlcoach.view")
MAX_PAGE = 500
SHOW_ROWS = 200
_HARD = {"easy": 0, "medium": 1, "hard": 2, "extra": 3}
#: the ``sort`` values of the rows route: each a key, ties broken by index
SORTS = {
    "index": lambda r: r.index,
    "db": lambda r: (r.db_id, r.index),
    "hardness": lambda r: (_HARD.get(r.hardness or "", 9), r.index),
    "verdict": lambda r: (r.verdict, r.index),
    "error": lambda r: (r.error or "", r.index),
    "question": lambda r: ((r.question or "").lower(), r.index),
    "line": lambda r: r.line,
}
#: reports are self-contained pages: they may show inline images and styles, never run or fetch anything
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox"


class Viewer:
    """The catalog plus the sandbox that runs the opened questions' SQL."""

    def __init__(self, catalog: Catalog, runner: Any, *, api_key: str | None = None):
        self.catalog = catalog
        self.runner = runner
        self.api_key = api_key
        self._facets: dict[int, dict[str, dict[str, int]]] = {}

    def facets(self, f: PredFile) -> dict[str, dict[str, int]]:
        """``facets(f.rows)``, computed once (rows never change after loading)."""
        if f.id not in self._facets:
            self._facets[f.id] = facets(f.rows)
        return self._facets[f.id]

    def pred_file(self, fid: int) -> PredFile:
        if not 0 <= fid < len(self.catalog.pred_files):
            raise ApiError(404, f"no prediction file {fid} (there are {len(self.catalog.pred_files)})", code="not_found")
        return self.catalog.pred_files[fid]

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()


def facets(rows: list[Row]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {"verdict": {}, "error": {}, "hardness": {}, "db": {}}
    for r in rows:
        for name, v in (("verdict", r.verdict), ("error", r.error or "none"), ("hardness", r.hardness or "unknown"),
                        ("db", r.db_id)):
            out[name][v] = out[name].get(v, 0) + 1
    return {k: dict(sorted(v.items())) for k, v in out.items()}


def select_rows(rows: list[Row], *, verdict: str | None = None, error: str | None = None, hardness: str | None = None,
                db: str | None = None, q: str | None = None, sort: str = "index", order: str = "asc") -> list[Row]:
    """The rows passing every filter given, sorted; ``error="none"`` / ``hardness="unknown"``
    select rows without one."""
    if sort not in SORTS:
        raise ApiError(400, f"sort must be one of {', '.join(SORTS)}", param="sort")
    if order not in ("asc", "desc"):
        raise ApiError(400, "order must be asc or desc", param="order")
    if verdict and verdict not in VERDICTS:
        raise ApiError(400, f"verdict must be one of {', '.join(VERDICTS)}", param="verdict")
    needle = (q or "").strip().lower()
    out = [r for r in rows
           if (not verdict or r.verdict == verdict)
           and (not error or (r.error or "none") == error)
           and (not hardness or (r.hardness or "unknown") == hardness)
           and (not db or r.db_id == db)
           and (not needle or needle in r.search)]
    out.sort(key=SORTS[sort], reverse=order == "desc")
    return out


def _table(res: Any) -> dict[str, Any]:
    from sqlcoach.execution.runner import jsonable_value

    if res is None:
        return {"error": "not_run", "message": "no database for this question (pass --data DIR)"}
    if not res.ok:
        return {"error": res.error, "message": res.message, "seconds": round(res.seconds, 4)}
    rows = res.rows or ()
    return {"columns": list(res.columns), "rows": [[jsonable_value(v) for v in row] for row in rows[:SHOW_ROWS]],
            "row_count": len(rows), "shown": min(len(rows), SHOW_ROWS), "seconds": round(res.seconds, 4)}


def _plan(res: Any) -> dict[str, Any] | None:
    from sqlcoach.metrics.plans import plan_features

    if res is None:
        return None
    if not res.ok:
        return {"error": res.error, "message": res.message}
    return {"lines": [str(r[-1]) for r in res.rows or ()], "features": plan_features(res.rows or ())}


def samples_of(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """One dict per sample of a self-consistency record: ``sql``, ``chosen``, and every list field
    of the record as long as ``samples`` (``votes``, ``sample_errors``, ``raw_samples``, and a
    verifier's per-candidate scores when the record has them) under its own name. ``samples``
    may also be a list of objects (``{"sql", "score", ...}``): their fields are the columns."""
    sqls = rec.get("samples")
    if not isinstance(sqls, list) or not sqls:
        return []
    chosen = rec.get("chosen")
    if all(isinstance(s, dict) for s in sqls):  # one object per candidate: its fields are the columns
        return [{"sql": str(s.get("sql", "")), "chosen": i == chosen, **{k: v for k, v in s.items() if k != "sql"}}
                for i, s in enumerate(sqls)]
    cols = {k: v for k, v in rec.items() if k != "samples" and isinstance(v, list) and len(v) == len(sqls)
            and k not in ("history_sql", "turns")}
    return [{"sql": s, "chosen": i == chosen, **{k: v[i] for k, v in cols.items()}} for i, s in enumerate(sqls)]


def turns_of(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """An agent's turns (``turns``: a list of objects, e.g. ``{query, observation}``), each with
    ``query``/``sql`` formatted for reading; ``[]`` when the record has none."""
    from sqlcoach.sql.parse import pretty_sql

    turns = rec.get("turns")
    if not isinstance(turns, list):
        return []
    out = []
    for t in turns:
        if not isinstance(t, dict):
            t = {"text": t}
        t = dict(t)
        for k in ("query", "sql"):
            if isinstance(t.get(k), str):
                t[k + "_pretty"] = pretty_sql(t[k])
        out.append(t)
    return out


def open_row(viewer: Viewer, f: PredFile, row: Row) -> dict[str, Any]:
    """Everything the page shows for one question (module docstring); runs SQL: call off the event loop."""
    from sqlcoach.metrics.plans import worse
    from sqlcoach.sql.parse import pretty_sql

    def run(sql: str | None) -> Any:
        if not row.db_path or not sql or viewer.runner is None:
            return None
        return viewer.runner.run(row.db_path, sql)

    gold_res, pred_res = run(row.gold), run(row.pred)
    gold_plan, pred_plan = (_plan(run(f"EXPLAIN QUERY PLAN {s}") if s else None) for s in (row.gold, row.pred))
    plans_worse = None
    if gold_plan and pred_plan and "features" in gold_plan and "features" in pred_plan:
        plans_worse = worse(pred_plan["features"], gold_plan["features"])
    shown = {"samples", "raw_samples", "sample_errors", "votes", "chosen", "turns", "raw", "sql", "index", "id", "db_id",
             "example"}
    if f.kind == "per-example":  # the verdict fields shown above (in a prediction record, error is the API's)
        shown |= {"pred", "gold", "hardness", "ex", "error", "message"}
    return {
        **row.brief(), "file": f.id, "file_label": f.label, "line": row.line, "key": row.key, "message": row.message,
        "has_database": row.db_path is not None,
        "gold_pretty": pretty_sql(row.gold) if row.gold else None, "pred_pretty": pretty_sql(row.pred) if row.pred else "",
        "raw": row.record.get("raw"), "gold_result": _table(gold_res) if row.gold else None, "pred_result": _table(pred_res),
        "plans": {"gold": gold_plan, "pred": pred_plan, "pred_worse": plans_worse},
        "samples": samples_of(row.record), "turns": turns_of(row.record),
        "other": {k: v for k, v in row.record.items() if k not in shown},
    }


def diff(a: PredFile, b: PredFile) -> dict[str, Any]:
    """The scored questions both files hold (paired by ``Row.key``): counts, the discordant
    questions both ways, McNemar's exact p-value on them."""
    from sqlcoach.metrics.stats import mcnemar_counts

    in_b = {r.key: r for r in b.rows if r.verdict != "unscored"}
    pairs = [(r, in_b[r.key]) for r in a.rows if r.verdict != "unscored" and r.key in in_b]

    def item(ra: Row, rb: Row) -> dict[str, Any]:
        return {"key": ra.key, "question": ra.question, "db_id": ra.db_id, "hardness": ra.hardness, "gold": ra.gold,
                "a_pos": ra.pos, "b_pos": rb.pos, "a_pred": ra.pred, "b_pred": rb.pred, "a_error": ra.error, "b_error": rb.error}

    a_only = [item(ra, rb) for ra, rb in pairs if ra.verdict == "right" and rb.verdict == "wrong"]
    b_only = [item(ra, rb) for ra, rb in pairs if ra.verdict == "wrong" and rb.verdict == "right"]
    both = sum(ra.verdict == rb.verdict == "right" for ra, rb in pairs)
    n = len(pairs)
    return {"a": a.id, "b": b.id, "a_label": a.label, "b_label": b.label, "paired": n,
            "unpaired_a": sum(r.verdict != "unscored" for r in a.rows) - n, "unpaired_b": len(in_b) - n,
            "both_right": both, "both_wrong": n - both - len(a_only) - len(b_only),
            "a_right": both + len(a_only), "b_right": both + len(b_only),
            "a_only": a_only, "b_only": b_only, "mcnemar_p": mcnemar_counts(len(a_only), len(b_only))}


def build_app(viewer: Viewer) -> FastAPI:
    """The FastAPI app over ``viewer`` (module docstring)."""
    app = FastAPI(title="sqlcoach view", docs_url=None, redoc_url=None, openapi_url=None)
    add_error_handlers(app, log)
    auth = Depends(bearer_auth(viewer.api_key))
    cat = viewer.catalog

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "files": len(cat.pred_files)}

    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        return HTMLResponse(resources.files("sqlcoach.view").joinpath("page.html").read_text(encoding="utf-8"))

    @app.get("/api/catalog", dependencies=[auth])
    async def catalog() -> dict[str, Any]:
        return {"roots": [str(r) for r in cat.roots], "files": [f.card() for f in cat.pred_files],
                "trainings": [t.card() for t in cat.trainings], "reports": cat.reports, "problems": cat.problems,
                "auth": viewer.api_key is not None}

    @app.get("/api/files/{fid}/rows", dependencies=[auth])
    async def rows(fid: int, verdict: str | None = Query(None, max_length=32), error: str | None = Query(None, max_length=64),
                   hardness: str | None = Query(None, max_length=32), db: str | None = Query(None, max_length=256),
                   q: str | None = Query(None, max_length=500), sort: str = Query("index", max_length=32),
                   order: str = Query("asc", max_length=4), offset: int = Query(0, ge=0),
                   limit: int = Query(50, ge=1, le=MAX_PAGE)) -> dict[str, Any]:
        f = viewer.pred_file(fid)
        picked = select_rows(f.rows, verdict=verdict, error=error, hardness=hardness, db=db, q=q, sort=sort, order=order)
        return {"file": fid, "total": len(picked), "all": len(f.rows), "offset": offset,
                "rows": [r.brief() for r in picked[offset: offset + limit]], "facets": viewer.facets(f)}

    @app.get("/api/files/{fid}/rows/{pos}", dependencies=[auth])
    async def one(fid: int, pos: int) -> dict[str, Any]:
        f = viewer.pred_file(fid)
        if not 0 <= pos < len(f.rows):
            raise ApiError(404, f"file {fid} has no row {pos} (it has {len(f.rows)})", code="not_found")
        return await asyncio.to_thread(open_row, viewer, f, f.rows[pos])

    @app.get("/api/diff", dependencies=[auth])
    async def ab(a: int, b: int) -> dict[str, Any]:
        return diff(viewer.pred_file(a), viewer.pred_file(b))

    @app.get("/blob/{bid}", dependencies=[auth])
    async def blob(bid: int) -> Any:
        if not 0 <= bid < len(cat.files):
            raise ApiError(404, f"no file {bid}", code="not_found")
        path = cat.files[bid]
        if not inside(path, cat.roots):  # re-pointed at something outside since start-up
            raise ApiError(404, f"file {bid} is no longer inside the folders given", code="not_found")
        if path.suffix == ".png":
            return FileResponse(path, media_type="image/png")
        return FileResponse(path, media_type="text/html", headers={"Content-Security-Policy": REPORT_CSP})

    return app
