"""`sqlcoach compare --config FILE --out DIR [key=value ...]`: SFT, DPO, PPO, GRPO, selection and adaptation side by side.

Trains each method listed in the config from one shared start checkpoint with one budget (steps,
samples or wall-clock seconds), evaluates every result the same way (greedy predictions on the
same dev questions, EX/EM by hardness, share that executes; a ``verifier`` row: the start's
samples and the selections among them; with an ``adapt`` row every row is scored on half B of the
questions, the half no row adapted on), and writes ``DIR/report.json``,
``DIR/report.md`` and ``DIR/report.html`` (self-contained). Running the same command again skips
the methods already finished with the same settings. See docs/compare.md.
"""

from __future__ import annotations

import argparse
import time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="compare training methods on one budget, measured (report.html)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="YAML file (see configs/compare/)")
    p.add_argument("--out", required=True, help="output folder (an earlier one is resumed)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override top-level config keys")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sqlcoach.config import parse_overrides
    from sqlcoach.pipelines.compare import load_compare_config, run_compare
    from sqlcoach.pipelines.compare.report import markdown_table

    cfg = load_compare_config(args.config, parse_overrides(args.overrides))

    def say(msg: str) -> None:
        print(f"[compare {time.strftime('%H:%M:%S')}] {msg}", flush=True)

    cmd = args.config + "".join(f" {o}" for o in args.overrides)
    report = run_compare(cfg, args.out, log=say, config_path=cmd)
    print()
    print(markdown_table(report))
    print()
    say(f"wrote {args.out}/report.json, report.md and report.html ({report.seconds_this_run}s this run)")
    return 0 if all(r.ok for r in report.methods) else 1
