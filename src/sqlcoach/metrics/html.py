"""``sqlcoach evaluate --html PAGE``: the summary as one self-contained HTML page.

Inline CSS, no script, no image: the file opens from disk with no server and no network. It holds
the EX/EM table by hardness, the error classes, the EXPLAIN QUERY PLAN audit (feature counts of
predictions and golds) and the first examples whose prediction is correct but plans worse than
the gold (``sqlcoach.metrics.plans.worse``), with both SQL texts and the features that differ, and
for a sampled run its headroom table (``sqlcoach.metrics.headroom``).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1300px;margin:1.5em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:90%}td,th{border:1px solid #bbb;padding:3px 7px;"
    "text-align:right}th{background:#e8e8e8}td.l,th.l{text-align:left}td.code{text-align:left;font-family:monospace;"
    "font-size:85%;max-width:520px}pre{background:#f4f4f4;padding:0.8em;overflow:auto;font-size:85%}"
)


def _fmt(x: Any) -> str:
    return "-" if not isinstance(x, (int, float)) else f"{100 * x:.2f}"


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 1) -> str:
    esc = html.escape
    out = ["<table><tr>" + "".join(f"<th class='l'>{esc(h)}</th>" if i < left else f"<th>{esc(h)}</th>"
                                   for i, h in enumerate(head)) + "</tr>"]
    for r in rows:
        out.append("<tr>" + "".join(f"<td class='l'>{esc(str(c))}</td>" if i < left else f"<td>{esc(str(c))}</td>"
                                    for i, c in enumerate(r)) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def plans_table(plans: dict[str, Any]) -> str:
    """The plan-feature table (one row per feature) of a summary's ``plans`` block."""
    rows = [[k, v["pred"], v["gold"], v["pred_total"], v["gold_total"]] for k, v in plans["features"].items()]
    return _table(["feature", "predictions with it", "golds with it", "count in predictions", "count in golds"], rows)


def headroom_html(head: dict[str, Any]) -> str:
    """The headroom section of a summary (``HeadroomTable.as_dict()``, ``sqlcoach.metrics.headroom``)."""
    levels = head["levels"]

    def cell(c: dict[str, Any]) -> str:
        return f"{_fmt(c['mean'])} [{_fmt(c['lo'])}, {_fmt(c['hi'])}]"

    body = [["questions", *(head["rows"][0]["cells"][lv]["questions"] for lv in levels), ""]]
    for r in head["rows"]:
        d = r.get("vs_greedy")
        vs = f"{100 * d['mean']:+.2f} [{100 * d['lo']:+.2f}, {100 * d['hi']:+.2f}] p={d['p_mcnemar']:.2g}" if d else ""
        body.append([r["name"], *(cell(r["cells"][lv]) for lv in levels), vs])
    return (f"<h2>Headroom of the sampled run</h2><p>{head['questions']} questions, {head['n']} samples each; greedy = "
            f"{html.escape(str(head['greedy']))}; % with 95% intervals (Wilson; bootstrap over questions for pass@k, "
            "k &lt; n); the last column is the paired difference from greedy.</p>"
            + _table(["", *levels, "vs greedy (all)"], body))


def summary_html(summary: dict[str, Any], rows: Sequence[dict[str, Any]] = (), *, title: str = "sqlcoach evaluate",
                 command: str | None = None, worst: int = 20) -> str:
    """The page (see the module docstring); ``rows`` are ``EvalReport.rows()`` (for the examples)."""
    esc = html.escape
    p = ["<!doctype html>", f"<html><head><meta charset='utf-8'><title>{esc(title)}</title>",
         f"<style>{_CSS}</style></head><body>", f"<h1>{esc(title)}</h1>"]
    if command:
        p.append(f"<pre>{esc(command)}</pre>")
    cols = [*summary.get("by_hardness", {}).items(), *summary.get("by_difficulty", {}).items(), ("all", summary["all"])]
    p.append("<h2>Accuracy</h2>")
    body = [["count", *(b["count"] for _, b in cols)], ["scored", *(b["scored"] for _, b in cols)],
            ["EX %", *(_fmt(b["ex"]) for _, b in cols)]]
    if summary["all"].get("em") is not None:
        body.append(["EM %", *(_fmt(b["em"]) for _, b in cols)])
    p.append(_table(["", *(n for n, _ in cols)], body))
    p.append(f"<p>executes: {_fmt(summary.get('executes'))}%</p>")
    errs = summary.get("errors") or {}
    p.append("<h2>Error classes</h2>" + _table(["class", "examples"], [[k, v] for k, v in errs.items()]))
    if summary.get("headroom"):
        p.append(headroom_html(summary["headroom"]))
    plans = summary.get("plans")
    if plans:
        share = plans.get("correct_but_worse_share")
        p.append("<h2>Plans (EXPLAIN QUERY PLAN)</h2>")
        p.append(f"<p>{plans['explained_pred']} predictions and {plans['explained_gold']} golds explained "
                 f"({plans.get('explain_errors', 0)} could not be planned). Correct but plans worse than the gold: "
                 f"<b>{plans['correct_but_worse']} of {plans['correct_compared']}</b>"
                 + (f" ({100 * share:.1f}%)" if share is not None else "") + f". Rule: {esc(plans['rule'])}.</p>")
        p.append(plans_table(plans))
        bad = [r for r in rows if r.get("plan_worse")][:worst]
        if bad:
            p.append(f"<h3>Correct but worse plans (first {len(bad)})</h3><table><tr><th>#</th><th class='l'>db</th>"
                     "<th class='l'>prediction</th><th class='l'>gold</th><th class='l'>features (pred / gold)</th></tr>")
            for r in bad:
                pp, gp = r["plan_pred"], r["plan_gold"]
                diff = ", ".join(f"{k} {pp[k]}/{gp[k]}" for k in pp if pp[k] != gp.get(k))
                p.append(f"<tr><td>{r['index']}</td><td class='l'>{esc(str(r['db_id']))}</td>"
                         f"<td class='code'>{esc(str(r['pred']))}</td><td class='code'>{esc(str(r['gold']))}</td>"
                         f"<td class='l'>{esc(diff)}</td></tr>")
            p.append("</table>")
    cfg = summary.get("config")
    if cfg:
        p.append("<h2>Settings</h2><pre>" + esc(json.dumps(cfg, indent=2)) + "</pre>")
    p.append("</body></html>")
    return "\n".join(p) + "\n"
