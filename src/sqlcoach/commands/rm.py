"""`sqlcoach rm eval --model RM --pairs pairs_eval.jsonl`: pairwise accuracy of a reward model.

    sqlcoach rm eval --model runs/rm/final --pairs runs/pairs/pairs_eval.jsonl [--batch-size 16] \\
        [--device auto] [--max-length N] [--json OUT.json]

Prints the share of held-out pairs where the RM scores the chosen answer above the rejected one,
the mean margin, and the accuracy per kind of rejected answer (wrong result, exec error, ...).
Train one with ``sqlcoach train rm``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sqlcoach.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rm", help="reward models: pairwise evaluation", description=__doc__.split("\n\n")[0])
    rsub = p.add_subparsers(dest="rm_verb", metavar="ACTION")
    rsub.required = True
    e = rsub.add_parser("eval", help="pairwise accuracy on held-out preference pairs")
    e.add_argument("--model", required=True, help="reward model folder (`sqlcoach train rm` output_dir/final)")
    e.add_argument("--pairs", required=True, help="preference pairs JSONL (e.g. pairs_eval.jsonl)")
    e.add_argument("--batch-size", type=int, default=16)
    e.add_argument("--device", default="auto")
    e.add_argument("--max-length", type=int, default=None, help="keep only the last N tokens of each sequence")
    e.add_argument("--json", dest="json_out", default=None, help="also write the result here")
    e.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise ConfigError("--batch-size must be >= 1")
    from sqlcoach.train.rm import evaluate_rm

    res = evaluate_rm(args.model, args.pairs, batch_size=args.batch_size, device=args.device, max_length=args.max_length)
    print(f"pairs        {res['pairs']}")
    print(f"accuracy     {res['accuracy']:.4f}  (score(chosen) > score(rejected); {res['ties']} ties count as wrong)")
    print(f"mean margin  {res['mean_margin']:.4f}")
    for kind, b in res["by_rejected_kind"].items():
        print(f"  rejected = {kind:<14} {b['pairs']:>5} pairs  accuracy {b['accuracy']:.4f}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(res, indent=2) + "\n")
    return 0
