"""`sqlcoach train ppo --config FILE [key=value ...] [--resume]`: PPO with execution rewards or a reward model.

``key=value`` pairs override the YAML (``rewards=execution,format``, ``reward_model=runs/rm/final``,
``method=full``). ``--resume`` continues from the last ``checkpoint-N`` in ``output_dir``. On several
GPUs: ``accelerate launch -m sqlcoach.cli train ppo --config ...``. See docs/ppo.md.
"""

from __future__ import annotations

import argparse
import json


def register(tsub: argparse._SubParsersAction) -> None:
    p = tsub.add_parser("ppo", help="PPO (value head, GAE, clipped losses, KL to a reference) on execution rewards or a reward model")
    p.add_argument("--config", required=True, help="YAML file (see configs/ppo/)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override config keys")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in output_dir")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sqlcoach.train.common import load_config, parse_overrides
    from sqlcoach.train.ppo_config import PPORunConfig

    cfg = load_config(PPORunConfig, args.config, parse_overrides(args.overrides))
    from sqlcoach.train.ppo import run_ppo

    summary = run_ppo(cfg, resume=args.resume)
    curve = summary.pop("reward_curve")
    summary["reward_first_last"] = [curve[0]["reward"], curve[-1]["reward"]] if curve else None
    print(json.dumps(summary, indent=2))
    return 0
