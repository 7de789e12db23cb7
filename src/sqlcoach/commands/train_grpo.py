"""`sqlcoach train grpo --config FILE [key=value ...] [--resume]`: GRPO with execution rewards.

``key=value`` pairs override the YAML (``num_generations=4``, ``rewards=arctic``,
``max_seconds=600``); ``--resume`` continues from the last checkpoint in ``output_dir``. Prints
the run's summary as JSON (also in ``output_dir/summary.json``). See docs/grpo.md.
"""

from __future__ import annotations

import argparse
import json


def register(tsub: argparse._SubParsersAction) -> None:
    p = tsub.add_parser("grpo", help="GRPO with rewards from executing SQL (TRL GRPOTrainer)")
    p.add_argument("--config", required=True, help="YAML file (see configs/grpo/)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override config keys")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in output_dir")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sqlcoach.train.common import load_config, parse_overrides
    from sqlcoach.train.grpo_config import GRPORunConfig

    cfg = load_config(GRPORunConfig, args.config, parse_overrides(args.overrides))
    from sqlcoach.train.grpo import run_grpo

    summary = run_grpo(cfg, resume=args.resume)
    shown = {k: v for k, v in summary.items() if k not in ("reward_curve", "zero_std_frac_curve")}
    shown["reward_curve_points"] = len(summary["reward_curve"])
    print(json.dumps(shown, indent=2))
    return 0
