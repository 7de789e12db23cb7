"""`sqlcoach export --adapter A --out M [--base B]`: merge a LoRA adapter into its base model.

The result in ``M`` is a plain Hugging Face checkpoint (weights + tokenizer) that loads without peft.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="merge a LoRA adapter into its base and save a plain checkpoint",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--adapter", required=True, help="adapter folder (adapter_config.json)")
    p.add_argument("--out", required=True, help="folder for the merged model")
    p.add_argument("--base", default=None, help="base model (default: the one named in the adapter)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sqlcoach.models.load import export_merged

    out = export_merged(args.adapter, args.out, base=args.base, dtype=args.dtype)
    print(f"merged {args.adapter} into its base: {out}")
    return 0
