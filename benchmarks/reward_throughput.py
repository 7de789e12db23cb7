"""Completions per second of the ``execution`` reward, with the gold results cached.

Run: ``OMP_NUM_THREADS=1 python benchmarks/reward_throughput.py [--data ../shared/data] [--repeats 5]
[--batch 256] [--workers 2] [--generated] [--unique]``

Workload (Spider dev, when ``--data`` holds it): the 972 runnable dev questions, each with 6
"completions": the lines of the six ``spider-reference/*.sql`` prediction files (gold, DISTINCT
removed, LIMIT n+1, ASC/DESC flipped, ORDER BY dropped, columns reversed), i.e. 5,832 completions,
grouped by question as GRPO groups generations, and scored ``--batch`` completions per call (the
reward's TRL contract: lists aligned with the completions). Most reference predictions equal the
gold (a file changes only the queries its edit applies to), and the reward runs identical
completions of a batch once; ``--unique`` appends a distinct ``/* k */`` comment to every
completion so that all of them are extracted, parsed and executed (the worst case). Without the
data (or with ``--generated``) a generated Spider-like database and query set is used instead.

What is timed: ``ExecutionReward.__call__`` over all batches. Before the timed runs one untimed
pass fills the executor pool's gold cache (this is "gold cached": in training, the G generations
of a prompt and later epochs reuse one gold result) and starts the workers. Before EACH timed run
the text caches (SQL extraction, statement type, sqlglot parse trees) are cleared, so every
completion is extracted, parsed and executed as a fresh generation would be; the gold results stay
cached in the pool. Prints each run, then the median.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from sqlcoach.execution.pool import ExecutorPool  # noqa: E402
from sqlcoach.execution.sandbox import Limits  # noqa: E402
from sqlcoach.rewards import common  # noqa: E402
from sqlcoach.rewards import execution as execution_module  # noqa: E402
from sqlcoach.rewards.execution import ExecutionReward  # noqa: E402

PRED_FILES = ("gold", "nodistinct", "limitplus1", "flipdir", "droporder", "swapcols")


def spider_workload(data: Path) -> list[tuple[str, str, str]]:
    """[(completion, gold, db_path)] grouped by question: 6 completions per dev question."""
    ref = data / "spider-reference"
    golds = []
    for line in (ref / "dev972_gold.tsv").read_text(encoding="utf-8").splitlines():
        if line.strip():
            sql, db_id = line.rsplit("\t", 1)
            golds.append((sql, str(data / "spider" / "database" / db_id / f"{db_id}.sqlite")))
    preds = {name: (ref / f"{name}.sql").read_text(encoding="utf-8").splitlines() for name in PRED_FILES}
    for name, lines in preds.items():
        if len(lines) != len(golds):
            raise SystemExit(f"{ref / (name + '.sql')}: {len(lines)} lines, expected {len(golds)}")
    return [(preds[name][i], gold, db) for i, (gold, db) in enumerate(golds) for name in PRED_FILES]


def generated_workload(folder: Path, questions: int = 500, seed: int = 0) -> list[tuple[str, str, str]]:
    """A Spider-like database (3 tables, a few hundred rows) and 6 completions per question."""
    rng = random.Random(seed)
    db = folder / "world.sqlite"
    conn = sqlite3.connect(db)
    conn.executescript(
        """
        CREATE TABLE country (id INTEGER PRIMARY KEY, name TEXT, continent TEXT, population INTEGER);
        CREATE TABLE city (id INTEGER PRIMARY KEY, name TEXT, country_id INTEGER, population INTEGER);
        CREATE TABLE language (country_id INTEGER, language TEXT, official TEXT, percentage REAL);
        """
    )
    continents = ["Asia", "Europe", "Africa", "America", "Oceania"]
    conn.executemany(
        "INSERT INTO country VALUES (?, ?, ?, ?)",
        [(i, f"Country{i}", rng.choice(continents), rng.randint(10_000, 9_000_000)) for i in range(1, 121)],
    )
    conn.executemany(
        "INSERT INTO city VALUES (?, ?, ?, ?)",
        [(i, f"City{i}", rng.randint(1, 120), rng.randint(1_000, 900_000)) for i in range(1, 601)],
    )
    conn.executemany(
        "INSERT INTO language VALUES (?, ?, ?, ?)",
        [(rng.randint(1, 120), rng.choice(["en", "fr", "es", "ar", "zh", "sw"]), rng.choice("TF"), rng.random() * 100)
         for _ in range(300)],
    )  # fmt: skip
    conn.commit()
    conn.close()
    templates = [
        "SELECT count(*) FROM city WHERE population > {n}",
        "SELECT name, population FROM country WHERE continent = '{c}' ORDER BY population DESC LIMIT {k}",
        "SELECT T1.name FROM city AS T1 JOIN country AS T2 ON T1.country_id = T2.id WHERE T2.continent = '{c}'",
        "SELECT continent, avg(population) FROM country GROUP BY continent HAVING count(*) > {k}",
        "SELECT DISTINCT T2.language FROM country AS T1 JOIN language AS T2 ON T1.id = T2.country_id "
        "WHERE T1.population > {n}",
        "SELECT name FROM country WHERE id NOT IN (SELECT country_id FROM city WHERE population > {n})",
    ]
    out = []
    for _ in range(questions):
        gold = rng.choice(templates).format(n=rng.randint(1_000, 800_000), c=rng.choice(continents), k=rng.randint(1, 9))
        variants = [
            gold,
            gold.replace("DISTINCT ", ""),
            gold.replace("DESC", "ASC") if "DESC" in gold else gold + " LIMIT 3",
            gold.replace("population >", "population <"),
            gold.replace("name", "nme", 1),
            gold.replace("SELECT", "SELECT id,", 1),
        ]
        out += [(v, gold, str(db)) for v in variants]
    return out


def clear_text_caches() -> None:
    """Forget extraction, statement types and parse trees: every completion costs as a new one."""
    for fn in (common.text_sql, execution_module._statement_type, execution_module._statement):
        fn.cache_clear()
    from sqlcoach.sql import parse

    for name in dir(parse):
        obj = getattr(parse, name)
        if callable(getattr(obj, "cache_clear", None)):
            obj.cache_clear()


def run_once(reward: ExecutionReward, work: list[tuple[str, str, str]], batch: int) -> tuple[float, list]:
    values: list = []
    t0 = time.perf_counter()
    for k in range(0, len(work), batch):
        chunk = work[k : k + batch]
        values += reward(
            prompts=[None] * len(chunk),
            completions=[c for c, _, _ in chunk],
            gold_sql=[g for _, g, _ in chunk],
            db_path=[d for _, _, d in chunk],
        )
    return time.perf_counter() - t0, values


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO / ".." / "shared" / "data")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=256, help="completions per reward call")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--generated", action="store_true", help="use a generated database even if Spider is present")
    ap.add_argument("--unique", action="store_true",
                    help="make every completion a distinct string (a trailing /* k */ comment), so that no "
                         "duplicate is de-duplicated: the worst case for a diverse model")  # fmt: skip
    args = ap.parse_args()

    tmp = None
    if not args.generated and (args.data / "spider-reference" / "dev972_gold.tsv").is_file():
        work, source = spider_workload(args.data), f"Spider dev ({args.data})"
    else:
        tmp = tempfile.TemporaryDirectory()
        work, source = generated_workload(Path(tmp.name)), "generated world database"
    if args.unique:
        work = [(f"{c} /* {k} */", g, d) for k, (c, g, d) in enumerate(work)]
    distinct = len({(c, g, d) for c, g, d in work})
    print(f"workload: {source}: {len(work)} completions ({distinct} distinct), batch {args.batch}, "
          f"workers {args.workers}")  # fmt: skip

    with ExecutorPool(workers=args.workers, limits=Limits(timeout=30.0)) as pool:
        reward = ExecutionReward(pool=pool)
        t_warm, values = run_once(reward, work, args.batch)  # fills the gold cache, starts workers
        scored = [v for v in values if v is not None]
        print(
            f"warm-up (gold cache filled): {t_warm:.2f}s; scored {len(scored)}/{len(values)}, "
            f"mean reward {sum(scored) / max(1, len(scored)):.4f}, "
            f"equal to gold {sum(v == reward.weight for v in scored) / max(1, len(scored)):.4f}"
        )
        times = []
        for r in range(args.repeats):
            clear_text_caches()
            t, again = run_once(reward, work, args.batch)
            if again != values:
                raise SystemExit("rewards changed between runs: the reward is not deterministic")
            times.append(t)
            print(f"run {r + 1}: {t:.3f}s  {len(work) / t:,.0f} completions/s")
        info = pool.cache_info()
    med = statistics.median(times)
    print(f"median of {len(times)}: {med:.3f}s  {len(work) / med:,.0f} completions/s  (gold cache {info})")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
