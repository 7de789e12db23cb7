"""A comparison's report: ``report.json``, a Markdown table, and a self-contained ``report.html``.

``markdown_table(report)`` is the table articles print, measured: one row per method with steps,
median seconds per step, training time, generated and trained tokens per second, peak memory,
EX and EM overall, EX per hardness, the share of predictions that execute, and the last reward.
``html_page(report)`` holds the same tables and the figures of ``sqlcoach.runtime.plots`` as inline
PNG data URIs, with inline CSS and no script: the file opens from disk with no server and no
network. ``write_reports(report, out)`` writes all three files.

Two more tables follow the methods: **cost** (``cost_cells``: $ to train beside the machine-hours
of a trained row or the trained tokens of a fine-tuned API model, $ per 1,000 predictions and
tokens per question, from the config's ``prices``) and **plans** (``plan_cells``:
from each evaluation's EXPLAIN QUERY PLAN audit, how often a method's SQL is correct but plans
worse than the gold's, and the plan features of its predictions against the golds').
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

from sqlcoach.config.compare import api_training_usd
from sqlcoach.metrics.stats import bootstrap_mean, paired_difference
from sqlcoach.runtime import plots
from sqlcoach.types import HARDNESS_LEVELS

#: the hardness levels "complex-query EX" counts (seed 000's complex-query column)
COMPLEX = ("hard", "extra")

COLUMNS = (
    "method", "status", "steps", "s/step (median)", "train s", "total s", "gen tok/s", "trained tok/s", "peak MiB",
    "EX", "EM", *(f"EX {lv}" for lv in HARDNESS_LEVELS), "executes", "EX seen", "executes seen", "last reward",
)


def _pct(x: Any) -> str:
    return "-" if not isinstance(x, (int, float)) else f"{100 * x:.1f}"


def _num(x: Any, fmt: str = "{:.3g}") -> str:
    return "-" if not isinstance(x, (int, float)) else fmt.format(x)


def method_cells(row: dict[str, Any], show_seed: bool = False) -> list[str]:
    """The table cells of one method row (``report["methods"][i]``), in ``COLUMNS`` order
    (``show_seed``: the run's seed after its name, when the comparison ran several)."""
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
        row.get("name", "?") + ("" if row.get("method") in (None, row.get("name")) else f" ({row['method']})")
        + (f" seed {row['seed']}" if show_seed and row.get("seed") is not None else ""),
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


COST_COLUMNS = ("method", "EX", "questions", "$ to train", "train hours", "trained tokens", "$ per 1,000 predictions",
                "tokens per question (in+out)", "priced as")


def _usd(x: float | None) -> str:
    return "-" if x is None else (f"{x:.4f}" if x < 1 else f"{x:.2f}")


def cost_cells(row: dict[str, Any], prices: dict[str, Any] | None) -> list[str]:
    """One row of the cost table (``COST_COLUMNS``); a price the config does not give is ``-``.

    Trained methods: train hours = (preparation + training process seconds) / 3600 (GPU- or
    CPU-hours of the machine ``hardware`` names), $ to train = train hours x ``train_per_hour``;
    $ per 1,000 predictions = prediction seconds per question x 1000 / 3600 x
    ``predict_per_hour`` (generation only: model loading is not a per-prediction cost).
    API methods: trained tokens = the price entry's ``trained_tokens``, $ to train =
    ``config.compare.api_training_usd`` (trained tokens x ``train_per_m`` / 1e6, else
    ``train_usd``); $ per 1,000 predictions = the mean prompt and completion tokens per question
    (from the responses' usage) x $ per 1M tokens x 1000.
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
    train_usd = per_1k = hours = trained = None
    priced = "-"
    if is_api:
        spec = row.get("config") or {}
        api = prices.get("api") or {}
        price = api.get(row.get("name")) or api.get(spec.get("model"))
        if price:
            priced = f"${price['input_per_m']:g}/${price['output_per_m']:g} per 1M tokens in/out"
            trained = int(price.get("trained_tokens") or 0) or None
            if trained:
                priced += f", training ${float(price.get('train_per_m') or 0):g} per 1M tokens"
            train_usd = api_training_usd(price)
            if tok != "-":
                per_q = (pin * price["input_per_m"] + pout * price["output_per_m"]) / 1e6 / per_q_n
                per_1k = per_q * 1000
    else:
        hw = prices.get("hardware") or "machine"
        tph, pph = prices.get("train_per_hour"), prices.get("predict_per_hour")
        secs = [t.get("prepare_seconds"), t.get("process_seconds")] if row.get("train") else []
        nums = [float(x) for x in secs if isinstance(x, (int, float))]
        hours = sum(nums) / 3600 if nums else None
        if tph is not None and hours is not None:
            train_usd = hours * tph
        ps = ev.get("predict_seconds")
        if pph is not None and isinstance(ps, (int, float)) and n:
            per_1k = ps / n * 1000 / 3600 * pph
        if tph is not None or pph is not None:
            priced = f"{hw}: " + ", ".join(f"{k} ${v:g}/h" for k, v in (("train", tph), ("predict", pph)) if v is not None)
    return [row.get("name", "?"), _pct(s.get("ex")), str(n) if n is not None else "-", _usd(train_usd),
            _num(hours, "{:.3f}"), f"{trained:,}" if trained else "-", _usd(per_1k), tok, priced]


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
    ok = [r for r in report["methods"] if r.get("status") == "ok"]
    multi = _multi_seed(report)

    def named(cells: list[str] | None, r: dict[str, Any]) -> list[str] | None:  # one row per run: say whose seed
        if cells and multi and r.get("seed") is not None:
            cells = [f"{cells[0]} seed {r['seed']}", *cells[1:]]
        return cells

    costs = [named(cost_cells(r, prices), r) for r in ok]
    plans = [c for c in (named(plan_cells(r), r) for r in ok) if c]
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
    multi = _multi_seed(report)
    for row in report["methods"]:
        cells = [c.replace("|", "\\|") for c in method_cells(row, multi)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _multi_seed(report: dict[str, Any]) -> bool:
    return len((report.get("across_seeds") or {}).get("seeds") or []) > 1


ACROSS_COLUMNS = ("method", "runs", "EX % [95% CI]", "complex EX % (hard+extra)", "diff to control, points [95% CI]",
                  "p (bootstrap)", "p (McNemar)", "executes %", "s/step", "train s", "total s", "peak MiB")


def _ci(e: dict[str, Any] | None, scale: float = 100.0, signed: bool = False) -> str:
    if not e:
        return "-"
    f = "{:+.1f}" if signed else "{:.1f}"
    return f"{f.format(scale * e['mean'])} [{f.format(scale * e['lo'])}, {f.format(scale * e['hi'])}]"


def across_cells(row: dict[str, Any]) -> list[str]:
    """Cells of one ``across_seeds`` row, in ``ACROSS_COLUMNS`` order."""
    vc = row.get("vs_control")
    return [
        row["name"], str(row["runs"]), _ci(row["ex"]), _ci(row.get("complex_ex")), _ci(vc, signed=True),
        _num(vc["p_bootstrap"], "{:.3g}") if vc else "-", _num(vc["p_mcnemar"], "{:.3g}") if vc else "-",
        _pct(row.get("executes")), _num(row.get("median_step_seconds"), "{:.3f}"),
        _num(row.get("train_seconds"), "{:.0f}"), _num(row.get("total_seconds"), "{:.0f}"), _num(row.get("peak_mb"), "{:.0f}"),
    ]


def across_markdown(report: dict[str, Any]) -> str:
    """The per-method summary over seeds (``across_seeds``) as Markdown, with a caption saying what
    the intervals resample; per-database EX as a second table. Empty when there is none."""
    agg = report.get("across_seeds") or {}
    rows = agg.get("rows") or []
    if not rows:
        return ""
    lines = ["## Across seeds", "", "| " + " | ".join(ACROSS_COLUMNS) + " |", "|" + "|".join("---" for _ in ACROSS_COLUMNS) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in across_cells(r)) + " |" for r in rows]
    q = rows[0]["ex"]["questions"]
    lines += ["", f"Seeds {agg.get('seeds')}; {q} questions. EX: mean over runs and questions, 95% percentile bootstrap "
              "resampling questions and seeds. Difference: each method minus the control "
              f"({agg.get('control') or 'none'}) on the same questions (paired bootstrap; McNemar exact, largest p over "
              "seed pairs). The start row is one greedy evaluation standing for every seed."
              + (f" Left out (failed or no per-question outcomes): {agg['failed']}." if agg.get("failed") else ""), ""]
    dbs = sorted({db for r in rows for db in r.get("by_db", {})})
    if dbs:
        lines += ["### EX per database (%, mean over seeds)", "", "| method | " + " | ".join(dbs) + " |",
                  "|---|" + "|".join("---" for _ in dbs) + "|"]
        lines += ["| " + r["name"] + " | " + " | ".join(_pct(r.get("by_db", {}).get(db)) for db in dbs) + " |" for r in rows]
        lines.append("")
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
    across = across_markdown(report)
    if across:
        parts += [across, ""]
    s000 = seed000_markdown(report)
    if s000:
        parts += [s000, ""]
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
    multi = _multi_seed(report)
    for row in report["methods"]:
        cells = method_cells(row, multi)
        ok = row.get("status") == "ok"
        p.append("<tr>" + "".join(
            f"<td class='l{'' if ok or i != 1 else ' bad'}'>{esc(c)}</td>" if i < 2 else f"<td>{esc(c)}</td>"
            for i, c in enumerate(cells)) + "</tr>")
    p.append("</table>")
    p += _across_html(report)
    s000 = seed000_markdown(report)
    if s000:  # the same table, rendered from its Markdown rows
        md = [line for line in s000.splitlines() if line.startswith("|")]
        p.append("<h2>Seed 000's table, measured</h2><table>")
        for i, line in enumerate(md):
            if i == 1:
                continue
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            tag = "th" if i == 0 else "td"
            p.append("<tr>" + "".join(f"<{tag} class='l'>{esc(c)}</{tag}>" if j == 0 else f"<{tag}>{esc(c)}</{tag}>"
                                      for j, c in enumerate(cells)) + "</tr>")
        p.append("</table>")
        p.append(f"<p>{esc(next(x for x in s000.splitlines() if x.startswith('Claimed')))}</p>")
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
    seeds = (report.get("across_seeds") or {}).get("seeds") or []
    # per-run figures show the first seed's runs (one bar or curve per method); the intervals are above
    figs = plots.all_figures([r for r in report["methods"] if r.get("seed") in (None, *seeds[:1])])
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


def _across_html(report: dict[str, Any]) -> list[str]:
    """The ``across_seeds`` tables and the EX-with-interval figure (error bars) as HTML parts."""
    esc = html.escape
    agg = report.get("across_seeds") or {}
    rows = agg.get("rows") or []
    if not rows:
        return []
    p = ["<h2>Across seeds</h2><table><tr>" + "".join(f"<th>{esc(c)}</th>" for c in ACROSS_COLUMNS) + "</tr>"]
    for r in rows:
        p.append("<tr>" + "".join(f"<td class='l'>{esc(c)}</td>" if i == 0 else f"<td>{esc(c)}</td>"
                                  for i, c in enumerate(across_cells(r))) + "</tr>")
    p.append("</table>")
    md = across_markdown(report).split("\n")
    cap = next((line for line in md if line.startswith("Seeds ")), "")
    p.append(f"<p>{esc(cap)}</p>")
    png = plots.ex_intervals(rows)
    if png:
        p.append(f"<figure><img alt='EX with 95% intervals' src='{plots.data_uri(png)}'><figcaption>EX (%) per method, "
                 "mean with its 95% bootstrap interval (questions and seeds); the control's mean as a line</figcaption></figure>")
    dbs = sorted({db for r in rows for db in r.get("by_db", {})})
    if dbs:
        p.append("<h3>EX per database (%, mean over seeds)</h3><table><tr><th class='l'>method</th>"
                 + "".join(f"<th>{esc(db)}</th>" for db in dbs) + "</tr>")
        for r in rows:
            p.append(f"<tr><td class='l'>{esc(r['name'])}</td>" + "".join(f"<td>{_pct(r.get('by_db', {}).get(db))}</td>" for db in dbs) + "</tr>")
        p.append("</table>")
    return p


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


def _median(xs: list[float]) -> float | None:
    xs = sorted(x for x in xs if isinstance(x, (int, float)))
    if not xs:
        return None
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2


def _mean(xs: list[Any]) -> float | None:
    xs = [x for x in xs if isinstance(x, (int, float))]
    return sum(xs) / len(xs) if xs else None


def _ex_rows(runs: list[dict[str, Any]], keep: Any = None) -> list[list[int]]:
    """Per-seed 0/1 EX rows of the questions ``keep(hardness)`` admits (all when ``None``)."""
    out = []
    for r in runs:
        pq = r["eval"]["per_question"]
        out.append([x for x, h in zip(pq["ex"], pq["hardness"]) if keep is None or keep(h)])
    return out


def across_seeds(rows: list[dict[str, Any]], seeds: list[int], control: str | None, *,
                 replicates: int = 2000) -> dict[str, Any]:
    """Each method's runs over ``seeds`` in one row: EX mean with a 95% bootstrap interval over
    questions and seeds (``metrics.stats.bootstrap_mean``), complex-query EX (hard + extra), the
    paired difference to ``control`` on the same questions (bootstrap interval and p-value, exact
    McNemar), median s/step over the runs, mean training and total time, the largest peak memory,
    the execution rate, and EX per database (mean over seeds). The start row is deterministic
    (greedy decoding of one checkpoint): its one evaluation stands for every seed. Runs without
    per-question outcomes (results written before they were kept) or that failed are left out and
    counted in ``failed``."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    failed: dict[str, int] = {}
    for r in rows:
        ok = r.get("status") == "ok" and (r.get("eval") or {}).get("per_question")
        if ok:
            by_name.setdefault(r["name"], []).append(r)
        else:
            failed[r["name"]] = failed.get(r["name"], 0) + 1
    ctrl_runs = by_name.get(control or "", [])
    out_rows = []
    for name, runs in by_name.items():
        ex = _ex_rows(runs)
        est = bootstrap_mean(ex, replicates=replicates)
        cx = _ex_rows(runs, lambda h: h in COMPLEX)
        cx_est = bootstrap_mean(cx, replicates=replicates) if cx and cx[0] else None
        row: dict[str, Any] = {
            "name": name, "method": runs[0].get("method"), "runs": len(runs),
            "seeds": [r.get("seed") for r in runs], "ex": est.as_dict(),
            "complex_ex": cx_est.as_dict() if cx_est else None,
            "executes": _mean([(r["eval"].get("summary") or {}).get("executes") for r in runs]),
            "median_step_seconds": _median([(r.get("train") or {}).get("median_step_seconds") for r in runs]),
            "train_seconds": _mean([(r.get("train") or {}).get("seconds") for r in runs]),
            "total_seconds": _mean([total_seconds(r) for r in runs]),
            "peak_mb": max((m for m in (plots.peak_memory(r)[0] for r in runs) if m is not None), default=None),
            "by_db": _by_db_mean(runs),
        }
        if ctrl_runs and name != control:
            c = _ex_rows(ctrl_runs)
            if len(c[0]) == len(ex[0]):
                row["vs_control"] = dataclasses_dict(paired_difference(ex, c, replicates=replicates))
        out_rows.append(row)
    return {"seeds": seeds, "control": control if ctrl_runs else None, "rows": out_rows, "failed": failed}


def dataclasses_dict(x: Any) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(x)


def _by_db_mean(runs: list[dict[str, Any]]) -> dict[str, float]:
    dbs: dict[str, list[float]] = {}
    for r in runs:
        for db, d in (r["eval"].get("by_db") or {}).items():
            dbs.setdefault(db, []).append(d["ex"])
    return {db: sum(v) / len(v) for db, v in sorted(dbs.items())}


#: What seed 000 asserts for PPO / DPO / GRPO on one GPU (accuracy %, complex-query F1, execution
#: success %, s per step, GB): the report sets the measured values beside these.
SEED000 = {
    "ppo": {"accuracy": "65-70", "complex": "60 (F1)", "executes": "82", "s/step": "3.2", "memory": "18 GB"},
    "dpo": {"accuracy": "68-72", "complex": "62 (F1)", "executes": "85", "s/step": "2.8", "memory": "16 GB"},
    "grpo": {"accuracy": "71-75", "complex": "68 (F1)", "executes": "89", "s/step": "2.1", "memory": "12 GB"},
}


def steps_to_fraction(curve: list[list[float]], frac: float = 0.95) -> float | None:
    """The first step at which the reward curve (``[[step, value], ...]``, smoothed over a window of
    a tenth of its points) has covered ``frac`` of its way from its first to its final smoothed
    value; ``None`` for fewer than 3 points or a curve that never rose."""
    if len(curve) < 3:
        return None
    w = max(1, len(curve) // 10)
    vals = [sum(p[1] for p in curve[max(0, i - w + 1): i + 1]) / len(curve[max(0, i - w + 1): i + 1]) for i in range(len(curve))]
    first, last = vals[0], vals[-1]
    if last <= first:
        return None
    target = first + frac * (last - first)
    return next(curve[i][0] for i, v in enumerate(vals) if v >= target)


def seed000_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """For each of PPO, DPO and GRPO (the across-seeds row named after the method, else the first
    of that method): the measured figures seed 000's table asserts, beside its claims."""
    agg = {r["name"]: r for r in (report.get("across_seeds") or {}).get("rows") or []}
    runs = [r for r in report.get("methods") or [] if r.get("status") == "ok"]
    out = []
    for kind, claim in SEED000.items():
        row = agg.get(kind) or next((r for r in agg.values() if r.get("method") == kind), None)
        if row is None:
            continue
        mine = [r for r in runs if r.get("name") == row["name"]]
        to95 = [steps_to_fraction((r.get("train") or {}).get("reward_curve") or []) for r in mine]
        to95 = [x for x in to95 if x is not None]
        step95 = _median(to95)
        sps = row.get("median_step_seconds")
        out.append({"method": kind, "row": row["name"], "claim": claim, "ex": row["ex"], "complex_ex": row.get("complex_ex"),
                    "executes": row.get("executes"), "s_per_step": sps, "peak_mb": row.get("peak_mb"),
                    "total_seconds": row.get("total_seconds"), "steps_to_95": step95,
                    "seconds_to_95": step95 * sps if step95 is not None and sps else None})
    return out


def seed000_markdown(report: dict[str, Any]) -> str:
    """Seed 000's table with the measured values (empty when no PPO/DPO/GRPO row was scored)."""
    rows = seed000_rows(report)
    if not rows:
        return ""
    head = ["method", "EX % measured [95% CI]", "accuracy claimed", "complex EX % measured", "complex claimed",
            "executes % measured", "claimed", "s/step measured", "claimed", "peak MiB measured", "claimed",
            "steps (s) to 95% of final reward", "total s"]
    lines = ["## Seed 000's table, measured", "", "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        c = r["claim"]
        to95 = "-" if r["steps_to_95"] is None else f"{r['steps_to_95']:.0f} ({_num(r['seconds_to_95'], '{:.0f}')})"
        lines.append("| " + " | ".join([
            f"{r['method']} ({r['row']})", _ci(r["ex"]), c["accuracy"], _ci(r["complex_ex"]), c["complex"],
            _pct(r["executes"]), c["executes"], _num(r["s_per_step"], "{:.3f}"), c["s/step"], _num(r["peak_mb"], "{:.0f}"),
            c["memory"], to95, _num(r["total_seconds"], "{:.0f}")]) + " |")
    lines += ["", "Claimed: seed 000's figures (a 7B-class model on one GPU, its own data; complex-query F1 is not EX). "
              "Measured: this comparison (machine and model in the caption); complex EX is EX on hard + extra questions; "
              "steps to 95%: the first step where the smoothed reward curve covers 95% of its rise (median over seeds).", ""]
    return "\n".join(lines)

