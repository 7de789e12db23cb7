"""Which prompt lets the demo's model write SQL for unseen databases? EX on dev per variant.

Run (from the repository root; each variant is one `sqlcoach demo` run, ~6-8 minutes on 2 idle cores):

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/demo_prompts.py --out runs/demo_prompts \
        [--dev-limit 200] [--max-seconds 300] [--variants anonymized,real,renamed] [key=value ...]

Variants: ``anonymized`` (the demo's recipe, ``configs/sft/demo.yaml``: names and values as placeholders),
``real`` (the ``minimal`` template: real names, no augmentation), ``renamed`` (``minimal`` with two
schema-renamed copies of each example and no original, the recipe the demo used before
``anonymized``); extra ``key=value`` settings go to every variant. Each variant trains for the same
wall-clock budget on the same world and is scored greedily on the first ``--dev-limit`` dev
questions (databases never seen in training). Prints one line per variant: SFT steps, seconds per
step, final train loss, peak memory of the SFT stage, EX and EM. Figures depend on the machine and
its load: compare variants of one invocation, not across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

VARIANTS = {
    "anonymized": [],
    "real": ["template=minimal"],
    "renamed": ["template=minimal", "rename_copies=2", "rename_keep_original=false"],
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--dev-limit", type=int, default=200)
    ap.add_argument("--max-seconds", type=float, default=300.0)
    ap.add_argument("--variants", default="anonymized,real,renamed")
    ap.add_argument("overrides", nargs="*", metavar="key=value")
    args = ap.parse_args()
    rows = []
    for name in args.variants.split(","):
        if name not in VARIANTS:
            raise SystemExit(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
        out = Path(args.out) / name
        cmd = [sys.executable, "-m", "sqlcoach.cli", "demo", "--out", str(out), "--dev-limit", str(args.dev_limit),
               "--n", "0", "--untrained-limit", "0", f"max_seconds={args.max_seconds}", *VARIANTS[name], *args.overrides]
        print("$", " ".join(cmd), flush=True)
        with open(Path(args.out).mkdir(parents=True, exist_ok=True) or Path(args.out) / f"{name}.log", "w") as log:
            rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
        if rc != 0:
            print(f"{name}: demo failed (exit {rc}); see {Path(args.out) / f'{name}.log'}")
            continue
        rep = json.loads((out / "report.json").read_text())
        sft = rep["sft"]
        summ = rep["stages"]["sft_greedy"]["summary"]
        block = summ.get("all", summ)
        rows.append((name, sft["global_step"], sft["seconds"] / max(1, sft["global_step"]), sft["train_loss"],
                     rep["memory"]["sft"].get("peak_rss_mb"), rep["stages"]["sft_greedy"]["count"],
                     block.get("ex"), block.get("em")))
    print(f"\n{'variant':<12}{'steps':>7}{'s/step':>8}{'loss':>7}{'peak MiB':>10}{'dev n':>7}{'EX':>7}{'EM':>7}")
    for name, steps, sps, loss, mem, n, ex, em in rows:
        print(f"{name:<12}{steps:>7}{sps:>8.2f}{loss:>7.3f}{mem!s:>10}{n:>7}{ex:>7.3f}{(em or 0):>7.3f}")
    print(f"(load average now: {os.getloadavg()[0]:.1f}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
