"""Which prompt lets the demo's model write SQL for unseen databases? EX on dev per variant.

Run (from the repository root; each variant is one `sqlcoach demo` run, ~6-8 minutes on 2 idle cores):

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/demo_prompts.py --out runs/demo_prompts \
        [--dev-limit 200] [--max-seconds 300 | --max-steps 700] [--variants anonymized,real,renamed] \
        [--reuse] [key=value ...]

    # value retrieval in the prompt, like for like (same code, same steps, only the prompt differs):
    .venv/bin/python benchmarks/demo_prompts.py --out runs/values --variants values-off,values-on \
        --max-steps 700 --dev-limit 0

Variants: ``anonymized`` (the demo's recipe, ``configs/sft/demo.yaml``: names and values as placeholders),
``real`` (the ``minimal`` template: real names, no augmentation), ``renamed`` (``minimal`` with two
schema-renamed copies of each example and no original, the recipe the demo used before
``anonymized``), ``values-off`` / ``values-on`` (the demo's recipe with ``value_retrieval=0`` /
its default: the anonymized prompt then says which placeholder column holds each value the
question mentions); extra ``key=value`` settings go to every variant. Each variant trains for the
same wall-clock budget (``--max-seconds``) or the same number of steps (``--max-steps``, a linear
schedule: like for like on a busy machine) on the same world and is scored greedily on the first
``--dev-limit`` dev questions (0: all; databases never seen in training). ``--reuse`` scores
variants whose folder already holds a finished demo instead of running them again. With two
variants, the paired comparison follows (questions right under one and not the other, exact
McNemar p-value); EX carries its Wilson 95% interval. Prints one line per variant: SFT steps, seconds per
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

from sqlcoach.metrics.stats import mcnemar_counts, wilson

VARIANTS = {
    "anonymized": [],
    "real": ["template=minimal"],
    "renamed": ["template=minimal", "rename_copies=2", "rename_keep_original=false"],
    "values-off": ["value_retrieval=0"],
    "values-on": [],
}


def per_question(out: Path) -> list[bool]:
    """EX of each dev question of a finished demo in ``out`` (greedy predictions, Spider rules)."""
    from sqlcoach.data import load_examples
    from sqlcoach.generate.predict import read_sql_lines
    from sqlcoach.metrics import evaluate_examples

    rep = json.loads((out / "report.json").read_text())
    n = rep["stages"]["sft_greedy"]["count"]
    examples = load_examples("spider", out / "world", "dev")[:n]
    preds = read_sql_lines(out / "pred" / "greedy.sql", n)
    return [v.ex for v in evaluate_examples(examples, preds, etype="exec", workers=0).verdicts]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--dev-limit", type=int, default=200)
    ap.add_argument("--max-seconds", type=float, default=300.0)
    ap.add_argument("--max-steps", type=int, default=None, help="train this many steps instead (linear schedule, no clock)")
    ap.add_argument("--reuse", action="store_true", help="score a variant's finished demo instead of running it again")
    ap.add_argument("--variants", default="anonymized,real,renamed")
    ap.add_argument("overrides", nargs="*", metavar="key=value")
    args = ap.parse_args()
    rows = []
    for name in args.variants.split(","):
        if name not in VARIANTS:
            raise SystemExit(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
        out = Path(args.out) / name
        budget = ([f"max_steps={args.max_steps}", "max_seconds=null", "anneal_by_clock=false", "lr_scheduler_type=linear"]
                  if args.max_steps else [f"max_seconds={args.max_seconds}", "anneal_by_clock=true"])
        cmd = [sys.executable, "-m", "sqlcoach.cli", "demo", "--out", str(out),
               *(["--dev-limit", str(args.dev_limit)] if args.dev_limit else []),
               "--n", "0", "--untrained-limit", "0", *budget, *VARIANTS[name], *args.overrides]
        rc = 0
        if not (args.reuse and (out / "report.json").is_file()):
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
                     block.get("ex"), block.get("em"), out))
    print(f"\n{'variant':<12}{'steps':>7}{'s/step':>8}{'loss':>7}{'peak MiB':>10}{'dev n':>7}{'EX':>7}{'95% CI':>15}{'EM':>7}")
    for name, steps, sps, loss, mem, n, ex, em, _out in rows:
        lo, hi = wilson(round(ex * n), n)
        print(f"{name:<12}{steps:>7}{sps:>8.2f}{loss:>7.3f}{mem!s:>10}{n:>7}{ex:>7.3f}{f'[{lo:.3f}, {hi:.3f}]':>15}{(em or 0):>7.3f}")
    if len(rows) == 2:
        a, b = per_question(rows[0][-1]), per_question(rows[1][-1])
        only_a = sum(x and not y for x, y in zip(a, b))
        only_b = sum(y and not x for x, y in zip(a, b))
        print(f"paired over {len(a)} questions: both right {sum(x and y for x, y in zip(a, b))}, only {rows[0][0]} {only_a}, "
              f"only {rows[1][0]} {only_b}, exact McNemar p = {mcnemar_counts(only_a, only_b):.4f}")
    print(f"(load average now: {os.getloadavg()[0]:.1f}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
