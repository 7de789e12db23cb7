"""Whole-process time of `sqlcoach evaluate` on the 972 runnable Spider dev examples, as a ratio
to a plain loop that runs every gold and predicted query once (benchmarks/plain_loop.py).

    .venv/bin/python benchmarks/eval_speed.py [--rounds 5] [--pred flipdir]

Runs alternate (plain, exec, all, plain, exec, all, ...) so that load on this shared machine hits
all three alike; prints each median and the ratios of medians. Targets (issue 2): exec <= 3x,
all <= 6x. Needs ../shared/data (Spider dev databases and spider-reference).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared" / "data"


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pred", default="flipdir", help="prediction file in spider-reference (default flipdir)")
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()
    ref = SHARED / "spider-reference"
    if not ref.is_dir():
        sys.exit(f"shared data not found at {SHARED}")
    gold, pred, db = ref / "dev972_gold.tsv", ref / f"{args.pred}.sql", SHARED / "spider" / "database"
    tables = SHARED / "spider" / "tables.json"
    py = sys.executable
    exe = shutil.which("sqlcoach", path=str(Path(py).parent)) or "sqlcoach"
    env = dict(os.environ)
    common = [exe, "evaluate", "--gold", str(gold), "--pred", str(pred), "--db", str(db), "--table", str(tables), "--quiet"]
    if args.workers is not None:
        common += ["--workers", str(args.workers)]
    cmds = {
        "plain": [py, str(ROOT / "benchmarks" / "plain_loop.py"), str(gold), str(pred), str(db)],
        "exec": common + ["--etype", "exec"],
        "all": common + ["--etype", "all"],
    }
    for c in cmds.values():  # warm the page cache and .pyc files; not counted
        timed(c, env)
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(args.rounds):
        for k, c in cmds.items():
            times[k].append(timed(c, env))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"cores {os.cpu_count()}, rounds {args.rounds}, predictions {args.pred}.sql (972 examples)")
    for k in cmds:
        print(f"  {k:<6} median {med[k]:.3f} s   runs {' '.join(f'{t:.2f}' for t in times[k])}")
    print(f"ratio exec/plain {med['exec'] / med['plain']:.2f}x (target <= 3x)")
    print(f"ratio all/plain  {med['all'] / med['plain']:.2f}x (target <= 6x)")


if __name__ == "__main__":
    main()
