"""Whole-process time of `sqlcoach evaluate` on the 972 runnable Spider dev examples, as a ratio
to a plain loop that runs every gold and predicted query once (benchmarks/plain_loop.py).

    .venv/bin/python benchmarks/eval_speed.py [--rounds 5] [--pred flipdir]

Runs alternate (plain, exec, exec*, all, plain, ...) so that load on this shared machine hits
them alike; prints each median (wall and CPU of all processes) and the ratios of medians.
``exec`` starts with an empty hardness cache, ``exec*`` with the cache an earlier evaluation of the
same gold file left (sqlcoach.metrics.cache); ``all`` always parses every prediction. Targets: issue 2 exec <= 3x,
all <= 6x; issue 28 exec <= 1.3x, all <= 1.5x. Needs ../shared/data (Spider dev databases and spider-reference).
Every command runs with ``PYTHONDONTWRITEBYTECODE`` removed from its environment, so that imports
read cached bytecode as an installed package does (with it set, each run recompiles every
sqlcoach module it imports, ~0.15 s of CPU that no user pays).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared" / "data"


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and all its child processes)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    dt = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return dt, cpu


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
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    common = [exe, "evaluate", "--gold", str(gold), "--pred", str(pred), "--db", str(db), "--table", str(tables), "--quiet"]
    if args.workers is not None:
        common += ["--workers", str(args.workers)]
    cmds = {
        "plain": [py, str(ROOT / "benchmarks" / "plain_loop.py"), str(gold), str(pred), str(db)],
        "exec": common + ["--etype", "exec"],
        "exec*": common + ["--etype", "exec"],
        "all": common + ["--etype", "all"],
    }
    # "exec" runs with an empty hardness cache (a first evaluation of this gold file); "exec*"
    # with a warm one (every later evaluation of the same gold file: sqlcoach.metrics.cache).
    warm_dir = tempfile.mkdtemp(prefix="sqlcoach-bench-warm-")
    def env_for(k: str) -> dict[str, str]:
        e = dict(env)
        e["SQLCOACH_CACHE_DIR"] = warm_dir if k == "exec*" else tempfile.mkdtemp(prefix="sqlcoach-bench-cold-")
        return e
    for k, c in cmds.items():  # warm the page cache, .pyc files and the warm hardness cache
        timed(c, env_for(k))
    times: dict[str, list[float]] = {k: [] for k in cmds}
    cpu: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(args.rounds):
        for k, c in cmds.items():
            wall, used = timed(c, env_for(k))
            times[k].append(wall)
            cpu[k].append(used)
    med = {k: statistics.median(v) for k, v in times.items()}
    mcpu = {k: statistics.median(v) for k, v in cpu.items()}
    print(f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}, rounds {args.rounds}, "
          f"predictions {args.pred}.sql (972 examples)")
    for k in cmds:
        print(f"  {k:<6} wall median {med[k]:.3f} s  (runs {' '.join(f'{t:.2f}' for t in times[k])})"
              f"   CPU median {mcpu[k]:.3f} s")
    # Wall time is what a user waits; CPU time (all processes) is steadier on a busy machine.
    print(f"ratio exec/plain {med['exec'] / med['plain']:.2f}x wall, {mcpu['exec'] / mcpu['plain']:.2f}x CPU (target <= 3x)  [first evaluation of this gold file]")
    print(f"ratio exec*/plain {med['exec*'] / med['plain']:.2f}x wall, {mcpu['exec*'] / mcpu['plain']:.2f}x CPU (target <= 3x)  [hardness cached from an earlier run]")
    print(f"ratio all/plain  {med['all'] / med['plain']:.2f}x wall, {mcpu['all'] / mcpu['plain']:.2f}x CPU (target <= 6x)")


if __name__ == "__main__":
    main()
