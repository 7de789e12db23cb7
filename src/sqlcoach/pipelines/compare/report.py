"""A comparison's report: ``report.json``, a Markdown table, and a self-contained ``report.html``.

``markdown_table(report)`` is the table articles print, measured: one row per method with steps,
median seconds per step, training time, generated and trained tokens per second, peak memory,
EX and EM overall, EX per hardness, the share of predictions that execute, and the last reward.
``html_page(report)`` holds the same tables and the figures of ``sqlcoach.runtime.plots`` as inline
PNG data URIs, with inline CSS and no script: the file opens from disk with no server and no
network. ``write_reports(report, out)`` writes all three files.

Sampling rows (``method: verifier``: the start samples n answers, selections choose) add a
**selection** table (``selection_table``: every selection's EX from the same samples, the
inference cost as samples x questions generations and seconds) and their **headroom** tables
(``headroom_tables``: greedy, each selection, pass@k, by hardness, with intervals;
``metrics.headroom``); ``adapt`` rows add an **adaptation** table (``adapt_table``: the questions
adapted on, steps, early stop); rows evaluated as agents (``eval_agent`` / a method's ``agent:``) are
marked ``[agent]`` in the methods table and add an **agent** table (``agent_table``: EX beside mean
turns, queries run, answers, recoveries, how trajectories ended, generation and execution time). When the comparison holds an ``adapt`` row every row is scored on
half B of the questions (``eval_half``) and the caption says so.

Two more tables follow the methods: **cost** (``cost_cells``: $ to train beside the machine-hours
of a trained row or the trained tokens of a fine-tuned API model, $ per 1,000 predictions and
tokens per question, from the config's ``prices``) and **plans** (``plan_cells``:
from each evaluation's EXPLAIN QUERY PLAN audit, how often a method's SQL is correct but plans
worse than the gold's, and the plan features of its predictions against the golds').

The report is a ``result.CompareReport`` (a ``report.json`` mapping of any version is read with
``CompareReport.of``); every table is a :class:`Table` (columns, cells, which columns align left)
rendered to Markdown by ``Table.markdown`` and to HTML by ``Table.html``: one model, two renderers.
The statistics (intervals, paired tests, steps to 95% of the reward) come from ``metrics.stats``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlcoach.config.compare import api_training_usd
from sqlcoach.metrics.stats import AcrossRow, median_of, steps_to_fraction
from sqlcoach.pipelines.compare.result import COMPLEX, CompareReport, MethodRow, peak_mb
from sqlcoach.runtime import plots
from sqlcoach.runtime.files import atomic_write
from sqlcoach.types import HARDNESS_LEVELS

__all__ = ["COMPLEX", "COLUMNS", "COST_COLUMNS", "PLAN_COLUMNS", "ACROSS_COLUMNS", "SELECTION_COLUMNS", "ADAPT_COLUMNS",
           "Table", "method_cells", "cost_cells", "plan_cells", "selection_table", "headroom_tables", "adapt_table",
           "agent_table", "AGENT_COLUMNS", "total_seconds", "markdown_table", "markdown", "html_page", "write_reports", "seed000_rows"]

COLUMNS = (
    "method", "status", "steps", "s/step (median)", "train s", "total s", "gen tok/s", "trained tok/s", "peak MiB",
    "EX", "EM", *(f"EX {lv}" for lv in HARDNESS_LEVELS), "executes", "EX seen", "executes seen", "last reward",
)


@dataclass
class Table:
    """One table of the report: ``columns`` and ``rows`` of cell text.

    HTML: cells of ``left`` columns align left (class ``l``), ``cell_class`` overrides a column's
    class (``code``), ``head_left`` says which header cells align left, ``bad`` marks cells
    ``(row, column)`` in red. Markdown escapes ``|`` inside cells, so no text can break a row."""

    columns: Sequence[str]
    rows: list[list[str]]
    left: frozenset[int] = frozenset({0})
    head_left: frozenset[int] = frozenset()
    cell_class: dict[int, str] = field(default_factory=dict)
    bad: set[tuple[int, int]] = field(default_factory=set)

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "|".join("---" for _ in self.columns) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in self.rows]
        return "\n".join(lines)

    def html(self, heading: str = "", *, header_own_line: bool = False) -> list[str]:
        """The table as lines of HTML: ``heading`` + ``<table>`` + the header row (on a line of its
        own with ``header_own_line``), one line per row, ``</table>``."""
        esc = html.escape

        def attr(cls: str | None) -> str:
            return f" class='{cls}'" if cls else ""

        head = "<tr>" + "".join(f"<th{attr('l' if j in self.head_left else None)}>{esc(c)}</th>"
                                for j, c in enumerate(self.columns)) + "</tr>"
        out = [f"{heading}<table>", head] if header_own_line else [f"{heading}<table>{head}"]
        for i, row in enumerate(self.rows):
            cells = []
            for j, c in enumerate(row):
                cls = self.cell_class.get(j) or ("l" if j in self.left else None)
                if (i, j) in self.bad:
                    cls = f"{cls} bad" if cls else "bad"
                cells.append(f"<td{attr(cls)}>{esc(c)}</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</table>")
        return out


def _pct(x: Any) -> str:
    return "-" if not isinstance(x, (int, float)) else f"{100 * x:.1f}"


def _num(x: Any, fmt: str = "{:.3g}") -> str:
    return "-" if not isinstance(x, (int, float)) else fmt.format(x)


def _row(row: MethodRow | dict[str, Any]) -> MethodRow:
    return MethodRow.from_dict(row)


def total_seconds(row: MethodRow | dict[str, Any]) -> float | None:
    """Everything the method cost in wall time (``MethodRow.total_seconds``)."""
    return _row(row).total_seconds()


def method_cells(row: MethodRow | dict[str, Any], show_seed: bool = False) -> list[str]:
    """The table cells of one method row, in ``COLUMNS`` order (``show_seed``: the run's seed
    after its name, when the comparison ran several)."""
    row = _row(row)
    t = row.train if row.train is not None and row.train.ok else None  # a failed training has no figures worth a cell
    ev = row.eval
    last = t.last_reward() if t else None

    def tr(name: str) -> Any:
        return getattr(t, name) if t else None

    def evv(name: str) -> Any:
        return getattr(ev, name) if ev else None

    return [
        row.name + ("" if row.method in (None, row.name) else f" ({row.method})")
        + (" [agent]" if ev is not None and ev.agent else "")
        + (f" seed {row.seed}" if show_seed and row.seed is not None else ""),
        row.status or "?",
        _num(tr("global_step"), "{:d}") if isinstance(tr("global_step"), int) else "-",
        _num(tr("median_step_seconds"), "{:.3f}"),
        _num(tr("seconds"), "{:.0f}"),
        _num(row.total_seconds(), "{:.0f}"),
        _num(tr("generated_tokens_per_s"), "{:.0f}"),
        _num(tr("trained_tokens_per_s"), "{:.0f}"),
        _num(peak_mb(row), "{:.0f}"),
        _pct(evv("ex")),
        _pct(evv("em")),
        *(_pct(ev.at(lv) if ev else None) for lv in HARDNESS_LEVELS),
        _pct(evv("executes")),
        _pct(evv("seen_ex")),
        _pct(evv("seen_executes")),
        _num(last, "{:.3f}") if last is not None else "-",
    ]


COST_COLUMNS = ("method", "EX", "questions", "$ to train", "train hours", "trained tokens", "$ per 1,000 predictions",
                "tokens per question (in+out)", "priced as")


def _usd(x: float | None) -> str:
    return "-" if x is None else (f"{x:.4f}" if x < 1 else f"{x:.2f}")


def cost_cells(row: MethodRow | dict[str, Any], prices: dict[str, Any] | None) -> list[str]:
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
    row = _row(row)
    prices = prices or {}
    ev = row.eval
    n = ev.questions if ev else None
    is_api = row.method == "api"
    pin, pout = (ev.prompt_tokens, ev.generated_tokens) if ev else (None, None)
    per_q_n = (ev.usage_known if ev else None) if is_api else n
    tok = (f"{pin / per_q_n:.0f}+{pout / per_q_n:.0f}"
           if isinstance(pin, (int, float)) and isinstance(pout, (int, float)) and per_q_n else "-")
    train_usd = per_1k = hours = trained = None
    priced = "-"
    if is_api:
        api = prices.get("api") or {}
        price = api.get(row.name) or api.get((row.config or {}).get("model"))
        if price:
            priced = f"${price['input_per_m']:g}/${price['output_per_m']:g} per 1M tokens in/out"
            trained = int(price.get("trained_tokens") or 0) or None
            if trained:
                priced += f", training ${float(price.get('train_per_m') or 0):g} per 1M tokens"
            train_usd = api_training_usd(price)
            if tok != "-":
                per_1k = (pin * price["input_per_m"] + pout * price["output_per_m"]) / 1e6 / per_q_n * 1000
    else:
        hw = prices.get("hardware") or "machine"
        tph, pph = prices.get("train_per_hour"), prices.get("predict_per_hour")
        t = row.train
        nums = [float(x) for x in ([t.prepare_seconds, t.process_seconds] if t else []) if isinstance(x, (int, float))]
        hours = sum(nums) / 3600 if nums else None
        if tph is not None and hours is not None:
            train_usd = hours * tph
        ps = ev.predict_seconds if ev else None
        if pph is not None and isinstance(ps, (int, float)) and n:
            per_1k = ps / n * 1000 / 3600 * pph
        if tph is not None or pph is not None:
            priced = f"{hw}: " + ", ".join(f"{k} ${v:g}/h" for k, v in (("train", tph), ("predict", pph)) if v is not None)
    return [row.name, _pct(ev.ex if ev else None), str(n) if n is not None else "-", _usd(train_usd),
            _num(hours, "{:.3f}"), f"{trained:,}" if trained else "-", _usd(per_1k), tok, priced]


PLAN_COLUMNS = ("method", "correct", "compared with gold plan", "correct but worse plan", "share",
                "full scans pred/gold", "temp B-trees pred/gold", "automatic indexes pred/gold",
                "correlated subqueries pred/gold")
PLAN_NOTE = ("correct but worse plan: EX-correct, and at least as many full scans, temp B-trees, automatic "
             "indexes, correlated subqueries and loops as the gold's plan, more of one.")


def plan_cells(row: MethodRow | dict[str, Any]) -> list[str] | None:
    """One row of the plans table (``PLAN_COLUMNS``), ``None`` when the evaluation has no audit.
    Feature cells count the queries having the feature, among explained predictions / golds."""
    row = _row(row)
    pl = row.eval.plans if row.eval else None
    if not pl:
        return None
    f = pl["features"]
    correct = round((row.eval.ex or 0) * (row.eval.scored or 0))
    return [row.name, str(correct), str(pl["correct_compared"]), str(pl["correct_but_worse"]),
            _pct(pl.get("correct_but_worse_share")),
            *(f"{f[k]['pred']}/{f[k]['gold']}" for k in ("full_scans", "temp_btrees", "automatic_indexes",
                                                         "correlated_subqueries"))]


def cost_and_plan_tables(report: CompareReport | dict[str, Any]) -> tuple[Table | None, Table | None]:
    """The cost and plans tables (``None`` when empty): one row per successful run."""
    rep = CompareReport.of(report)
    prices = rep.config.get("prices")
    ok = [r for r in rep.methods if r.ok]
    multi = rep.multi_seed()

    def named(cells: list[str] | None, r: MethodRow) -> list[str] | None:  # one row per run: say whose seed
        if cells and multi and r.seed is not None:
            cells = [f"{cells[0]} seed {r.seed}", *cells[1:]]
        return cells

    costs = [c for c in (named(cost_cells(r, prices), r) for r in ok) if c]
    plans = [c for c in (named(plan_cells(r), r) for r in ok) if c]
    return (Table(COST_COLUMNS, costs, left=frozenset({0, len(COST_COLUMNS) - 1})) if costs else None,
            Table(PLAN_COLUMNS, plans) if plans else None)


def methods_table(report: CompareReport | dict[str, Any]) -> Table:
    """The main table: one row per method run (``COLUMNS``); a failed run's status in red."""
    rep = CompareReport.of(report)
    multi = rep.multi_seed()
    rows = [method_cells(r, multi) for r in rep.methods]
    return Table(COLUMNS, rows, left=frozenset({0, 1}), bad={(i, 1) for i, r in enumerate(rep.methods) if not r.ok})


def markdown_table(report: CompareReport | dict[str, Any]) -> str:
    """The comparison as a GitHub-flavoured Markdown table (EX/EM/executes in %)."""
    return methods_table(report).markdown()


ACROSS_COLUMNS = ("method", "runs", "EX % [95% CI]", "complex EX % (hard+extra)", "diff to control, points [95% CI]",
                  "p (bootstrap)", "p (McNemar)", "executes %", "s/step", "train s", "total s", "peak MiB")


def _ci(e: dict[str, Any] | None, scale: float = 100.0, signed: bool = False) -> str:
    if not e:
        return "-"
    f = "{:+.1f}" if signed else "{:.1f}"
    return f"{f.format(scale * e['mean'])} [{f.format(scale * e['lo'])}, {f.format(scale * e['hi'])}]"


def across_cells(row: AcrossRow | dict[str, Any]) -> list[str]:
    """Cells of one ``across_seeds`` row, in ``ACROSS_COLUMNS`` order."""
    r = row if isinstance(row, AcrossRow) else AcrossRow.from_dict(row)
    vc = r.vs_control
    return [
        r.name, str(r.runs), _ci(r.ex), _ci(r.complex_ex), _ci(vc, signed=True),
        _num(vc["p_bootstrap"], "{:.3g}") if vc else "-", _num(vc["p_mcnemar"], "{:.3g}") if vc else "-",
        _pct(r.executes), _num(r.median_step_seconds, "{:.3f}"),
        _num(r.train_seconds, "{:.0f}"), _num(r.total_seconds, "{:.0f}"), _num(r.peak_mb, "{:.0f}"),
    ]


def across_tables(report: CompareReport | dict[str, Any]) -> tuple[Table, Table | None, str] | None:
    """The per-method summary over seeds, EX per database (``None`` without databases) and the
    caption saying what the intervals resample; ``None`` when there is no summary."""
    rep = CompareReport.of(report)
    agg = rep.across_seeds
    if agg is None or not agg.rows:
        return None
    rows = agg.rows
    q = rows[0].ex["questions"]
    cap = (f"Seeds {agg.seeds}; {q} questions. EX: mean over runs and questions, 95% percentile bootstrap "
           "resampling questions and seeds. Difference: each method minus the control "
           f"({agg.control or 'none'}) on the same questions (paired bootstrap; McNemar exact, largest p over "
           "seed pairs). The start row is one greedy evaluation standing for every seed."
           + (f" Left out (failed or no per-question outcomes): {agg.failed}." if agg.failed else ""))
    dbs = sorted({db for r in rows for db in (r.by_db or {})})
    by_db = Table(("method", *dbs), [[r.name, *(_pct((r.by_db or {}).get(db)) for db in dbs)] for r in rows],
                  head_left=frozenset({0})) if dbs else None
    return Table(ACROSS_COLUMNS, [across_cells(r) for r in rows]), by_db, cap


def across_markdown(report: CompareReport | dict[str, Any]) -> str:
    """The per-method summary over seeds as Markdown, with its caption; per-database EX as a
    second table. Empty when there is none."""
    t = across_tables(report)
    if t is None:
        return ""
    table, by_db, cap = t
    lines = ["## Across seeds", "", table.markdown(), "", cap, ""]
    if by_db is not None:
        lines += ["### EX per database (%, mean over seeds)", "", by_db.markdown(), ""]
    return "\n".join(lines)


def caption(report: CompareReport | dict[str, Any]) -> str:
    """One paragraph: budget, evaluation set, machine, what the memory column means."""
    rep = CompareReport.of(report)
    cfg, m = rep.config, rep.machine
    n = rep.questions()
    budget = cfg.get("budget_value")
    bud = f"{budget:g} {cfg.get('budget')}" if isinstance(budget, (int, float)) else str(budget)
    half = (" of half B (question_bucket >= 50; half A is what the adapt rows adapted on, without labels, "
            "so every row is scored on questions no row adapted on)" if cfg.get("eval_half") == "b" else "")
    return (
        f"Budget per method: {bud}, from the start checkpoint {rep.start.get('path')}. "
        f"Evaluation: greedy (a verifier row: its headline selection among the start's samples), "
        f"{n if n is not None else '?'} {cfg.get('eval_split')} questions{half}, EX/EM/executes in %"
        + (f"; EX seen: {cfg.get('seen_eval_limit')} {cfg.get('seen_eval_split')} questions (databases seen in training). "
           if cfg.get("seen_eval_limit") else ". ")
        + f"Machine: {m.get('cpu_count')} CPU(s), {m.get('threads_per_method')} thread(s) per method; torch "
        f"{m.get('torch', '?')}, transformers {m.get('transformers', '?')}, trl {m.get('trl', '?')}. "
        "peak MiB: CUDA max allocated on a GPU, else the training process's peak RSS (model load included). "
        "train s: training proper; total s: preparation + training process + evaluation process. "
        "tok/s: per second of training time."
    )


SELECTION_COLUMNS = ("method", "selection", "EX %", "executes %", "samples x questions", "generations",
                     "predict s", "s/question")
SELECTION_NOTE = ("A verifier row evaluates the START: it samples n answers per question (temperature in the row) and each "
                  "rule chooses among the same samples; the verifier was trained by the row from the start on the "
                  "training split (its training figures are in the methods table). With headroom_n, every other row's "
                  "model also samples, for its headroom table. The selection marked * is the row's EX in the methods "
                  "table (greedy for a trained row); every other selection has its interval and paired test against the control in the "
                  "across-seeds table (named `row [selection]`). Inference cost: n generations per question (greedy: 1); "
                  "predict s: `predict --n N --select` with the headline selection (generation, executing every sample, "
                  "the verifier's scores), the same samples for every selection (a rule alone costs no verifier).")


def _runs(rep: CompareReport) -> list[tuple[str, MethodRow]]:
    """``(label, row)`` of every successful run (the label names the seed when there are several)."""
    multi = rep.multi_seed()
    return [(r.name + (f" seed {r.seed}" if multi and r.seed is not None else ""), r) for r in rep.methods if r.ok]


def selection_table(report: CompareReport | dict[str, Any]) -> Table | None:
    """One row per selection of every sampling run (``SELECTION_COLUMNS``), ``None`` without one."""
    rep = CompareReport.of(report)
    rows = []
    for label, r in _runs(rep):
        ev = r.eval
        sp = (ev.sampling if ev else None) or {}
        if not sp or not ev or not ev.selections:
            continue
        n, q = sp.get("n"), sp.get("questions")
        for sel, res in ev.selections.items():
            summ = res.get("summary") or {}
            greedy = sel == "greedy"
            secs = sp.get("greedy_seconds" if greedy else "sample_seconds")
            rows.append([
                label, sel + (" *" if sel == sp.get("select") else ""), _pct((summ.get("all") or {}).get("ex")),
                _pct(summ.get("executes")), f"1 x {q}" if greedy else f"{n} x {q} (T={sp.get('temperature')})",
                _num(q if greedy else sp.get("generations"), "{:d}") if isinstance(q, int) else "-",
                _num(secs, "{:.1f}"), _num(secs / q if isinstance(secs, (int, float)) and q else None, "{:.3f}"),
            ])
    return Table(SELECTION_COLUMNS, rows, left=frozenset({0, 1, 4})) if rows else None


def _est(c: dict[str, Any] | None) -> str:
    return "-" if not c else f"{c['mean']:.3f} [{c['lo']:.2f}, {c['hi']:.2f}]"


def headroom_tables(report: CompareReport | dict[str, Any]) -> list[tuple[str, Table]]:
    """``(title, table)`` of each sampling run's headroom (``metrics.headroom``'s rows: greedy,
    every selection, pass@k; one column per hardness level and all, each ``mean [95% interval]``,
    a first row of question counts, and the paired difference from greedy)."""
    rep = CompareReport.of(report)
    out = []
    for label, r in _runs(rep):
        h = r.eval.headroom if r.eval else None
        if not h or not h.get("rows"):
            continue
        levels = list(h.get("levels") or [])
        first = h["rows"][0]["cells"]
        rows = [["questions", *(str((first.get(lv) or {}).get("questions", "-")) for lv in levels), ""]]
        for hr in h["rows"]:
            d = hr.get("vs_greedy")
            diff = (f"{d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}] p={d['p_mcnemar']:.2g}" if d else "")
            rows.append([hr["name"], *(_est(hr["cells"].get(lv)) for lv in levels), diff])
        title = (f"{label}: {h.get('questions')} questions, {h.get('n')} samples each; greedy = {h.get('greedy')}; "
                 "95% intervals (Wilson; bootstrap over questions for pass@k, k < n); vs greedy: paired, McNemar p")
        out.append((title, Table(("figure", *levels, "vs greedy (all)"), rows, left=frozenset({0}))))
    return out


ADAPT_COLUMNS = ("method", "adapted on (half A)", "trained on", "held aside (watch)", "rewards", "steps",
                 "early stop", "rolled back to step", "held-aside answers changed")


def adapt_table(report: CompareReport | dict[str, Any]) -> Table | None:
    """One row per ``adapt`` run: what it adapted on and how the run ended (``None`` without one)."""
    rep = CompareReport.of(report)
    rows = []
    for label, r in _runs(rep):
        a = ((r.train.recipe_summary or {}).get("adapt") if r.train else None) or {}
        if not a:
            continue
        ad = a.get("adapted") or {}
        rows.append([label, str((r.train.recipe_config or {}).get("half_a_questions", "-")),  # type: ignore[union-attr]
                     str(ad.get("questions", "-")), str(ad.get("held_aside", "-")), _rewards_cell(ad),
                     str(ad.get("steps", "-")), a.get("early_stop") or "no", str(ad.get("rolled_back_to_step") or "-"),
                     f"{a.get('changed_count', '-')} of {a.get('held_count', '-')}"])
    return Table(ADAPT_COLUMNS, rows, left=frozenset({0, 4, 6})) if rows else None


def _rewards_cell(adapted: dict[str, Any]) -> str:
    """The rewards of an adapt run, each with its weight when not 1 (``verifier x0.5``)."""
    weights = adapted.get("reward_weights") or {}
    return ", ".join(r if float(weights.get(r, 1.0)) == 1.0 else f"{r} x{float(weights[r]):g}"
                     for r in adapted.get("rewards") or [])


ADAPT_NOTE = ("Adapt rows: `sqlcoach adapt` (label-free GRPO; rewards: consensus of the samples' results and/or a "
              "trained verifier's score; no gold SQL read) "
              "from the start on half A of the evaluation split's questions (question_bucket < 50), a share of them "
              "held aside for the collapse watch; every row of this report is scored on half B only.")


AGENT_COLUMNS = ("method", "EX", "protocol", "max turns", "mean turns", "queries run", "answered",
                 "recoveries (of first query failed)", "ends", "generation s", "execution s")


def agent_table(report: CompareReport | dict[str, Any]) -> Table | None:
    """One row per run evaluated as an agent (``EvalResult.agent``), ``None`` without one."""
    rep = CompareReport.of(report)
    rows = []
    for label, r in _runs(rep):
        a = (r.eval.agent if r.eval else None) or {}
        if not a:
            continue
        st = a.get("settings") or {}
        ends = ", ".join(f"{k} {v}" for k, v in sorted((a.get("finish") or {}).items()))
        rec = a.get("recoveries")
        rows.append([label, _pct(r.eval.ex), str(st.get("protocol", "-")), str(st.get("max_turns", "-")),  # type: ignore[union-attr]
                     _num(a.get("mean_turns"), "{:.2f}"), str(a.get("queries_run", "-")), str(a.get("answered", "-")),
                     "-" if rec is None else f"{rec} of {a.get('first_query_failed')}", ends or "-",
                     _num(a.get("generation_seconds"), "{:.1f}"), _num(a.get("execution_seconds"), "{:.2f}")])
    return Table(AGENT_COLUMNS, rows, left=frozenset({0, 2, 8})) if rows else None


AGENT_NOTE = ("Agent rows: each question answered by one greedy trajectory (`predict --agent`): the model may run "
              "queries in the sandbox and read their results before its final answer, which is the row's EX. A recovery "
              "is a trajectory whose first query failed and whose final answer is right.")


def markdown(report: CompareReport | dict[str, Any]) -> str:
    rep = CompareReport.of(report)
    parts = ["# sqlcoach compare", ""]
    if rep.command:
        parts += ["```", rep.command, "```", ""]
    parts += [markdown_table(rep), "", caption(rep), ""]
    across = across_markdown(rep)
    if across:
        parts += [across, ""]
    s000 = seed000_markdown(rep)
    if s000:
        parts += [s000, ""]
    sel = selection_table(rep)
    if sel is not None:
        parts += ["## Selection among samples", "", sel.markdown(), "", SELECTION_NOTE, ""]
    for title, table in headroom_tables(rep):
        parts += [f"### Headroom: {title}", "", table.markdown(), ""]
    ad = adapt_table(rep)
    if ad is not None:
        parts += ["## Label-free adaptation", "", ad.markdown(), "", ADAPT_NOTE, ""]
    ag = agent_table(rep)
    if ag is not None:
        parts += ["## Agent evaluation", "", ag.markdown(), "", AGENT_NOTE, ""]
    costs, plans = cost_and_plan_tables(rep)
    if costs:
        parts += ["## Cost", "", costs.markdown(), ""]
    if plans:
        parts += ["## Plans (EXPLAIN QUERY PLAN)", "", plans.markdown(), "", PLAN_NOTE, ""]
    return "\n".join(parts)


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1500px;margin:1.5em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:88%}td,th{border:1px solid #bbb;padding:3px 7px;text-align:right}"
    "th{background:#e8e8e8}td.l,th.l{text-align:left}td.code{text-align:left;font-family:monospace;font-size:85%}"
    "figure{display:inline-block;margin:0.5em;vertical-align:top}figure img{width:560px}figcaption{font-size:90%;color:#555}"
    "pre{background:#f4f4f4;padding:0.8em;overflow:auto;font-size:85%}.bad{color:#a00}"
)



def html_page(report: CompareReport | dict[str, Any]) -> str:
    """The whole report as one HTML file: tables, inline PNG figures, samples, the config."""
    rep = CompareReport.of(report)
    esc = html.escape
    p = ["<!doctype html>", "<html><head><meta charset='utf-8'><title>sqlcoach compare</title>",
         f"<style>{_CSS}</style></head><body>", "<h1>sqlcoach compare</h1>"]
    if rep.command:
        p.append(f"<pre>{esc(rep.command)}</pre>")
    p.append(f"<p>{esc(caption(rep))}</p>")
    p += methods_table(rep).html("<h2>Methods</h2>")
    p += _across_html(rep)
    s000 = seed000_table(rep)
    if s000 is not None:
        p += s000.html("<h2>Seed 000's table, measured</h2>", header_own_line=True)
        p.append(f"<p>{esc(SEED000_NOTE)}</p>")
    sel = selection_table(rep)
    if sel is not None:
        p += sel.html("<h2>Selection among samples</h2>")
        p.append(f"<p>{esc(SELECTION_NOTE)}</p>")
    for title, table in headroom_tables(rep):
        p += table.html(f"<h3>Headroom: {esc(title)}</h3>")
    ad = adapt_table(rep)
    if ad is not None:
        p += ad.html("<h2>Label-free adaptation</h2>")
        p.append(f"<p>{esc(ADAPT_NOTE)}</p>")
    ag = agent_table(rep)
    if ag is not None:
        p += ag.html("<h2>Agent evaluation</h2>")
        p.append(f"<p>{esc(AGENT_NOTE)}</p>")
    p.append("<h2>EM per hardness and error classes</h2>")
    p += _em_table(rep).html()
    costs, plans = cost_and_plan_tables(rep)
    for title, table in (("Cost", costs), ("Plans (EXPLAIN QUERY PLAN)", plans)):
        if table is not None:
            p += table.html(f"<h2>{esc(title)}</h2>")
    if plans is not None:
        p.append(f"<p>{PLAN_NOTE}</p>")
    p += _figures_html(rep)
    p.append("<h2>Samples (first dev questions)</h2>")
    for r in rep.methods:
        samples = (r.eval.samples if r.eval else None) or []
        if samples:
            rows = [[str(s.get("question")), str(s.get("pred")), str(s.get("gold")),
                     "yes" if s.get("ex") else (s.get("error") or "no")] for s in samples]
            p += Table(("question", "prediction", "gold", "EX"), rows, head_left=frozenset({0, 1, 2}),
                       cell_class={1: "code", 2: "code"}).html(f"<h3>{esc(r.name)}</h3>")
    p.append("<h2>Configuration</h2><pre>" + esc(json.dumps(rep.config, indent=2, default=str)) + "</pre>")
    p.append("</body></html>")
    return "\n".join(p) + "\n"


def _em_table(rep: CompareReport) -> Table:
    """EM per hardness and the error classes of every method (the HTML's second table)."""
    errs: list[str] = []
    for r in rep.methods:
        errs += [k for k in (r.eval.errors if r.eval else {}) if k not in errs]
    rows = []
    for r in rep.methods:
        ev = r.eval
        rows.append([r.name] + [_pct(ev.at(lv, "em") if ev else None) for lv in HARDNESS_LEVELS]
                    + [str((ev.errors if ev else {}).get(e, "-")) for e in errs])
    return Table(("method", *(f"EM {lv}" for lv in HARDNESS_LEVELS), *errs), rows)


def _figures_html(rep: CompareReport) -> list[str]:
    """Every figure of ``runtime.plots`` as an inline PNG; per-run figures show the first seed's
    runs (one bar or curve per method), the intervals are in the across-seeds figure."""
    esc = html.escape
    seeds = rep.seeds()
    figs = plots.all_figures([r.as_dict() for r in rep.methods if r.seed in (None, *seeds[:1])])
    if not figs:
        return []
    return ["<h2>Figures</h2>"] + [
        f"<figure><img alt='{esc(cap)}' src='{plots.data_uri(png)}'><figcaption>{esc(cap)}</figcaption></figure>"
        for cap, png in figs]


def _across_html(rep: CompareReport) -> list[str]:
    """The ``across_seeds`` tables and the EX-with-interval figure (error bars) as HTML parts."""
    esc = html.escape
    t = across_tables(rep)
    if t is None:
        return []
    table, by_db, cap = t
    p = table.html("<h2>Across seeds</h2>")
    p.append(f"<p>{esc(cap)}</p>")
    png = plots.ex_intervals([r.as_dict() for r in rep.across_seeds.rows])  # type: ignore[union-attr]
    if png:
        p.append(f"<figure><img alt='EX with 95% intervals' src='{plots.data_uri(png)}'><figcaption>EX (%) per method, "
                 "mean with its 95% bootstrap interval (questions and seeds); the control's mean as a line</figcaption></figure>")
    if by_db is not None:
        p += by_db.html("<h3>EX per database (%, mean over seeds)</h3>")
    return p


def write_reports(report: CompareReport | dict[str, Any], out: str | Path) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and ``report.html`` into ``out``; returns their paths."""
    rep = CompareReport.of(report)
    out = Path(out)
    paths = {"json": out / "report.json", "md": out / "report.md", "html": out / "report.html"}
    texts = {
        "json": json.dumps(rep.as_dict(), indent=2, default=str) + "\n",
        "md": markdown(rep),
        "html": html_page(rep),
    }
    for k, path in paths.items():
        atomic_write(path, texts[k])
    return paths


#: What seed 000 asserts for PPO / DPO / GRPO on one GPU (accuracy %, complex-query F1, execution
#: success %, s per step, GB): the report sets the measured values beside these.
SEED000 = {
    "ppo": {"accuracy": "65-70", "complex": "60 (F1)", "executes": "82", "s/step": "3.2", "memory": "18 GB"},
    "dpo": {"accuracy": "68-72", "complex": "62 (F1)", "executes": "85", "s/step": "2.8", "memory": "16 GB"},
    "grpo": {"accuracy": "71-75", "complex": "68 (F1)", "executes": "89", "s/step": "2.1", "memory": "12 GB"},
}
SEED000_COLUMNS = ("method", "EX % measured [95% CI]", "accuracy claimed", "complex EX % measured", "complex claimed",
                   "executes % measured", "claimed", "s/step measured", "claimed", "peak MiB measured", "claimed",
                   "steps (s) to 95% of final reward", "total s")
SEED000_NOTE = ("Claimed: seed 000's figures (a 7B-class model on one GPU, its own data; complex-query F1 is not EX). "
                "Measured: this comparison (machine and model in the caption); complex EX is EX on hard + extra questions; "
                "steps to 95%: the first step where the smoothed reward curve covers 95% of its rise (median over seeds).")


def seed000_rows(report: CompareReport | dict[str, Any]) -> list[dict[str, Any]]:
    """For each of PPO, DPO and GRPO (the across-seeds row named after the method, else the first
    of that method): the measured figures seed 000's table asserts, beside its claims."""
    rep = CompareReport.of(report)
    agg = {r.name: r for r in (rep.across_seeds.rows if rep.across_seeds else [])}
    runs = [r for r in rep.methods if r.ok]
    out = []
    for kind, claim in SEED000.items():
        row = agg.get(kind) or next((r for r in agg.values() if r.method == kind), None)
        if row is None:
            continue
        to95 = [steps_to_fraction((r.train.reward_curve if r.train else None) or []) for r in runs if r.name == row.name]
        step95 = median_of([x for x in to95 if x is not None])
        sps = row.median_step_seconds
        out.append({"method": kind, "row": row.name, "claim": claim, "ex": row.ex, "complex_ex": row.complex_ex,
                    "executes": row.executes, "s_per_step": sps, "peak_mb": row.peak_mb,
                    "total_seconds": row.total_seconds, "steps_to_95": step95,
                    "seconds_to_95": step95 * sps if step95 is not None and sps else None})
    return out


def seed000_table(report: CompareReport | dict[str, Any]) -> Table | None:
    """Seed 000's table with the measured values (``None`` when no PPO/DPO/GRPO row was scored)."""
    rows = seed000_rows(report)
    if not rows:
        return None
    cells = []
    for r in rows:
        c = r["claim"]
        to95 = "-" if r["steps_to_95"] is None else f"{r['steps_to_95']:.0f} ({_num(r['seconds_to_95'], '{:.0f}')})"
        cells.append([
            f"{r['method']} ({r['row']})", _ci(r["ex"]), c["accuracy"], _ci(r["complex_ex"]), c["complex"],
            _pct(r["executes"]), c["executes"], _num(r["s_per_step"], "{:.3f}"), c["s/step"], _num(r["peak_mb"], "{:.0f}"),
            c["memory"], to95, _num(r["total_seconds"], "{:.0f}")])
    return Table(SEED000_COLUMNS, cells, head_left=frozenset({0}))


def seed000_markdown(report: CompareReport | dict[str, Any]) -> str:
    """Seed 000's table as Markdown with its note (empty when there is none)."""
    table = seed000_table(report)
    if table is None:
        return ""
    return "\n".join(["## Seed 000's table, measured", "", table.markdown(), "", SEED000_NOTE, ""])
