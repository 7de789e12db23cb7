"""PPO on the demo world from an SFT start checkpoint: dev EX before and after, time per step, memory.

    OMP_NUM_THREADS=2 python benchmarks/ppo_demo.py --start /work/runs/start/sft/final \\
        --world /work/runs/start/world --out /work/runs/h9/demo --n-dev 200 --steps 30 \\
        [--n-train-eval 150] [--reward-model runs/rm/final | --make-rm 600 --rm-seconds 300] \\
        [--skip exec,rm] learning_rate=5e-4 max_seconds=1500 [key=value ...]

Runs, in order: greedy prediction + EX of the start model on the first ``--n-dev`` dev questions;
``sqlcoach train ppo`` with ``configs/ppo/demo.yaml`` and the execution reward (``--steps`` PPO
steps); the same greedy evaluation of the PPO policy (with ``--n-train-eval N`` also on N train
questions that no rollout used); with ``--reward-model`` (or ``--make-rm``, which trains one
first: see ``make_rm``) a second PPO run whose only reward is that reward model, evaluated alike. Extra ``key=value`` pairs override the
PPO config of every run. Prints one line per figure and writes ``OUT/ppo_demo.json``.

EX is the project's metric (``sqlcoach.generate.predict`` greedy, then
``sqlcoach.metrics.evaluate_examples``, spider mode). A prediction file that already holds all n
answers is reused (``predict`` resumes by design: delete it after retraining), and a finished
PPO run (its ``summary.json``) is not retrained, so a second invocation only does what is
missing. Besides EX it prints the share of predictions that execute, and the error classes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def evaluate(model_dir: str, examples: list[Any], pred_path: Path, cfg: Any) -> dict[str, Any]:
    """Greedy predictions for ``examples`` and their EX (the same for every model)."""
    from sqlcoach.generate.predict import predict
    from sqlcoach.prompts.settings import PromptSettings
    from sqlcoach.metrics import evaluate_examples
    from sqlcoach.models.load import load_model

    model, tok = load_model(model_dir, dtype="float32", device="cpu")
    t0 = time.monotonic()
    summ = predict(
        model, tok, examples, pred_path, n=1, temperature=0.0, batch_size=16, max_new_tokens=cfg.max_completion_length,
        prompt=PromptSettings.of(template=cfg.template, schema_style=cfg.schema_style, schema_sample_values=cfg.schema_sample_values),
        workers=1, progress=False,
    )
    preds = pred_path.read_text().split("\n")[: len(examples)]
    rep = evaluate_examples(examples, preds, etype="exec", mode="spider", workers=1)
    block = rep.summary.get("all", rep.summary)
    correct = sum(1 for v in rep.verdicts if v.ex)
    runs = sum(1 for v in rep.verdicts if v.ex or v.error in (None, "wrong_result"))
    errors: dict[str, int] = {}
    for v in rep.verdicts:
        if not v.ex:
            errors[v.error or "wrong_result"] = errors.get(v.error or "wrong_result", 0) + 1
    return {
        "model": model_dir, "n": len(examples), "ex": correct / len(examples), "correct": correct,
        "executes": runs / len(examples), "errors": errors,
        "ex_summary": block.get("ex") if isinstance(block, dict) else None,
        "predict_seconds": round(time.monotonic() - t0, 1), "generated_tokens": summ.generated_tokens,
    }


def train(name: str, args: argparse.Namespace, overrides: dict[str, str]) -> dict[str, Any]:
    from sqlcoach.config import load_config
    from sqlcoach.train.ppo import run_ppo
    from sqlcoach.config import PPORunConfig

    values = {
        "model": args.start, "data_path": args.world, "output_dir": str(Path(args.out) / name),
        "max_steps": str(args.steps),
    }
    values.update(overrides)
    cfg = load_config(PPORunConfig, args.config, values)
    done = Path(cfg.output_dir) / "summary.json"
    if done.is_file():  # a finished run is reused, not retrained (delete the folder to retrain)
        summary = json.loads(done.read_text())["summary"]
        if summary["global_step"] >= args.steps or summary["stopped_by_clock"]:
            print(f"{name}: reusing the finished run in {cfg.output_dir}", flush=True)
            return summary
    return run_ppo(cfg, resume=True)


def unused_train_questions(args: argparse.Namespace, cfg: Any, steps: int, n: int) -> list[Any]:
    """The last ``n`` train examples whose prompt no PPO step of the run used (same rows, same
    order as ``run_ppo``: ``build_rl_rows`` + ``curate_gold``, then ``rows_for_step``)."""
    from sqlcoach.data import load_examples
    from sqlcoach.execution.pool import ExecutorPool
    from sqlcoach.train.ppo import rows_for_step
    from sqlcoach.prompts.settings import PromptSettings
    from sqlcoach.train.rl_data import build_rl_rows, curate_gold

    examples = load_examples(cfg.data_kind, args.world, cfg.split)
    if cfg.max_examples is not None:
        examples = examples[: cfg.max_examples]
    rows = build_rl_rows(examples, prompt=PromptSettings.of(template=cfg.template, schema_style=cfg.schema_style,
                         schema_sample_values=cfg.schema_sample_values))
    with ExecutorPool(workers=1) as pool:
        rows, _ = curate_gold(rows, pool=pool)
    used = {r["id"] for s in range(steps) for r in rows_for_step(rows, s, cfg.rollout_batch_size, 0, 1, cfg.seed)}
    unused = [ex for ex in examples if str(ex.id) not in used]
    return unused[-n:]


def make_rm(args: argparse.Namespace, cfg: Any, n: int, seconds: float) -> str:
    """Train a small reward model on pairs made without any generation, for the reward-model run
    when no ``--reward-model`` is given: ``n`` train questions (evenly spaced), chosen = the gold
    SQL, rejected = the gold SQL of another question, half of the time on the same database (a
    wrong answer in the right schema) and half on another database (wrong tables: the start
    model's usual mistake on unseen databases); 10% held out. ``sqlcoach.train.rm.run_rm`` with
    ``configs/rm/demo.yaml`` and a ``seconds`` budget. Returns the RM's final folder."""
    import random

    from sqlcoach.data import load_examples
    from sqlcoach.prompts.templates import render_completion
    from sqlcoach.config import load_config
    from sqlcoach.config import RMRunConfig
    from sqlcoach.prompts.settings import PromptSettings
    from sqlcoach.train.rl_data import build_rl_rows
    from sqlcoach.train.rm import run_rm

    rm_out = Path(args.out) / "rm"
    if (rm_out / "summary.json").is_file():
        print(f"reward model: reusing {rm_out / 'final'}", flush=True)
        return str(rm_out / "final")
    examples = load_examples(cfg.data_kind, args.world, cfg.split)
    picked = examples[:: max(1, len(examples) // n)][:n]
    rows = build_rl_rows(picked, prompt=PromptSettings.of(template=cfg.template, schema_style=cfg.schema_style,
                         schema_sample_values=cfg.schema_sample_values))
    by_db: dict[str, list[Any]] = {}
    for ex in examples:
        by_db.setdefault(ex.db_id, []).append(ex)
    rng = random.Random(0)
    by_id = {str(e.id): e for e in picked}
    pairs = []
    for i, row in enumerate(rows):
        ex = by_id[row["id"]]  # both answers are written for this prompt (its placeholders, if any)
        same = i % 2 == 0
        pool = by_db[row["db_id"]] if same else [e for d, exs in by_db.items() if d != row["db_id"] for e in exs[:50]]
        other = rng.choice([e for e in pool if e.gold_sql != row["gold_sql"]])
        pairs.append({
            "prompt": row["prompt"],
            "chosen": [{"role": "assistant", "content": render_completion(row["gold_sql"], cfg.template, example=ex)}],
            "rejected": [{"role": "assistant", "content": render_completion(other.gold_sql, cfg.template, example=ex)}],
            "id": row["id"], "rejected_kind": "same_db" if same else "other_db",
        })
    cut = len(pairs) // 10
    rm_cfg = load_config(RMRunConfig, Path(args.config).resolve().parents[1] / "rm" / "demo.yaml", {
        "model": args.start, "pairs_path": "(rows given)", "eval_pairs_path": "", "output_dir": str(rm_out),
        "max_seconds": str(seconds),
    })
    summary = run_rm(rm_cfg, rows=pairs[cut:], eval_rows=pairs[:cut])
    print(f"reward model: {len(pairs) - cut} pairs made (no generation), {summary['global_step']} steps; "
          f"held-out accuracy {summary.get('eval')}", flush=True)
    return summary["final_dir"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--start", required=True, help="SFT start checkpoint (full model folder)")
    ap.add_argument("--world", required=True, help="demo world folder (Spider layout)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs" / "ppo" / "demo.yaml"))
    ap.add_argument("--n-dev", type=int, default=200, help="first N dev questions (0: all)")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--n-train-eval", type=int, default=0,
                    help="also score N train questions that no PPO rollout used (the last N of train.json "
                         "not sampled by the exec run; SFT saw them, PPO did not)")
    ap.add_argument("--reward-model", default=None, help="reward model folder for the second run")
    ap.add_argument("--make-rm", type=int, default=0,
                    help="without --reward-model: train a reward model on N made pairs (see make_rm)")
    ap.add_argument("--rm-seconds", type=float, default=300.0)
    ap.add_argument("--skip", default="", help="comma list of runs to skip: exec, rm")
    ap.add_argument("overrides", nargs="*", metavar="key=value")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from sqlcoach.data import load_examples
    from sqlcoach.config import load_config, parse_overrides
    from sqlcoach.config import PPORunConfig

    overrides = parse_overrides(args.overrides)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base_cfg = load_config(PPORunConfig, args.config, {"model": args.start, "data_path": args.world, **overrides})
    dev = load_examples("spider", args.world, "dev")
    if args.n_dev:
        dev = dev[: args.n_dev]
    results: dict[str, Any] = {"n_dev": len(dev)}
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    results["start"] = evaluate(args.start, dev, out / "pred_start.sql", base_cfg)
    st = results["start"]
    print(f"start model: EX {st['ex']:.3f} ({st['correct']}/{len(dev)} dev questions); executes {st['executes']:.3f}; "
          f"errors {st['errors']}", flush=True)

    runs = [] if "exec" in skip else [("ppo_exec", {})]
    if not args.reward_model and args.make_rm and "rm" not in skip:
        args.reward_model = make_rm(args, base_cfg, args.make_rm, args.rm_seconds)
    if args.reward_model and "rm" not in skip:
        runs.append(("ppo_rm", {"rewards": "", "reward_model": args.reward_model}))
    held: list[Any] = []
    for name, extra in runs:
        summary = train(name, args, {**overrides, **extra})
        curve = summary.pop("reward_curve")
        ev = evaluate(summary["final_dir"], dev, out / f"pred_{name}.sql", base_cfg)
        if args.n_train_eval:
            if not held:
                held = unused_train_questions(args, base_cfg, summary["global_step"], args.n_train_eval)
                results["start_train_heldout"] = evaluate(args.start, held, out / "pred_start_train.sql", base_cfg)
                tr = results["start_train_heldout"]
                print(f"start model on {len(held)} train questions no rollout used: EX {tr['ex']:.3f} "
                      f"({tr['correct']}/{len(held)}); executes {tr['executes']:.3f}", flush=True)
            tr = evaluate(summary["final_dir"], held, out / f"pred_{name}_train.sql", base_cfg)
            results[f"{name}_train_heldout"] = tr
            print(f"{name} on the same {len(held)} train questions: EX {tr['ex']:.3f} ({tr['correct']}/{len(held)}); "
                  f"executes {tr['executes']:.3f}", flush=True)
        results[name] = {"train": summary, "eval": ev,
                         "reward_first5": sum(r["reward"] for r in curve[:5]) / max(1, len(curve[:5])),
                         "reward_last5": sum(r["reward"] for r in curve[-5:]) / max(1, len(curve[-5:])),
                         "kl_last": curve[-1]["kl"] if curve else None}
        print(
            f"{name}: EX {ev['ex']:.3f} ({ev['correct']}/{len(dev)}) vs start {st['ex']:.3f}; executes {ev['executes']:.3f} "
            f"vs {st['executes']:.3f}; errors {ev['errors']}; "
            f"{summary['global_step']} PPO steps x {base_cfg.rollout_batch_size} prompts; "
            f"median {summary['median_step_seconds']} s/step; peak memory {summary['peak_memory_mb']} MiB; "
            f"{summary['tokens_generated']} tokens generated; train reward first5 {results[name]['reward_first5']:.3f} "
            f"-> last5 {results[name]['reward_last5']:.3f}; final KL {results[name]['kl_last']:.4f}",
            flush=True,
        )
    (out / "ppo_demo.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {out / 'ppo_demo.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
