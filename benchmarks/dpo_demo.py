"""DPO on execution-mined pairs, demo world, from the shared SFT start checkpoint: how many
questions give pairs, time per DPO step, peak memory, and dev EX before/after.

    OMP_NUM_THREADS=2 python benchmarks/dpo_demo.py --start /work/runs/start/sft/final \\
        --world /work/runs/start/world --out /work/runs/h8/demo [--n-dev 200] [--mine 288] [--k 8] \\
        [--seconds 480] [--stage all|mine|eval-start|dpo|eval-dpo|report] [key=value ...]

Stages (each writes ``OUT/<stage>.json`` and is skipped when that file exists, so a second run
only does what is missing; ``--stage X`` runs one stage, which lets the start model's evaluation
run while pairs are mined):

1. ``mine``: ``sqlcoach.train.pairs.mine_pairs`` on ``--mine`` questions of the world's TRAIN
   split, evenly spaced (Spider files are grouped by database), k samples at ``--temperature``;
   15 % of the questions held out (``OUT/pairs/pairs_eval.jsonl``, used by ``rm_demo.py``).
2. ``eval-start``: greedy ``sqlcoach.generate.predict`` + ``sqlcoach.metrics.evaluate_examples``
   (EX, spider mode) of the start checkpoint on the first ``--n-dev`` dev questions (0: all 600).
3. ``dpo``: ``run_dpo`` with ``configs/dpo/demo.yaml`` (full, sigmoid) and a ``--seconds`` budget;
   ``key=value`` pairs override that config.
4. ``eval-dpo``: the same greedy evaluation of the DPO model.
5. ``heldout-start`` / ``heldout-dpo`` (only with ``--stage``): the same evaluation on the train
   questions held out of the pairs (databases seen in SFT, questions unseen by DPO).

Prints one line per figure and writes ``OUT/dpo_demo.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# prompts as the start checkpoint was trained (configs/sft/demo.yaml)
_SFT = __import__("yaml").safe_load((ROOT / "configs" / "sft" / "demo.yaml").read_text())
TEMPLATE, SCHEMA_STYLE, SCHEMA_VALUES, MAX_NEW = _SFT["template"], _SFT["schema_style"], _SFT["schema_sample_values"], 128


def evaluate(model_dir: str, examples: list[Any], pred_path: Path) -> dict[str, Any]:
    """Greedy predictions for ``examples`` and their EX: the same procedure for every model."""
    from sqlcoach.generate.predict import predict
    from sqlcoach.prompts.settings import PromptSettings
    from sqlcoach.metrics import evaluate_examples
    from sqlcoach.models.load import load_model

    model, tok = load_model(model_dir, dtype="float32", device="cpu")
    t0 = time.monotonic()
    predict(model, tok, examples, pred_path, n=1, temperature=0.0, batch_size=16, max_new_tokens=MAX_NEW,
            prompt=PromptSettings.of(template=TEMPLATE, schema_style=SCHEMA_STYLE, schema_sample_values=SCHEMA_VALUES), workers=1, progress=True)
    preds = pred_path.read_text().split("\n")[: len(examples)]
    rep = evaluate_examples(examples, preds, etype="exec", mode="spider", workers=1)
    correct = sum(1 for v in rep.verdicts if v.ex)
    print(rep.table())
    return {"model": model_dir, "n": len(examples), "correct": correct, "ex": round(correct / len(examples), 4),
            "executes": rep.summary.get("executes"), "errors": rep.summary.get("errors"),
            "seconds": round(time.monotonic() - t0, 1)}


def stage_mine(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    if args.pairs_from:
        # pairs already mined by `sqlcoach pairs mine ... --out DIR/pairs.jsonl --holdout F` (same function)
        src = Path(args.pairs_from)
        info = json.loads((src / "pairs.stats.json").read_text())
        (out / "pairs").mkdir(parents=True, exist_ok=True)
        for name in ("pairs.jsonl", "pairs_eval.jsonl"):
            (out / "pairs" / name).write_bytes((src / name).read_bytes())
        return {"stats": info["stats"], "train_pairs": info["train_pairs"], "eval_pairs": info.get("eval_pairs", 0),
                "k": info["k"], "temperature": info["temperature"], "questions": info["stats"]["questions"],
                "mined_by": f"sqlcoach pairs mine (copied from {src})"}
    from sqlcoach.data import load_examples
    from sqlcoach.execution.pool import ExecutorPool
    from sqlcoach.models.load import load_model
    from sqlcoach.prompts.settings import PromptSettings
    from sqlcoach.train.pairs import mine_pairs, split_holdout, write_pairs

    train = load_examples("spider", args.world, "train")
    step = len(train) / args.mine
    examples = [train[int(i * step)] for i in range(args.mine)] if args.mine < len(train) else train
    model, tok = load_model(args.start, dtype="float32", device="cpu")
    with ExecutorPool(1) as pool:
        pairs, stats = mine_pairs(model, tok, examples, k=args.k, temperature=args.temperature, max_new_tokens=MAX_NEW,
                                  prompt=PromptSettings.of(template=TEMPLATE, schema_style=SCHEMA_STYLE, schema_sample_values=SCHEMA_VALUES),
                                  pool=pool, seed=0, batch_size=8)
    tr, ev = split_holdout(pairs, 0.15, by="question")
    write_pairs(out / "pairs" / "pairs.jsonl", tr)
    write_pairs(out / "pairs" / "pairs_eval.jsonl", ev)
    print(stats.table())
    return {"stats": stats.as_dict(), "train_pairs": len(tr), "eval_pairs": len(ev), "k": args.k,
            "temperature": args.temperature, "questions": len(examples)}


def heldout(args: argparse.Namespace, out: Path) -> list[Any]:
    """Train-split questions whose pairs went to ``pairs_eval.jsonl`` (never trained on by DPO)."""
    from sqlcoach.data import load_examples
    from sqlcoach.train.pairs import read_pairs

    ids = {r["id"] for r in read_pairs(out / "pairs" / "pairs_eval.jsonl")}
    return [ex for ex in load_examples("spider", args.world, "train") if ex.id in ids]


def stage_dpo(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from sqlcoach.config import load_config, parse_overrides
    from sqlcoach.train.dpo import run_dpo
    from sqlcoach.config import DPORunConfig

    values = {"model": args.start, "pairs_path": str(out / "pairs" / "pairs.jsonl"),
              "eval_pairs_path": str(out / "pairs" / "pairs_eval.jsonl"),
              "output_dir": str(out / "dpo"), "max_seconds": str(args.seconds), "disable_tqdm": "true"}
    values.update(parse_overrides(args.overrides))
    cfg = load_config(DPORunConfig, ROOT / "configs" / "dpo" / "demo.yaml", values)
    return run_dpo(cfg, resume=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--start", required=True, help="SFT start checkpoint (full model folder)")
    ap.add_argument("--world", required=True, help="demo world folder (Spider layout)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--n-dev", type=int, default=200, help="first N dev questions (0: all)")
    ap.add_argument("--mine", type=int, default=288, help="train questions to mine (evenly spaced)")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--pairs-from", default=None,
                    help="folder where `sqlcoach pairs mine --out DIR/pairs.jsonl --holdout F` wrote its files: "
                         "use those instead of mining here")
    ap.add_argument("--seconds", type=float, default=480.0, help="DPO wall-clock budget")
    ap.add_argument("--stage", default="all", choices=["all", "mine", "eval-start", "dpo", "eval-dpo",
                                                       "heldout-start", "heldout-dpo", "report"])
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="DPO config overrides")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from sqlcoach.data import load_examples

    dev = load_examples("spider", args.world, "dev")
    if args.n_dev:
        dev = dev[: args.n_dev]
    stages = {
        "mine": lambda: stage_mine(args, out),
        "eval-start": lambda: evaluate(args.start, dev, out / "pred" / f"start_{len(dev)}.sql"),
        "dpo": lambda: stage_dpo(args, out),
        "eval-dpo": lambda: evaluate(str(out / "dpo" / "final"), dev, out / "pred" / f"dpo_{len(dev)}.sql"),
        # the train questions held out of the pairs: their databases were seen in SFT, the questions not in DPO
        "heldout-start": lambda: evaluate(args.start, heldout(args, out), out / "pred" / "heldout_start.sql"),
        "heldout-dpo": lambda: evaluate(str(out / "dpo" / "final"), heldout(args, out), out / "pred" / "heldout_dpo.sql"),
    }
    results: dict[str, Any] = {}
    for name, fn in stages.items():
        path = out / f"{name}.json"
        if args.stage in ("all", name) and not path.exists():
            t0 = time.monotonic()
            res = fn()
            res["stage_seconds"] = round(time.monotonic() - t0, 1)
            path.write_text(json.dumps(res, indent=2) + "\n")
        if path.exists():
            results[name] = json.loads(path.read_text())

    m, d = results.get("mine"), results.get("dpo")
    if m:
        s = m["stats"]
        print(f"mined: {s['questions_with_pairs']}/{s['questions']} train questions gave pairs; {s['pairs']} pairs "
              f"({m['train_pairs']} train / {m['eval_pairs']} held out); chosen sample/gold {s['chosen_sample']}/{s['chosen_gold']}; "
              f"rejected by kind {s['by_rejected_kind']}; samples correct {s['samples_correct']}/{s['samples']} "
              f"(k={m['k']}, T={m['temperature']}, {s['seconds']:.0f}s)")
    if d:
        print(f"dpo: {d['global_step']} steps in {d['train_seconds']}s (clock stop: {d['stopped_by_clock']}), "
              f"median {d['median_step_seconds']}s/step, peak RSS {d['peak_memory_mb']} MB, final loss {d['last_metrics'].get('loss')}, "
              f"margin {d['last_metrics'].get('rewards/margins')}, held-out pair accuracy "
              f"{(d.get('eval') or {}).get('eval_rewards/accuracies')}")
    for name in ("eval-start", "eval-dpo", "heldout-start", "heldout-dpo"):
        e = results.get(name)
        if e:
            what = "dev" if name.startswith("eval") else "held-out train"
            print(f"{name}: EX {e['ex']:.4f} ({e['correct']}/{e['n']} {what} questions), executes {e['executes']}")
    (out / "dpo_demo.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
