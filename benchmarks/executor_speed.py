"""How much does the sandboxed pool cost over a plain sqlite3 loop? (Spider dev, 972 examples.)

Run: ``OMP_NUM_THREADS=1 python benchmarks/executor_speed.py [--data ../shared/data] [--repeats 3]``

Workload: the 972 gold queries of ``spider-reference/dev972_gold.tsv`` plus the same 972 again as
"predictions" (1,944 executions), as ``sqlcoach evaluate --etype exec`` does.

* plain: one process, connections cached per db, ``connect + execute + fetchall``; no sandbox.
* pool(w), no cache: ``ExecutorPool(workers=w).run(all 1,944 jobs)`` in a FRESH pool each repeat,
  so worker start-up is included.
* pool(w), gold cached: gold with ``cache=True`` then predictions without cache (what the
  evaluator does; the gold queries here are identical to the predictions, so the second call
  still executes all 972 predictions).

Prints the median of ``--repeats`` runs for each: wall time and its ratio to the plain loop, and
CPU time (this process + its workers) and its ratio: on a busy shared machine the wall-clock
ratio of the multi-process runs mostly measures the other tenants, the CPU ratio does not.
"""

from __future__ import annotations

import argparse
import resource
import sqlite3
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from sqlcoach.execution import sandbox  # noqa: E402
from sqlcoach.execution.pool import ExecutorPool  # noqa: E402
from sqlcoach.execution.sandbox import Limits  # noqa: E402


def load_jobs(data: Path) -> list[tuple[str, str]]:
    jobs = []
    tsv = data / "spider-reference" / "dev972_gold.tsv"
    for line in tsv.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        sql, db_id = line.rsplit("\t", 1)
        jobs.append((str(data / "spider" / "database" / db_id / f"{db_id}.sqlite"), sql))
    return jobs


def cpu_seconds() -> float:
    """CPU time of this process plus its reaped children (workers count once joined)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def plain_loop(jobs: list[tuple[str, str]]) -> float:
    t0 = time.perf_counter()
    conns: dict[str, sqlite3.Connection] = {}
    for db, sql in jobs:
        conn = conns.get(db)
        if conn is None:
            conn = conns[db] = sqlite3.connect(db)
        try:
            conn.execute(sql).fetchall()
        except sqlite3.Error:
            pass
    for conn in conns.values():
        conn.close()
    return time.perf_counter() - t0


def pool_run(jobs: list[tuple[str, str]], workers: int, gold_cached: bool) -> tuple[float, int, float]:
    half = len(jobs) // 2
    sandbox.close_connections()  # in-process mode must not reuse connections of an earlier repeat
    c0 = cpu_seconds()
    t0 = time.perf_counter()
    with ExecutorPool(workers=workers, limits=Limits(timeout=30.0)) as pool:
        if gold_cached:
            res = pool.run(jobs[:half], cache=True) + pool.run(jobs[half:])
        else:
            res = pool.run(jobs)
        elapsed = time.perf_counter() - t0
    # (wall, failed queries, CPU of parent + workers: the fair number on a busy shared machine)
    return elapsed, sum(r.error is not None for r in res), cpu_seconds() - c0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO / ".." / "shared" / "data")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    gold = load_jobs(args.data)
    jobs = gold + gold  # gold + the same again as predictions
    print(f"{len(jobs)} executions over {len({d for d, _ in jobs})} databases, median of {args.repeats}")
    plain_loop(jobs)  # warm the OS page cache so that the first timed run is not penalised
    plain_runs = []
    for _ in range(args.repeats):
        c0 = cpu_seconds()
        plain_runs.append((plain_loop(jobs), cpu_seconds() - c0))
    plain = statistics.median(r[0] for r in plain_runs)
    plain_cpu = statistics.median(r[1] for r in plain_runs)
    print(f"plain single-process loop           {plain:7.3f} s                 cpu {plain_cpu:6.3f} s")
    for workers in (0, 2):
        for gold_cached in (False, True):
            runs = [pool_run(jobs, workers, gold_cached) for _ in range(args.repeats)]
            t = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[2] for r in runs)
            label = f"pool workers={workers} {'gold cached' if gold_cached else 'no cache   '}"
            print(
                f"{label}      {t:7.3f} s   ratio {t / plain:5.2f}x   cpu {cpu:6.3f} s "
                f"({cpu / plain_cpu:4.2f}x)   errors {runs[0][1]}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
