"""Reward model on execution-mined pairs, demo world: pairwise accuracy on held-out pairs before
(random score head on the start checkpoint) and after training, time per step, peak memory.

    OMP_NUM_THREADS=2 python benchmarks/rm_demo.py --start /work/runs/start/sft/final \\
        --pairs /work/runs/h8/demo/pairs --out /work/runs/h8/rm [--seconds 300] [key=value ...]

``--pairs`` is a folder holding ``pairs.jsonl`` and ``pairs_eval.jsonl`` (``benchmarks/dpo_demo.py``
writes them to ``OUT/pairs``, or ``sqlcoach pairs mine --holdout F``); the held-out pairs are
questions never seen in training. Trains ``configs/rm/demo.yaml`` (full, CPU, ``--seconds``
budget; ``key=value`` overrides it), evaluates with ``sqlcoach.train.rm.evaluate_rm``, prints one
line per figure and writes ``OUT/rm_demo.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--start", required=True, help="causal checkpoint the RM starts from")
    ap.add_argument("--pairs", required=True, help="folder with pairs.jsonl and pairs_eval.jsonl")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, default=300.0, help="training wall-clock budget")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="RM config overrides")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from sqlcoach.config import load_config, parse_overrides
    from sqlcoach.train.pairs import read_pairs
    from sqlcoach.config import RMRunConfig
    from sqlcoach.train.rm import evaluate_rm, run_rm

    pairs = Path(args.pairs)
    held = read_pairs(pairs / "pairs_eval.jsonl")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import torch

    torch.manual_seed(0)  # the baseline's score head is random: make it the same on every run
    before = evaluate_rm(args.start, held, device="cpu")  # the start checkpoint with a random score head
    values = {"model": args.start, "pairs_path": str(pairs / "pairs.jsonl"), "eval_pairs_path": None,
              "output_dir": str(out / "rm"), "max_seconds": str(args.seconds), "disable_tqdm": "true"}
    values.update(parse_overrides(args.overrides))
    cfg = load_config(RMRunConfig, ROOT / "configs" / "rm" / "demo.yaml", values)
    summary = run_rm(cfg, resume=True)
    after = evaluate_rm(summary["final_dir"], held, device="cpu", max_length=cfg.max_length)
    share_wrong = sum(r.get("rejected_kind") == "wrong_result" for r in held) / len(held)
    print(f"held-out pairs: {after['pairs']} (rejected = wrong_result: {share_wrong:.1%})")
    print(f"pairwise accuracy before training (random head): {before['accuracy']:.4f}")
    print(f"pairwise accuracy after training:                {after['accuracy']:.4f} (mean margin {after['mean_margin']})")
    for kind, b in after["by_rejected_kind"].items():
        print(f"  rejected = {kind}: {b['accuracy']:.4f} on {b['pairs']} pairs")
    print(f"rm: {summary['pairs']} train pairs, {summary['global_step']} steps in {summary['train_seconds']}s "
          f"(clock stop: {summary['stopped_by_clock']}), median {summary['median_step_seconds']}s/step, "
          f"peak RSS {summary['peak_memory_mb']} MB, last train-batch accuracy {summary['train_accuracy']}")
    res = {"before": before, "after": after, "train": summary}
    (out / "rm_demo.json").write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
