"""`sqlcoach adapt`: adapt a model to your own database(s) from a log of questions, no SQL written.

    sqlcoach adapt --model M (--databases DIR | --db FILE) --questions FILE --out DIR [--steps 30] ...

GRPO (LoRA, KL-anchored to M) with a reward that needs no gold SQL: the G sampled answers of a
question are executed and the answers in the largest non-empty, error-free result group holding
at least --min-share of them are rewarded (consensus), and/or a trained verifier scores each
(question, SQL, result) (`--reward verifier --verifier DIR`, or `--reward consensus,verifier
--reward-weights 1,0.5`). A held-aside slice of the questions watches for
collapse and stops training early. OUT/final is a model `predict` and `serve` use as any other;
OUT/report.md says what happened. See docs/adapt.md. Argument parsing only: sqlcoach.pipelines.adapt.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("adapt", help="adapt a model to your database from unlabeled questions (label-free GRPO)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="the sqlcoach model folder (or adapter) to start from")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--databases", help="folder holding <db_id>/<db_id>.sqlite (Spider layout)")
    where.add_argument("--db", help="one SQLite file: every question is on it")
    p.add_argument("--questions", required=True,
                   help="text (one question a line, with --db), JSONL (question, db_id) or Spider/BIRD JSON (gold SQL ignored)")
    p.add_argument("--out", required=True, help="output folder: final/ (the model), report.md, report.json")
    p.add_argument("--reward", default="consensus",
                   help="reward name(s) from sqlcoach.rewards.REWARDS, comma-separated (default consensus; "
                        "verifier: a trained verifier's score, needs --verifier; consensus,verifier: both, summed)")
    p.add_argument("--reward-weights", metavar="W[,W]",
                   help="one weight per --reward name, comma-separated, in order (default 1 each)")
    p.add_argument("--verifier", metavar="DIR", help="the verifier reward's folder (the final/ of `sqlcoach train verifier`)")
    p.add_argument("--min-share", type=float, default=0.4, help="share of the G samples the winning result group must hold")
    p.add_argument("--group", type=int, default=8, help="G: samples per question per round")
    p.add_argument("--steps", type=int, default=30, help="optimizer steps at most (early stopping may end sooner)")
    p.add_argument("--questions-per-step", type=int, default=2)
    p.add_argument("--beta", type=float, default=0.04, help="KL anchor to the start model (0: none)")
    p.add_argument("--learning-rate", type=float, default=2e-5)
    p.add_argument("--full", action="store_true", help="full fine-tune instead of LoRA")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--max-completion-length", type=int, default=128)
    p.add_argument("--held-percent", type=int, default=10, help="%% of questions held aside for the collapse watch")
    p.add_argument("--check-every", type=int, default=5, help="steps between collapse checks")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cpu", action="store_true", help="train on the CPU")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any other GRPO config key")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from sqlcoach.errors import ConfigError
    from sqlcoach.pipelines.adapt import AdaptOptions, adapt

    overrides = {}
    for item in args.set:
        if "=" not in item:
            raise ConfigError(f"--set takes KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        overrides[k] = v
    weights = None
    if args.reward_weights is not None:
        try:
            weights = [float(w) for w in args.reward_weights.split(",")]
        except ValueError:
            raise ConfigError(f"--reward-weights takes numbers, comma-separated (e.g. 1,0.5), got {args.reward_weights!r}") from None
    opts = AdaptOptions(reward=[r.strip() for r in args.reward.split(",") if r.strip()], reward_weights=weights,
                        verifier=args.verifier, min_share=args.min_share,
                        num_generations=args.group, max_steps=args.steps, questions_per_step=args.questions_per_step,
                        beta=args.beta, learning_rate=args.learning_rate, method="full" if args.full else "lora",
                        temperature=args.temperature, max_completion_length=args.max_completion_length,
                        held_percent=args.held_percent, check_every=args.check_every, seed=args.seed,
                        use_cpu=args.cpu, overrides=overrides)
    report = adapt(args.model, args.questions, args.out, databases=args.databases, db=args.db, opts=opts)
    print(json.dumps({"final": report["final"], "early_stop": report["early_stop"],
                      "per_database": report["per_database"], "report": f"{args.out}/report.md"}, indent=2))
    return 0
