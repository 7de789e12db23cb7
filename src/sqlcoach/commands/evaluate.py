"""`sqlcoach evaluate`: score a prediction file the way the official scorers do, safely and fast.

    sqlcoach evaluate --gold dev_gold.sql --pred pred.sql --db database/ --table tables.json \\
        --etype all [--keep-distinct] [--plug-value] [--mode spider|bird] [--timeout 30] \\
        [--workers N] [--gold-errors count|exclude] [--per-example rows.jsonl] [--out summary.json] [--html page.html] [--no-explain] \\
        [--samples pred.jsonl] [--greedy greedy.sql] [--no-headroom]

A gold query that fails counts as a wrong prediction by default, as the official scorers have it
(``--gold-errors exclude`` leaves such examples out); the table shows the other figure beside it.
Multi-turn files (a blank line between interactions, as SParC/CoSQL's and ``sqlcoach predict``'s)
are scored per question and per interaction.

The flags of the official test-suite scorer are accepted under their own spelling too
(``--keep_distinct``, ``--plug_value``, ``--progress_bar_for_each_datapoint``), so switching is a
one-word change of the command. Imports nothing heavy: no torch, no transformers.

A sampled run (``sqlcoach predict --n 8``) also gets its headroom table (greedy, each selection
rule's pick, pass@k for k = 1..n, by hardness with intervals; ``sqlcoach.metrics.headroom``): by
itself when ``--pred X.sql`` has the predict JSONL ``X.jsonl`` of the same run beside it, or from
``--samples``; ``--greedy`` gives a greedy prediction file for the greedy row (default: sample 1).
"""

from __future__ import annotations

import argparse
import sys

from sqlcoach.errors import SqlcoachError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score predictions: EX, EM, test-suite, BIRD VES/Soft-F1",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--gold", required=True, help="gold file: one 'SQL<TAB>db_id' per line")
    p.add_argument(
        "--pred", required=True,
        help="predictions: one SQL per line, same order (blank line = empty prediction); "
        "or BIRD's predict_dev.json; - reads standard input",
    )
    p.add_argument("--db", help="database folder: <db>/<db_id>/*.sqlite (Spider layout)")
    p.add_argument("--table", help="tables.json (Spider): lets EM merge foreign-key columns")
    p.add_argument("--etype", default="all", choices=["all", "exec", "match"])
    p.add_argument("--mode", default="spider", choices=["spider", "bird"],
                   help="spider: test-suite semantics; bird: set of rows, column order matters")
    p.add_argument("--keep-distinct", "--keep_distinct", dest="keep_distinct", action="store_true",
                   help="spider mode: do not strip DISTINCT before executing")
    p.add_argument("--plug-value", "--plug_value", dest="plug_value", action="store_true",
                   help="spider mode: also try the gold's literals in the prediction's value slots")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per query (default 30)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: CPU count)")
    p.add_argument("--gold-errors", dest="gold_errors", default="count", choices=["count", "exclude"],
                   help="a gold that fails: count it as a wrong prediction (default, the official scorers' "
                        "convention) or leave it out of the denominator; both figures are printed")
    p.add_argument("--difficulty", help="BIRD dev.json (or one label per line) for a difficulty breakdown")
    p.add_argument("--ves-iterations", type=int, default=None,
                   help="bird mode: timing runs per query for VES/R-VES (default 10; 0 = off)")
    p.add_argument("--per-example", dest="per_example", help="write one JSON row per example here")
    p.add_argument("--out", help="write the summary JSON here")
    p.add_argument("--html", help="write the summary as a self-contained HTML page here (plans section included)")
    p.add_argument("--no-explain", dest="explain", action="store_false",
                   help="skip the EXPLAIN QUERY PLAN audit of predictions and golds (on by default)")
    p.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="force the progress bar on (default: on for long runs on a terminal)")
    p.add_argument("--progress_bar_for_each_datapoint", dest="progress", action="store_true",
                   help=argparse.SUPPRESS)
    p.add_argument("--samples", default=None,
                   help="a `predict --n N` JSONL (N > 1) of these questions: also print the headroom table (greedy, "
                   "vote, vote-nonempty, pass@k). Default: the .jsonl beside --pred when it holds that run's samples")
    p.add_argument("--greedy", default=None,
                   help="headroom table: a greedy prediction file (one SQL per line) for the greedy row (default: sample 1)")
    p.add_argument("--no-headroom", dest="headroom", action="store_false",
                   help="do not look for samples beside --pred (an explicit --samples is still used)")
    p.add_argument("--quiet", action="store_true", help="print only the EX/EM line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sqlcoach.metrics import evaluate_files

    if args.etype != "match" and not args.db:
        raise SqlcoachError("--db is required for --etype exec/all")
    if args.timeout <= 0:
        raise SqlcoachError("--timeout must be positive (seconds per query)")
    if args.workers is not None and args.workers < 0:
        raise SqlcoachError("--workers must be >= 0 (0 runs queries in this process)")
    progress = args.progress
    if progress is None:
        progress = sys.stderr.isatty()
    report = evaluate_files(
        args.gold, args.pred, db_dir=args.db, tables_path=args.table, etype=args.etype,
        mode=args.mode, keep_distinct=args.keep_distinct, plug_value=args.plug_value,
        timeout=args.timeout, workers=args.workers, progress=progress,
        difficulty_path=args.difficulty, ves_iterations=args.ves_iterations, gold_errors=args.gold_errors,
        explain=args.explain,
    )
    table = _headroom(args, report)
    for w in report.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if args.per_example:
        report.write_per_example(args.per_example)
    if args.out:
        report.write_summary(args.out)
    if args.html:
        from sqlcoach.runtime.files import atomic_write
        from sqlcoach.metrics.html import summary_html

        cmd = "sqlcoach evaluate " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else None
        atomic_write(args.html, summary_html(report.summary, report.rows(), command=cmd))
    s = report.summary["all"]
    if args.quiet:
        parts = [f"count {s['count']}"]
        if s["ex"] is not None:
            parts.append(f"EX {s['ex']:.4f}")
        if s["em"] is not None:
            parts.append(f"EM {s['em']:.4f}")
        print("  ".join(parts))
    else:
        print(report.table())
    if table is not None and not args.quiet:
        print()
        print(table.table())
    return 0


def _headroom(args: argparse.Namespace, report):
    """The headroom table of the sampled run behind ``--pred`` (or ``--samples``), put into the
    summary as ``headroom``; ``None`` when there is none."""
    from sqlcoach.metrics.headroom import headroom_files, samples_beside

    samples = args.samples
    if samples is None and args.headroom:
        samples, why = samples_beside(args.pred, report.preds)
        if why:
            report.warnings.append(why)
    if samples is None:
        if args.greedy:
            raise SqlcoachError("--greedy is the greedy row of the headroom table: it needs a sampled run "
                                "(--samples, or a predict --n N JSONL beside --pred)")
        return None
    if args.etype == "match":
        raise SqlcoachError("the headroom table scores samples by execution: it needs --etype exec or all")
    table = headroom_files(args.gold, samples, db_dir=args.db, greedy_path=args.greedy, mode=args.mode,
                           keep_distinct=args.keep_distinct, gold_errors=args.gold_errors, timeout=args.timeout,
                           workers=args.workers)
    report.summary["headroom"] = {"samples": str(samples), **table.as_dict()}
    return table
