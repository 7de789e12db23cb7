"""GRPO on the demo world: EX on the dev databases before and after, time per step, peak memory.

    OMP_NUM_THREADS=1 python benchmarks/grpo_demo.py --model runs/start/sft/final --world runs/start/world \\
        --out runs/grpo-demo --max-seconds 480 [--dev-limit 600] [key=value ...]

1. Greedy predictions of the starting model on the first ``--dev-limit`` dev questions (the world's
   dev databases are never seen in training) and on ``--heldout`` train questions that GRPO does
   not train on (a fixed random slice; the SFT start saw them once), scored with
   ``sqlcoach.metrics.evaluate_examples``.
2. ``run_grpo`` with configs/grpo/demo.yaml (``key=value`` pairs override it) from that model on
   the other train questions, under a wall-clock budget (``--max-seconds``).
3. The same predictions and scoring for the GRPO model.

Prints one JSON object: EX and execution rate before/after on both sets (and on how many questions), error
classes, steps, median seconds per step, peak RSS of the training process (executor workers not
counted), generated tokens, the reward curve's first and last points, and the share of
zero-variance groups. Also written to ``<out>/grpo_demo.json``. Numbers depend on the machine's
load (2 shared cores here): the step time is what this run saw, not a property of the code.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # several threads on a busy 2-core machine are 10x slower

REPO = Path(__file__).resolve().parents[1]


def _ex(model_dir: str, examples: list, out: Path, cfg) -> dict:
    """Greedy predictions with sqlcoach.generate.predict, scored by EX on the examples' databases."""
    from sqlcoach.generate.predict import predict
    from sqlcoach.prompts.settings import PromptSettings
    from sqlcoach.metrics import evaluate_examples
    from sqlcoach.models.load import load_model

    model, tok = load_model(model_dir, device="cpu", dtype="float32")
    if out.with_suffix(".jsonl").exists():
        out.with_suffix(".jsonl").unlink()  # predict resumes from its JSONL; this must be a fresh run
    s = predict(model, tok, examples, out, n=1, temperature=0.0, batch_size=16,
                max_new_tokens=cfg.max_completion_length, prompt=PromptSettings.of(template=cfg.template, schema_style=cfg.schema_style,
                schema_sample_values=cfg.schema_sample_values), workers=1, progress=False)
    preds = out.read_text(encoding="utf-8").splitlines()
    report = evaluate_examples(examples, preds, etype="exec", workers=1)
    return {
        "ex": report.summary["all"]["ex"],
        "executes": report.summary["executes"],
        "count": report.summary["all"]["count"],
        "ex_by_hardness": {k: v["ex"] for k, v in report.summary["by_hardness"].items()},
        "errors": {k: v for k, v in report.summary["errors"].items() if v},
        "predict_seconds": s.seconds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="starting model (an SFT run's final/)")
    ap.add_argument("--world", required=True, help="the demo world folder (Spider layout)")
    ap.add_argument("--out", required=True, help="output folder for this measurement")
    ap.add_argument("--config", default=str(REPO / "configs" / "grpo" / "demo.yaml"))
    ap.add_argument("--max-seconds", type=float, default=480.0, help="GRPO wall-clock budget")
    ap.add_argument("--dev-limit", type=int, default=600, help="score the first N dev questions")
    ap.add_argument("--heldout", type=int, default=300, help="train questions kept out of GRPO and scored (0: none)")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="override GRPO config keys")
    args = ap.parse_args()

    from sqlcoach.data import load_examples
    from sqlcoach.config import load_config, parse_overrides
    from sqlcoach.train.grpo import run_grpo
    from sqlcoach.config import GRPORunConfig

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    overrides = {"model": args.model, "data_path": args.world, "output_dir": str(out / "grpo"),
                 "max_seconds": args.max_seconds, "disable_tqdm": True, **parse_overrides(args.overrides)}
    cfg = load_config(GRPORunConfig, args.config, overrides)
    dev = load_examples("spider", args.world, "dev")[: args.dev_limit]
    train = load_examples("spider", args.world, "train")
    random.Random(1234).shuffle(train)
    heldout, grpo_examples = train[: args.heldout], train[args.heldout :]

    t0 = time.monotonic()
    before = _ex(args.model, dev, out / "dev_before.sql", cfg)
    print(f"before GRPO: EX {before['ex']:.4f} on {before['count']} dev questions (executes {before['executes']:.4f})",
          flush=True)
    held_before = _ex(args.model, heldout, out / "heldout_before.sql", cfg) if heldout else None
    if held_before:
        print(f"before GRPO: EX {held_before['ex']:.4f} on {held_before['count']} held-out train questions "
              f"(executes {held_before['executes']:.4f})", flush=True)
    summary = run_grpo(cfg, examples=grpo_examples)
    after = _ex(summary["final_dir"], dev, out / "dev_after.sql", cfg)
    print(f"after GRPO:  EX {after['ex']:.4f} on {after['count']} dev questions (executes {after['executes']:.4f})",
          flush=True)
    held_after = _ex(summary["final_dir"], heldout, out / "heldout_after.sql", cfg) if heldout else None
    if held_after:
        print(f"after GRPO:  EX {held_after['ex']:.4f} on {held_after['count']} held-out train questions "
              f"(executes {held_after['executes']:.4f})", flush=True)
    curve = summary["reward_curve"]
    zero = [p["frac"] for p in summary["zero_std_frac_curve"]]
    result = {
        "dev_questions": before["count"],
        "ex_before": before["ex"],
        "ex_after": after["ex"],
        "executes_before": before["executes"],
        "executes_after": after["executes"],
        "heldout_questions": len(heldout),
        "heldout_ex_before": held_before["ex"] if held_before else None,
        "heldout_ex_after": held_after["ex"] if held_after else None,
        "heldout_executes_before": held_before["executes"] if held_before else None,
        "heldout_executes_after": held_after["executes"] if held_after else None,
        "before": before,
        "after": after,
        "heldout_before": held_before,
        "heldout_after": held_after,
        "grpo": {
            "global_step": summary["global_step"],
            "train_seconds": summary["train_seconds"],
            "median_step_seconds": summary["median_step_seconds"],
            "peak_memory_mb": summary["peak_memory_mb"],
            "tokens_generated": summary["tokens_generated"],
            "prompts": summary["prompts"],
            "stopped_by_clock": summary["stopped_by_clock"],
            "reward_first": curve[0] if curve else None,
            "reward_last": curve[-1] if curve else None,
            "reward_mean_first5": round(sum(p["reward"] for p in curve[:5]) / max(1, len(curve[:5])), 4),
            "reward_mean_last5": round(sum(p["reward"] for p in curve[-5:]) / max(1, len(curve[-5:])), 4),
            "zero_std_frac_mean": round(sum(zero) / len(zero), 4) if zero else None,
        },
        "config": {k: getattr(cfg, k) for k in ("num_generations", "per_device_train_batch_size",
                                                 "max_completion_length", "temperature", "learning_rate",
                                                 "loss_type", "beta", "scale_rewards", "rewards",
                                                 "max_seconds")},
        "seconds_total": round(time.monotonic() - t0, 1),
    }
    (out / "grpo_demo.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
