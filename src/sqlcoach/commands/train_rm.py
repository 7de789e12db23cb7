"""`sqlcoach train rm --config FILE [key=value ...] [--resume]`: a reward model from mined pairs.

``key=value`` pairs override the YAML. ``--resume`` continues from the last checkpoint in
``output_dir``. The result (``output_dir/final``) is scored with ``sqlcoach rm eval`` and used as
a GRPO/PPO reward (``reward_model``); see ``sqlcoach.train.rm``.
"""

from __future__ import annotations

import argparse
import json


def register(tsub: argparse._SubParsersAction) -> None:
    p = tsub.add_parser("rm", help="reward model on execution-mined pairs (TRL RewardTrainer; LoRA or full)",
                        description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="YAML file (see configs/rm/)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override config keys")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in output_dir")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sqlcoach.train.common import load_config, parse_overrides
    from sqlcoach.train.pref_config import RMRunConfig

    cfg = load_config(RMRunConfig, args.config, parse_overrides(args.overrides))
    from sqlcoach.train.rm import run_rm

    summary = run_rm(cfg, resume=args.resume)
    print(json.dumps(summary, indent=2))
    return 0
