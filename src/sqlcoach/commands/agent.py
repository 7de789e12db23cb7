"""`sqlcoach agent rows`: warm-start SFT rows for the SQL agent (docs/agent.md).

    sqlcoach agent rows --model runs/sft/final --data world/ --split train --out runs/agent/rows.jsonl \\
        [--limit N] [--max-turns 5] [--verify-fraction 0.2] [--protocol tags|tools] [--no-agent-instruction]
    sqlcoach train sft --config configs/sft/demo.yaml data_kind=export data_path=runs/agent/rows.jsonl ...

The model answers each training question once (greedy, its usual prompt); a failed answer becomes a
revision trajectory (its query, the real observation, the gold as solution), a right one the gold
answered directly (or, for --verify-fraction of them, its own query run, read and kept). Inference with the
trained model: ``sqlcoach predict --agent``.
"""

from __future__ import annotations

import argparse

from sqlcoach.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("agent", help="the SQL agent's data: warm-start multi-turn SFT rows",
                       description=__doc__.split("\n\n")[0])
    verbs = p.add_subparsers(dest="agent_verb", required=True)
    r = verbs.add_parser("rows", help="write warm-start SFT rows (chat export format) from the policy's own attempts")
    r.add_argument("--model", required=True, help="the policy: model folder or LoRA adapter folder")
    r.add_argument("--data", required=True, help="dataset folder or file (with gold SQL and databases)")
    r.add_argument("--kind", default="spider", help="dataset kind (spider, bird, jsonl, ...)")
    r.add_argument("--split", default="train")
    r.add_argument("--out", required=True, help="the rows file to write (JSONL)")
    r.add_argument("--limit", type=int, default=None, help="only the first N examples")
    r.add_argument("--max-turns", type=int, default=5, help="the turn count the prompt states (as predict --agent)")
    r.add_argument("--observation-tokens", type=int, default=600, help="tokens per observation at most")
    r.add_argument("--verify-fraction", type=float, default=0.2,
                   help="share of the rightly answered questions written as 'run the own answer, read, keep it' "
                   "(the rest: the gold answered directly)")
    r.add_argument("--protocol", default="tags", choices=["tags", "tools", "review"],
                   help="write the trajectories with <sql>/<observation>/<solution> tags (any chat template) or as "
                   "native run_sql tool calls (a template that renders them, e.g. Qwen2.5's), or review (the attempt as a "
                   "plain answer, its result as a user message, then keep or the gold); as predict --agent")
    r.add_argument("--observation-names", default="template", choices=["template", "real"],
                   help="names in observations as the template writes them (placeholders for the anonymized "
                   "template) or the database's real names")
    r.add_argument("--keep-action", dest="keep", action="store_true",
                   help="tags or review: write the 'run, read, keep it' rows with the keep action, an empty <solution></solution> "
                   "(the last query that ran is the answer), instead of a copy of the query; then predict --agent "
                   "--keep-action (or an agent: block with keep: true)")
    r.add_argument("--attempt-loss", default="all", choices=["all", "right", "none"],
                   help="which of the policy's own attempts the warm start trains on: all (default), right (a wrong "
                   "attempt is marked as no-loss text in observation_spans: the row trains the revision, not the "
                   "mistake), none (only the decision after the result)")
    r.add_argument("--attempt-temperature", type=float, default=0.0,
                   help="sample the attempts at this temperature (seeded by --seed) instead of greedy: more wrong "
                   "attempts, so more revision rows from a policy that is right on most training questions")
    r.add_argument("--no-agent-instruction", dest="agent_instruction", action="store_false",
                   help="leave the protocol instruction out of the prompts (then also at predict --agent)")
    r.add_argument("--batch-size", type=int, default=16)
    r.add_argument("--max-new-tokens", type=int, default=256)
    r.add_argument("--timeout", type=float, default=5.0, help="seconds per query")
    r.add_argument("--workers", type=int, default=1, help="SQL executor processes (0 = in this process)")
    r.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    r.add_argument("--device", default="auto")
    r.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise ConfigError("--limit must be >= 1")
    from sqlcoach.generate.agent import AgentConfig

    config = AgentConfig(max_turns=args.max_turns, per_observation=args.observation_tokens, timeout=args.timeout,
                         observation_names=args.observation_names, protocol=args.protocol, keep=args.keep)
    from sqlcoach.data import load_examples
    from sqlcoach.generate.agent_rows import warm_start_rows
    from sqlcoach.models.load import load_model
    from sqlcoach.prompts.recipe import resolve_prompt

    examples = load_examples(args.kind, args.data, args.split)[: args.limit]
    recipe = resolve_prompt(args.model)
    model, tokenizer = load_model(args.model, dtype=args.dtype, device=args.device)
    summary = warm_start_rows(model, tokenizer, examples, args.out, builder=recipe.builder(), config=config,
                              instruction=args.agent_instruction, verify_fraction=args.verify_fraction,
                              batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, workers=args.workers,
                              seed=args.seed, attempt_loss=args.attempt_loss,
                              attempt_temperature=args.attempt_temperature)
    print(summary.line())
    for why in summary.skipped[:5]:
        print(f"  skipped {why}")
    return 0
