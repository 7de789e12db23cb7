"""`sqlcoach train METHOD --config FILE [key=value ...] [--resume]`: one verb per recipe.

``METHOD`` is a key of ``sqlcoach.config.CONFIGS`` (sft, rm, dpo, grpo, ppo, verifier); each takes its YAML,
``key=value`` overrides (types are coerced: ``learning_rate=1e-3``,
``lora_target_modules=q_proj,v_proj``), ``--resume`` (continue from the last checkpoint in
``output_dir``) and ``--help-config`` (every key with its default and meaning). The run's summary
is printed as JSON (long curves shortened) and written to ``output_dir/summary.json``.
Argument parsing only: the recipes are ``sqlcoach.train.<method>``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

#: method -> its one-line help in `sqlcoach train --help`
HELP: dict[str, str] = {
    "sft": "supervised fine-tuning: full, LoRA or QLoRA (TRL SFTTrainer)",
    "rm": "reward model on execution-mined pairs (TRL RewardTrainer; LoRA or full)",
    "dpo": "DPO on execution-mined preference pairs (TRL DPOTrainer; LoRA or full)",
    "grpo": "GRPO with rewards from executing SQL (TRL GRPOTrainer)",
    "ppo": "PPO with execution rewards and/or a reward model (sqlcoach's own, on accelerate)",
}


class _HelpConfig(argparse.Action):
    """``--help-config``: print every config key of the method with its default and help, then exit."""

    def __init__(self, option_strings: list[str], dest: str, method: str = "", **kw: Any):
        super().__init__(option_strings, dest, nargs=0, **kw)
        self.method = method

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option_string: Any = None) -> None:
        from sqlcoach.config import CONFIGS, describe_fields

        print(describe_fields(CONFIGS[self.method]))
        parser.exit()


def register(sub: argparse._SubParsersAction) -> None:
    from sqlcoach.config import CONFIGS

    p = sub.add_parser("train", help="train a model (" + ", ".join(CONFIGS) + ")", description=__doc__.split("\n\n")[0])
    tsub = p.add_subparsers(dest="train_verb", metavar="METHOD")
    tsub.required = True
    for method in CONFIGS:
        m = tsub.add_parser(method, help=HELP.get(method, method))
        m.add_argument("--config", required=True, help=f"YAML file (see configs/{method}/)")
        m.add_argument("overrides", nargs="*", metavar="key=value", help="override config keys")
        m.add_argument("--resume", action="store_true", help="continue from the last checkpoint in output_dir")
        m.add_argument("--help-config", action=_HelpConfig, method=method,
                       help="list every config key with its default and meaning, then exit")
        m.set_defaults(func=run, method=method)


def run(args: argparse.Namespace) -> int:
    from sqlcoach.config import CONFIGS, load_config, parse_overrides

    cfg = load_config(CONFIGS[args.method], args.config, parse_overrides(args.overrides))  # fails before any model loads
    from sqlcoach.train.recipes import RECIPES

    from sqlcoach.runtime.dist import is_main

    summary = RECIPES[args.method].run(cfg, resume=args.resume)
    if is_main():  # under torchrun every rank returns the summary; one prints it
        print(json.dumps(shorten(summary), indent=2, default=str))
    return 0


def shorten(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary with each per-step curve replaced by its length and its first and last reward."""
    shown = {}
    for k, v in summary.items():
        if k.endswith("_curve") and isinstance(v, list):
            first, last = (v[0], v[-1]) if v else (None, None)
            pick = (lambda p: p.get("reward") if isinstance(p, dict) else p)
            shown[f"{k}_points"] = len(v)
            shown[f"{k}_first_last"] = [pick(first), pick(last)] if v else None
        else:
            shown[k] = v
    return shown
