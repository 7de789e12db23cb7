"""`sqlcoach train sft --config FILE [key=value ...] [--resume]`: supervised fine-tuning.

``key=value`` pairs override the YAML (types are coerced: ``learning_rate=1e-3``,
``lora_target_modules=q_proj,v_proj``). ``--resume`` continues from the last checkpoint in
``output_dir``. Other training methods register their own sub-verbs under ``train``.
"""

from __future__ import annotations

import argparse
import importlib
import json

# Other methods live in ``sqlcoach.commands.train_<method>`` with ``register(train_subparsers)``;
# a module not present in this checkout is skipped. Order is the order shown in --help.
OTHER_METHODS = ("rm", "dpo", "grpo", "ppo")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a model (sft, rm, dpo, grpo, ppo)", description=__doc__.split("\n\n")[0]
    )
    tsub = p.add_subparsers(dest="train_verb", metavar="METHOD")
    tsub.required = True
    _register_sft(tsub)
    for method in OTHER_METHODS:
        name = f"sqlcoach.commands.train_{method}"
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        mod.register(tsub)


def _register_sft(tsub: argparse._SubParsersAction) -> None:
    sft = tsub.add_parser("sft", help="supervised fine-tuning: full, LoRA or QLoRA (TRL SFTTrainer)")
    sft.add_argument("--config", required=True, help="YAML file (see configs/sft/)")
    sft.add_argument("overrides", nargs="*", metavar="key=value", help="override config keys")
    sft.add_argument("--resume", action="store_true", help="continue from the last checkpoint in output_dir")
    sft.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sqlcoach.train.common import load_config, parse_overrides
    from sqlcoach.train.config import SFTRunConfig

    cfg = load_config(SFTRunConfig, args.config, parse_overrides(args.overrides))
    from sqlcoach.train.sft import run_sft

    summary = run_sft(cfg, resume=args.resume)
    print(json.dumps(summary, indent=2))
    return 0
