"""EXPLAIN QUERY PLAN audit: is the plan of a prediction as sound as the gold's?

``explain_plans(pool, jobs)`` runs ``EXPLAIN QUERY PLAN <sql>`` for each ``(db_file, sql)`` through
the executor pool, i.e. in the same sandbox as the queries themselves (read-only connection,
authorizer, one statement, deadline, hard kill); EXPLAIN compiles the statement and runs none of
it. ``plan_features(rows)`` reads SQLite's plan lines (the ``detail`` column; wording of SQLite
3.36 and later, older ``SCAN TABLE t`` accepted too) into counts:

* ``full_scans``: ``SCAN t`` of a table with no index (CTEs, subqueries and ``CONSTANT ROW`` left out);
* ``index_scans``: ``SCAN t USING [COVERING] INDEX i`` (the whole index is read);
* ``temp_btrees`` and ``temp_btree_order_by`` / ``_group_by`` / ``_distinct``: ``USE TEMP B-TREE FOR ...``
  (a sort or de-duplication the query needs an extra pass for; ``UNION USING TEMP B-TREE`` etc.
  count in ``temp_btrees``);
* ``automatic_indexes``: ``AUTOMATIC [PARTIAL] [COVERING] INDEX`` (SQLite builds an index for this
  query only, because the schema has none it can use);
* ``correlated_subqueries``: ``CORRELATED SCALAR|LIST SUBQUERY`` (re-run for every outer row);
* ``loops``: ``SCAN`` + ``SEARCH`` lines, the loops of SQLite's nested-loop program.

``worse(pred, gold)``: the prediction's plan is worse than the gold's when it has at least as much
of every cost feature (``COST_FEATURES``) and strictly more of one (Pareto dominance: no weights
are invented). A plan that is better in one feature and worse in another is not called worse.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

FEATURES = ("full_scans", "index_scans", "temp_btrees", "temp_btree_order_by", "temp_btree_group_by",
            "temp_btree_distinct", "automatic_indexes", "correlated_subqueries", "loops")
#: the features ``worse`` compares (the per-clause temp B-tree counts are parts of ``temp_btrees``)
COST_FEATURES = ("full_scans", "temp_btrees", "automatic_indexes", "correlated_subqueries", "loops")

_SCAN = re.compile(r"^SCAN (?:TABLE )?(\S+)(.*)$")
_TEMP_FOR = re.compile(r"USE TEMP B-TREE FOR (.*)$")
_AUTO = re.compile(r"AUTOMATIC (?:PARTIAL )?(?:COVERING )?INDEX")
_CORR = re.compile(r"^CORRELATED (?:SCALAR|LIST) SUBQUERY")
_NAMED = re.compile(r"^(?:CO-ROUTINE|MATERIALIZE) (\S+)")


def plan_features(rows: Sequence[Sequence[Any]]) -> dict[str, int]:
    """Feature counts of one plan (``EXPLAIN QUERY PLAN`` rows ``(id, parent, notused, detail)``).

    Every pattern is tried only on lines that contain its fixed words (``str`` tests first): an
    evaluation reads ~2000 plans, and the regular expressions were most of its own CPU time."""
    f = dict.fromkeys(FEATURES, 0)
    details = [str(r[-1]) for r in rows]
    derived = {m.group(1) for d in details
               if d.startswith(("CO-ROUTINE ", "MATERIALIZE ")) and (m := _NAMED.match(d))}  # CTE / subquery names
    for d in details:
        scan = _SCAN.match(d) if d.startswith("SCAN ") else None
        if scan:
            f["loops"] += 1
            name, rest = scan.group(1), scan.group(2)
            if "INDEX" in rest and not _AUTO.search(rest):
                f["index_scans"] += 1
            elif name != "CONSTANT" and name not in derived and not name.startswith("("):
                f["full_scans"] += 1
        elif d.startswith("SEARCH "):
            f["loops"] += 1
        if "AUTOMATIC " in d and _AUTO.search(d):
            f["automatic_indexes"] += 1
        if "TEMP B-TREE" in d:
            f["temp_btrees"] += 1
            m = _TEMP_FOR.search(d)
            what = m.group(1) if m else ""
            if "ORDER BY" in what:
                f["temp_btree_order_by"] += 1
            elif "GROUP BY" in what:
                f["temp_btree_group_by"] += 1
            elif "DISTINCT" in what:
                f["temp_btree_distinct"] += 1
        if d.startswith("CORRELATED ") and _CORR.match(d):
            f["correlated_subqueries"] += 1
    return f


def worse(pred: dict[str, int], gold: dict[str, int]) -> bool:
    """True when ``pred`` Pareto-dominates ``gold`` in cost (see the module docstring)."""
    more = False
    for k in COST_FEATURES:
        p, g = pred.get(k, 0), gold.get(k, 0)
        if p < g:
            return False
        more = more or p > g
    return more


def explain_plans(pool: Any, jobs: Sequence[tuple[str, str] | None], *, cache: bool = False) -> list[dict[str, Any] | None]:
    """Features of each job's plan (``None`` for a ``None`` job); a query SQLite cannot plan gives
    ``{"error": class, "message": ...}`` (the sandbox's classes). Never raises for the SQL."""
    real = [(i, j) for i, j in enumerate(jobs) if j is not None]
    out: list[dict[str, Any] | None] = [None] * len(jobs)
    if not real:
        return out
    results = pool.run([(db, "EXPLAIN QUERY PLAN " + sql) for _, (db, sql) in real], cache=cache)
    for (i, _), res in zip(real, results):
        out[i] = plan_features(res.rows or ()) if res.ok else {"error": res.error, "message": res.message}
    return out


def _ok(p: Any) -> bool:
    return isinstance(p, dict) and "error" not in p


def summarize_plans(preds: Sequence[Any], golds: Sequence[Any], ex: Sequence[bool]) -> dict[str, Any]:
    """The ``plans`` block of a summary: per feature, how many explained predictions / golds have
    it (``pred``/``gold``) and its total count (``pred_total``/``gold_total``); how many correct
    predictions (EX) were compared with their gold's plan and how many of those plan worse."""
    pe = [p for p in preds if _ok(p)]
    ge = [g for g in golds if _ok(g)]
    feats = {k: {"pred": 0, "gold": 0, "pred_total": 0, "gold_total": 0} for k in FEATURES}
    for side, plans in (("pred", pe), ("gold", ge)):  # one pass per side, not four per feature
        total = side + "_total"
        for plan in plans:
            for k in FEATURES:
                v = plan[k]
                if v:
                    feat = feats[k]
                    feat[total] += v
                    feat[side] += v > 0
    pairs = [(p, g) for p, g, e in zip(preds, golds, ex) if e and _ok(p) and _ok(g)]
    n_worse = sum(worse(p, g) for p, g in pairs)
    return {
        "explained_pred": len(pe), "explained_gold": len(ge),
        "explain_errors": sum(isinstance(p, dict) and "error" in p for p in [*preds, *golds]),
        "features": feats,
        "correct_compared": len(pairs), "correct_but_worse": n_worse,
        "correct_but_worse_share": n_worse / len(pairs) if pairs else None,
        "rule": "worse = at least as many of every one of " + ", ".join(COST_FEATURES) + " and more of one",
    }


def format_plans(plans: dict[str, Any]) -> str:
    """The ``plans`` block as a few fixed-width lines (``sqlcoach evaluate``'s table)."""
    lines = [f"EXPLAIN QUERY PLAN: {plans['explained_pred']} predictions, {plans['explained_gold']} golds explained"
             + (f" ({plans['explain_errors']} could not be planned)" if plans.get("explain_errors") else "")]
    lines.append(f"{'feature':<24}{'pred':>8}{'gold':>8}{'pred n':>9}{'gold n':>9}")
    for k, v in plans["features"].items():
        lines.append(f"{k:<24}{v['pred']:>8}{v['gold']:>8}{v['pred_total']:>9}{v['gold_total']:>9}")
    share = plans.get("correct_but_worse_share")
    lines.append(f"correct but plans worse than the gold: {plans['correct_but_worse']} of {plans['correct_compared']}"
                 + (f" ({100 * share:.1f}%)" if share is not None else ""))
    return "\n".join(lines)
