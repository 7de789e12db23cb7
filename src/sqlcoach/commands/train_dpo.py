"""`sqlcoach train dpo --config FILE [key=value ...] [--resume]`: DPO on mined preference pairs.

``key=value`` pairs override the YAML (``loss_type=ipo``, ``beta=0.5``, ``method=full``).
``--resume`` continues from the last checkpoint in ``output_dir``. Pairs come from
``sqlcoach pairs mine``; see ``sqlcoach.train.dpo`` for the recipe.
"""

from __future__ import annotations

import argparse
import json


def register(tsub: argparse._SubParsersAction) -> None:
    p = tsub.add_parser("dpo", help="DPO on execution-mined preference pairs (TRL DPOTrainer; LoRA or full)",
                        description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="YAML file (see configs/dpo/)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override config keys")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in output_dir")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sqlcoach.train.common import load_config, parse_overrides
    from sqlcoach.train.pref_config import DPORunConfig

    cfg = load_config(DPORunConfig, args.config, parse_overrides(args.overrides))
    from sqlcoach.train.dpo import run_dpo

    summary = run_dpo(cfg, resume=args.resume)
    print(json.dumps(summary, indent=2))
    return 0
