"""`sqlcoach pairs mine --model M --data D --k 8 --out pairs.jsonl`: preference pairs by execution.

    sqlcoach pairs mine --model runs/sft/final --data world/ --split train --k 8 \\
        --out runs/pairs/pairs.jsonl [--kind spider] [--limit N] [--holdout 0.1 [--holdout-by database]] \\
        [--temperature 1.0] [--chosen correct_or_gold|correct|gold] [--rejected-order wrong_result,exec_error] \\
        [--pairs-per-question 1] [--template T] [--schema-style S] [--schema-samples N] (default: the model's sqlcoach_recipe.json)

Samples k answers per question, executes them, pairs a correct answer (or the gold) with a wrong
one (``sqlcoach.train.pairs``), writes TRL preference JSONL, and prints how many questions gave
pairs. Where no gold exists, ``--scorer verifier --verifier DIR`` ranks the samples by a trained
verifier reading each result instead: the best-scored one is chosen, a lower-scored one whose
result differs is rejected, and the gold is never read. With ``--holdout F`` a fraction F of the questions (or databases) goes to
``<out stem>_eval.jsonl`` (for ``sqlcoach rm eval``) and never into ``--out``; the stats are
also written to ``<out stem>.stats.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sqlcoach.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pairs", help="mine preference pairs by executing sampled SQL",
                       description=__doc__.split("\n\n")[0])
    psub = p.add_subparsers(dest="pairs_verb", metavar="ACTION")
    psub.required = True
    m = psub.add_parser("mine", help="sample k answers per question and pair correct with wrong ones")
    m.add_argument("--model", required=True, help="model folder, hub id, or LoRA adapter folder")
    m.add_argument("--data", required=True, help="dataset folder or file")
    m.add_argument("--kind", default="spider")
    m.add_argument("--split", default="train")
    m.add_argument("--out", required=True, help="pairs JSONL to write")
    m.add_argument("--k", type=int, default=8, help="samples per question")
    m.add_argument("--temperature", type=float, default=1.0)
    m.add_argument("--top-p", type=float, default=1.0)
    m.add_argument("--max-new-tokens", type=int, default=256)
    m.add_argument("--batch-size", type=int, default=8, help="prompts per generate() call (x k sequences)")
    m.add_argument("--template", default=None, help="prompt template (default: the model's sqlcoach_recipe.json, else sql_terminal)")
    m.add_argument("--schema-style", default=None, help="compact, ddl or nl (default: the model's recipe, else compact)")
    m.add_argument("--schema-samples", type=int, default=None,
                   help="example values per column in the schema text (default: the model's recipe, else 3)")
    m.add_argument("--chosen", default=None, choices=["correct_or_gold", "correct", "gold"],
                   help="--scorer execution: where the chosen answer comes from (default correct_or_gold)")
    m.add_argument("--scorer", default="execution", choices=["execution", "verifier"],
                   help="execution: samples judged against the gold by execution; verifier: ranked by a trained "
                   "verifier reading each result (--verifier DIR), no gold needed: unlabeled questions give pairs")
    m.add_argument("--verifier", default=None, help="--scorer verifier: the folder `sqlcoach train verifier` wrote (its final/)")
    m.add_argument("--rejected-order", default=None,
                   help="comma-separated error classes, most preferred first (default: "
                        "wrong_result,exec_error,parse_error,timeout,too_large,no_sql); "
                        "'wrong_result' alone keeps only wrong results")
    m.add_argument("--pairs-per-question", type=int, default=1)
    m.add_argument("--mode", default="spider", choices=["spider", "bird"], help="EX rule that decides correct")
    m.add_argument("--limit", type=int, default=None, help="use only the first N questions")
    m.add_argument("--spread", action="store_true",
                   help="with --limit: take N evenly spaced questions instead of the first N "
                        "(Spider-layout files are grouped by database)")
    m.add_argument("--holdout", type=float, default=0.0, help="fraction of questions held out for evaluation")
    m.add_argument("--holdout-by", default="question", choices=["question", "database"])
    m.add_argument("--workers", type=int, default=2, help="SQL executor processes")
    m.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    m.add_argument("--device", default="auto")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--backend", default="hf", choices=["hf", "vllm"],
                   help="sampler: HF generate, or vLLM (GPU; every question in one call; LoRA adapters served as such)")
    m.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.k < 1 or args.batch_size < 1 or args.max_new_tokens < 1:
        raise ConfigError("--k, --batch-size and --max-new-tokens must be >= 1")
    if args.limit is not None and args.limit < 1:
        raise ConfigError("--limit must be >= 1")
    if args.scorer == "verifier" and args.verifier is None:
        raise ConfigError("--scorer verifier ranks the samples with a trained verifier: give its folder (--verifier DIR)")
    if args.verifier is not None and args.scorer != "verifier":
        raise ConfigError("--verifier is read only by --scorer verifier (the execution scorer judges by the gold)")
    if args.scorer == "verifier" and args.chosen is not None:
        raise ConfigError(f"--chosen {args.chosen} takes the chosen answer from the gold; --scorer verifier chooses "
                          "the best-scored sample and reads no gold (leave --chosen out)")
    if args.scorer == "verifier" and args.mode != "spider":
        raise ConfigError("--mode is the EX rule of the execution scorer; --scorer verifier compares no gold")
    from sqlcoach.train.pairs import REJECTED_ORDER

    order = tuple(s.strip() for s in args.rejected_order.split(",") if s.strip()) if args.rejected_order else REJECTED_ORDER
    from sqlcoach.data import load_examples
    from sqlcoach.execution.pool import ExecutorPool
    from sqlcoach.models.load import load_model
    from sqlcoach.train.pairs import mine_pairs, split_holdout, write_pairs

    examples = load_examples(args.kind, args.data, args.split)
    if args.limit is not None:
        if args.spread and args.limit < len(examples):
            step = len(examples) / args.limit
            examples = [examples[int(i * step)] for i in range(args.limit)]
        else:
            examples = examples[: args.limit]
    from sqlcoach.prompts.recipe import resolve_prompt

    recipe = resolve_prompt(args.model, template=args.template, schema_style=args.schema_style,
                            schema_sample_values=args.schema_samples)
    verifier = None
    if args.verifier is not None:  # a folder that is not a verifier fails here, before the policy loads
        from sqlcoach.models.verifier import load_verifier

        verifier = load_verifier(args.verifier, device=args.device)
    generate_fn, chunk = None, 64
    if args.backend == "vllm":
        from sqlcoach.generate.vllm_backend import vllm_generate_fn
        from sqlcoach.models.load import load_tokenizer

        generate_fn, chunk = vllm_generate_fn(args.model, dtype=args.dtype), max(len(examples), 1)
        model, tok = None, load_tokenizer(args.model)
    else:
        model, tok = load_model(args.model, dtype=args.dtype, device=args.device)
    with ExecutorPool(args.workers) as pool:
        pairs, stats = mine_pairs(
            model, tok, examples, k=args.k, temperature=args.temperature, top_p=args.top_p,
            max_new_tokens=args.max_new_tokens, prompt=recipe.prompt, pool=pool, seed=args.seed, batch_size=args.batch_size,
            chosen=args.chosen or "correct_or_gold", rejected_order=order, pairs_per_question=args.pairs_per_question,
            mode=args.mode, generate_fn=generate_fn, chunk_size=chunk, scorer=args.scorer, verifier=verifier,
        )
    train, held = split_holdout(pairs, args.holdout, by=args.holdout_by, seed=args.seed)
    out = Path(args.out)
    write_pairs(out, train)
    print(stats.table())
    print(f"wrote {len(train)} pairs to {out}")
    info = {"stats": stats.as_dict(), "train_pairs": len(train), "out": str(out), "model": args.model,
            "data": args.data, "split": args.split, "k": args.k, "temperature": args.temperature,
            "scorer": args.scorer, "verifier": args.verifier}
    if args.holdout > 0:
        ev = out.with_name(f"{out.stem}_eval.jsonl")
        write_pairs(ev, held)
        print(f"wrote {len(held)} held-out pairs to {ev} (split by {args.holdout_by})")
        info.update(eval_pairs=len(held), eval_out=str(ev))
    out.with_name(f"{out.stem}.stats.json").write_text(json.dumps(info, indent=2) + "\n")
    return 0
