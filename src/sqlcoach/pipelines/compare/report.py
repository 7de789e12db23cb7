"""A comparison's report: ``report.json``, a Markdown table, and a self-contained ``report.html``.

``markdown_table(report)`` is the table articles print, measured: one row per method with steps,
median seconds per step, training time, generated and trained tokens per second, peak memory,
EX and EM overall, EX per hardness, the share of predictions that execute, and the last reward.
``html_page(report)`` holds the same tables and the figures of ``sqlcoach.runtime.plots`` as inline
PNG data URIs, with inline CSS and no script: the file opens from disk with no server and no
network. ``write_reports(report, out)`` writes all three files.

Two more tables follow the methods: **cost** (``cost_cells``: $ to train, $ per 1,000
predictions and tokens per question, from the config's ``prices``) and **plans** (``plan_cells``:
from each evaluation's EXPLAIN QUERY PLAN audit, how often a method's SQL is correct but plans
worse than the gold's, and the plan features of its predictions against the golds').
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

from sqlcoach.runtime import plots
from sqlcoach.types import HARDNESS_LEVELS

COLUMNS = (
    "method", "status", "steps", "s/step (median)", "train s", "total s", "gen tok/s", "trained tok/s", "peak MiB",
    "EX", "EM", *(f"EX {lv}" for lv in HARDNESS_LEVELS), "executes", "EX seen", "executes seen", "last reward",
)


def _pct(x: Any) -> str:
    return "-" if not isinstance(x, (int, float)) else f"{100 * x:.1f}"


def _num(x: Any, fmt: str = "{:.3g}") -> str:
    return "-" if not isinstance(x, (int, float)) else fmt.format(x)


def method_cells(row: dict[str, Any]) -> list[str]:
    """The table cells of one method row (``report["methods"][i]``), in ``COLUMNS`` order."""
    t = row.get("train") or {}
    if t.get("status", "ok") != "ok":  # a failed training has no figures worth a cell
        t = {}
    ev = row.get("eval") or {}
    s = ev.get("summary") or {}
    status = row.get("status") or "?"
    mem, _ = plots.peak_memory(row)
    rc = t.get("reward_curve") or []
    by_h = s.get("by_hardness", {})
    return [
        row.get("name", "?") + ("" if row.get("method") in (None, row.get("name")) else f" ({row['method']})"),
        status,
        _num(t.get("global_step"), "{:d}") if isinstance(t.get("global_step"), int) else "-",
        _num(t.get("median_step_seconds"), "{:.3f}"),
        _num(t.get("seconds"), "{:.0f}"),
        _num(total_seconds(row), "{:.0f}"),
        _num(t.get("generated_tokens_per_s"), "{:.0f}"),
        _num(t.get("trained_tokens_per_s"), "{:.0f}"),
        _num(mem, "{:.0f}"),
        _pct((s.get("all") or {}).get("ex")),
        _pct((s.get("all") or {}).get("em")),
        *(_pct((by_h.get(lv) or {}).get("ex")) for lv in HARDNESS_LEVELS),
        _pct(s.get("executes")),
        _pct((((ev.get("seen") or {}).get("summary") or {}).get("all") or {}).get("ex")),
        _pct(((ev.get("seen") or {}).get("summary") or {}).get("executes")),
        _num(rc[-1][1], "{:.3f}") if rc else "-",
    ]


COST_COLUMNS = ("method", "EX", "questions", "$ to train", "$ per 1,000 predictions", "tokens per question (in+out)",
                "priced as")


def _usd(x: float | None) -> str:
    return "-" if x is None else (f"{x:.4f}" if x < 1 else f"{x:.2f}")


def cost_cells(row: dict[str, Any], prices: dict[str, Any] | None) -> list[str]:
    """One row of the cost table (``COST_COLUMNS``); a price the config does not give is ``-``.

    Trained methods: $ to train = (preparation + training process seconds) / 3600 x
    ``train_per_hour``; $ per 1,000 predictions = prediction seconds per question x 1000 / 3600 x
    ``predict_per_hour`` (generation only: model loading is not a per-prediction cost).
    API methods: $ to train = the price entry's ``train_usd``; $ per 1,000 predictions = the mean
    prompt and completion tokens per question (from the responses' usage) x $ per 1M tokens x 1000.
    Tokens per question: prompt + generated tokens over the evaluation questions."""
    prices = prices or {}
    t = row.get("train") or {}
    ev = row.get("eval") or {}
    n = ev.get("questions")
    s = (ev.get("summary") or {}).get("all") or {}
    is_api = row.get("method") == "api"
    pin, pout = ev.get("prompt_tokens"), ev.get("generated_tokens")
    per_q_n = ev.get("usage_known") if is_api else n
    tok = (f"{pin / per_q_n:.0f}+{pout / per_q_n:.0f}"
           if isinstance(pin, (int, float)) and isinstance(pout, (int, float)) and per_q_n else "-")
    train_usd = per_1k = None
    priced = "-"
    if is_api:
        spec = row.get("config") or {}
        api = prices.get("api") or {}
        price = api.get(row.get("name")) or api.get(spec.get("model"))
        if price:
            priced = f"${price['input_per_m']:g}/${price['output_per_m']:g} per 1M tokens in/out"
            train_usd = float(price.get("train_usd") or 0.0)
            if tok != "-":
                per_q = (pin * price["input_per_m"] + pout * price["output_per_m"]) / 1e6 / per_q_n
                per_1k = per_q * 1000
    else:
        hw = prices.get("hardware") or "machine"
        tph, pph = prices.get("train_per_hour"), prices.get("predict_per_hour")
        secs = [t.get("prepare_seconds"), t.get("process_seconds")] if row.get("train") else []
        nums = [float(x) for x in secs if isinstance(x, (int, float))]
        if tph is not None and nums:
            train_usd = sum(nums) / 3600 * tph
        ps = ev.get("predict_seconds")
        if pph is not None and isinstance(ps, (int, float)) and n:
            per_1k = ps / n * 1000 / 3600 * pph
        if tph is not None or pph is not None:
            priced = f"{hw}: " + ", ".join(f"{k} ${v:g}/h" for k, v in (("train", tph), ("predict", pph)) if v is not None)
    return [row.get("name", "?"), _pct(s.get("ex")), str(n) if n is not None else "-", _usd(train_usd), _usd(per_1k),
            tok, priced]


PLAN_COLUMNS = ("method", "correct", "compared with gold plan", "correct but worse plan", "share",
                "full scans pred/gold", "temp B-trees pred/gold", "automatic indexes pred/gold",
                "correlated subqueries pred/gold")


def plan_cells(row: dict[str, Any]) -> list[str] | None:
    """One row of the plans table (``PLAN_COLUMNS``), ``None`` when the evaluation has no audit.
    Feature cells count the queries having the feature, among explained predictions / golds."""
    s = ((row.get("eval") or {}).get("summary") or {})
    pl = s.get("plans")
    if not pl:
        return None
    f = pl["features"]
    correct = round(((s.get("all") or {}).get("ex") or 0) * ((s.get("all") or {}).get("scored") or 0))
    return [row.get("name", "?"), str(correct), str(pl["correct_compared"]), str(pl["correct_but_worse"]),
            _pct(pl.get("correct_but_worse_share")),
            *(f"{f[k]['pred']}/{f[k]['gold']}" for k in ("full_scans", "temp_btrees", "automatic_indexes",
                                                         "correlated_subqueries"))]


def _md(columns: tuple[str, ...], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def cost_and_plan_tables(report: dict[str, Any]) -> tuple[list[list[str]], list[list[str]]]:
    prices = (report.get("config") or {}).get("prices")
    costs = [cost_cells(r, prices) for r in report["methods"] if r.get("status") == "ok"]
    plans = [c for c in (plan_cells(r) for r in report["methods"] if r.get("status") == "ok") if c]
    return costs, plans


def total_seconds(row: dict[str, Any]) -> float | None:
    """Everything the method cost in wall time: preparation (e.g. DPO's pair mining) + the training
    process (model loading, data preparation and saving included) + the evaluation process."""
    t = row.get("train") or {}
    ev = row.get("eval") or {}
    parts = [t.get("prepare_seconds"), t.get("process_seconds"), ev.get("process_seconds")]
    nums = [float(x) for x in parts if isinstance(x, (int, float))]
    return sum(nums) if nums else None


def markdown_table(report: dict[str, Any]) -> str:
    """The comparison as a GitHub-flavoured Markdown table (EX/EM/executes in %)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    for row in report["methods"]:
        cells = [c.replace("|", "\\|") for c in method_cells(row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _questions(report: dict[str, Any]) -> int | None:
    for r in report["methods"]:
        if r.get("eval"):
            return r["eval"].get("questions")
    return None


def caption(report: dict[str, Any]) -> str:
    """One paragraph: budget, evaluation set, machine, what the memory column means."""
    cfg = report.get("config", {})
    m = report.get("machine", {})
    n = _questions(report)
    budget = cfg.get("budget_value")
    bud = f"{budget:g} {cfg.get('budget')}" if isinstance(budget, (int, float)) else str(budget)
    return (
        f"Budget per method: {bud}, from the start checkpoint {report.get('start', {}).get('path')}. "
        f"Evaluation: greedy, {n if n is not None else '?'} {cfg.get('eval_split')} questions, EX/EM/executes in %"
        + (f"; EX seen: {cfg.get('seen_eval_limit')} {cfg.get('seen_eval_split')} questions (databases seen in training). "
           if cfg.get("seen_eval_limit") else ". ")
        + 
        f"Machine: {m.get('cpu_count')} CPU(s), {m.get('threads_per_method')} thread(s) per method; torch "
        f"{m.get('torch', '?')}, transformers {m.get('transformers', '?')}, trl {m.get('trl', '?')}. "
        "peak MiB: CUDA max allocated on a GPU, else the training process's peak RSS (model load included). "
        "train s: training proper; total s: preparation + training process + evaluation process. "
        "tok/s: per second of training time."
    )


def markdown(report: dict[str, Any]) -> str:
    parts = ["# sqlcoach compare", ""]
    if report.get("command"):
        parts += ["```", report["command"], "```", ""]
    parts += [markdown_table(report), "", caption(report), ""]
    costs, plans = cost_and_plan_tables(report)
    if costs:
        parts += ["## Cost", "", _md(COST_COLUMNS, costs), ""]
    if plans:
        parts += ["## Plans (EXPLAIN QUERY PLAN)", "", _md(PLAN_COLUMNS, plans), "",
                  "correct but worse plan: EX-correct, and at least as many full scans, temp B-trees, automatic "
                  "indexes, correlated subqueries and loops as the gold's plan, more of one.", ""]
    return "\n".join(parts)


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1500px;margin:1.5em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:88%}td,th{border:1px solid #bbb;padding:3px 7px;text-align:right}"
    "th{background:#e8e8e8}td.l,th.l{text-align:left}td.code{text-align:left;font-family:monospace;font-size:85%}"
    "figure{display:inline-block;margin:0.5em;vertical-align:top}figure img{width:560px}figcaption{font-size:90%;color:#555}"
    "pre{background:#f4f4f4;padding:0.8em;overflow:auto;font-size:85%}.bad{color:#a00}"
)


def html_page(report: dict[str, Any]) -> str:
    """The whole report as one HTML string: tables, inline PNG figures, samples, the config."""
    esc = html.escape
    p = ["<!doctype html>", "<html><head><meta charset='utf-8'><title>sqlcoach compare</title>",
         f"<style>{_CSS}</style></head><body>", "<h1>sqlcoach compare</h1>"]
    if report.get("command"):
        p.append(f"<pre>{esc(report['command'])}</pre>")
    p.append(f"<p>{esc(caption(report))}</p>")
    p.append("<h2>Methods</h2><table><tr>" + "".join(f"<th>{esc(c)}</th>" for c in COLUMNS) + "</tr>")
    for row in report["methods"]:
        cells = method_cells(row)
        ok = row.get("status") == "ok"
        p.append("<tr>" + "".join(
            f"<td class='l{'' if ok or i != 1 else ' bad'}'>{esc(c)}</td>" if i < 2 else f"<td>{esc(c)}</td>"
            for i, c in enumerate(cells)) + "</tr>")
    p.append("</table>")
    # EM per hardness and error classes: the second table
    p.append("<h2>EM per hardness and error classes</h2>")
    errs: list[str] = []
    for r in report["methods"]:
        errs += [k for k in ((r.get("eval") or {}).get("summary") or {}).get("errors", {}) if k not in errs]
    head = ["method", *(f"EM {lv}" for lv in HARDNESS_LEVELS), *errs]
    p.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>")
    for r in report["methods"]:
        s = (r.get("eval") or {}).get("summary") or {}
        cells = [r.get("name", "?")] + [_pct(((s.get("by_hardness") or {}).get(lv) or {}).get("em")) for lv in HARDNESS_LEVELS]
        cells += [str((s.get("errors") or {}).get(e, "-")) for e in errs]
        p.append("<tr>" + "".join(f"<td class='l'>{esc(c)}</td>" if i == 0 else f"<td>{esc(c)}</td>"
                                  for i, c in enumerate(cells)) + "</tr>")
    p.append("</table>")
    costs, plans = cost_and_plan_tables(report)
    for title, cols, rows in (("Cost", COST_COLUMNS, costs), ("Plans (EXPLAIN QUERY PLAN)", PLAN_COLUMNS, plans)):
        if rows:
            p.append(f"<h2>{esc(title)}</h2><table><tr>" + "".join(f"<th>{esc(c)}</th>" for c in cols) + "</tr>")
            left = {0, len(cols) - 1} if title == "Cost" else {0}  # names and the "priced as" text
            for r in rows:
                p.append("<tr>" + "".join(f"<td class='l'>{esc(c)}</td>" if i in left else f"<td>{esc(c)}</td>"
                                          for i, c in enumerate(r)) + "</tr>")
            p.append("</table>")
    if plans:
        p.append("<p>correct but worse plan: EX-correct, and at least as many full scans, temp B-trees, automatic "
                 "indexes, correlated subqueries and loops as the gold's plan, more of one.</p>")
    figs = plots.all_figures(report["methods"])
    if figs:
        p.append("<h2>Figures</h2>")
        for cap, png in figs:
            p.append(f"<figure><img alt='{esc(cap)}' src='{plots.data_uri(png)}'><figcaption>{esc(cap)}</figcaption></figure>")
    p.append("<h2>Samples (first dev questions)</h2>")
    for r in report["methods"]:
        samples = (r.get("eval") or {}).get("samples") or []
        if not samples:
            continue
        p.append(f"<h3>{esc(r['name'])}</h3><table><tr><th class='l'>question</th><th class='l'>prediction</th>"
                 "<th class='l'>gold</th><th>EX</th></tr>")
        for s in samples:
            verdict = "yes" if s.get("ex") else (s.get("error") or "no")
            p.append(f"<tr><td class='l'>{esc(str(s.get('question')))}</td><td class='code'>{esc(str(s.get('pred')))}</td>"
                     f"<td class='code'>{esc(str(s.get('gold')))}</td><td>{esc(verdict)}</td></tr>")
        p.append("</table>")
    p.append("<h2>Configuration</h2><pre>" + esc(json.dumps(report.get("config"), indent=2, default=str)) + "</pre>")
    p.append("</body></html>")
    return "\n".join(p) + "\n"


def write_reports(report: dict[str, Any], out: str | Path) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and ``report.html`` into ``out``; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "md": out / "report.md", "html": out / "report.html"}
    texts = {
        "json": json.dumps(report, indent=2, default=str) + "\n",
        "md": markdown(report),
        "html": html_page(report),
    }
    for k, path in paths.items():
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(texts[k], encoding="utf-8")
        os.replace(tmp, path)
    return paths
