"""Hostile predictions through the whole `sqlcoach evaluate` process: time, peak memory, verdicts,
and whether the database file is byte-identical afterwards.

    .venv/bin/python benchmarks/hostile.py [--timeout 1.0] [--db-dir DIR]

Runs on a private copy of Spider's world_1 (city has 4,079 rows, so a three-way cartesian join
is 6.8e10 rows) when ../shared/data is present, else on a generated database of the same shape.
Also used by tests/unit/metrics/test_hostile_cli.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_WORLD = ROOT / ".." / "shared" / "data" / "spider" / "database" / "world_1" / "world_1.sqlite"

HOSTILE = [
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT max(x) FROM c",
    "SELECT count(*) FROM city AS a, city AS b, city AS c",
    "SELECT * FROM city AS a, city AS b, city AS c",
    "DELETE FROM city",
    "UPDATE city SET Population = 0",
    "DROP TABLE city",
    "CREATE TABLE t(x)",
    "INSERT INTO city (Name) VALUES ('x')",
    "VACUUM",
    "SELECT 1; DROP TABLE city",
    "ATTACH DATABASE '/tmp/x.sqlite' AS x",
    "PRAGMA writable_schema = ON",
    "PRAGMA query_only = OFF",
    "SELECT load_extension('/tmp/evil')",
    "SELECT randomblob(2000000000)",
    "SELECT zeroblob(2000000000)",
    "(" * 3000 + "SELECT 1" + ")" * 3000,
    "SELECT 'a\x00b' FROM city",
    "\x00\x00\x00",
    "lorem ipsum )))) ;;; DROP",
    "",
    "   ",
]


def make_world(folder: Path) -> Path:
    """A world_1 copy (shared data) or a generated stand-in with a 4,000-row city table."""
    target = folder / "world_1" / "world_1.sqlite"
    target.parent.mkdir(parents=True)
    if SHARED_WORLD.is_file():
        shutil.copyfile(SHARED_WORLD, target)
        return target
    con = sqlite3.connect(target)
    con.execute("CREATE TABLE city (ID INTEGER PRIMARY KEY, Name TEXT, Population INTEGER)")
    con.executemany("INSERT INTO city VALUES (?,?,?)", [(i, f"c{i}", i * 10) for i in range(4000)])
    con.commit()
    con.close()
    return target


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(timeout: float = 1.0, db_dir: Path | None = None, workers: int = 2) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="sqlcoach-hostile-"))
    db_root = db_dir or tmp / "database"
    target = make_world(db_root) if db_dir is None else db_root / "world_1" / "world_1.sqlite"
    before = sha(target)
    gold = tmp / "gold.sql"
    gold.write_text("".join("SELECT count(*) FROM city\tworld_1\n" for _ in HOSTILE))
    pred = tmp / "pred.sql"
    # one prediction per line: newlines cannot occur inside a line of the file format
    pred.write_text("".join(h.replace("\n", " ") + "\n" for h in HOSTILE), encoding="utf-8")
    rows = tmp / "rows.jsonl"
    exe = shutil.which("sqlcoach", path=str(Path(sys.executable).parent))
    cmd = [exe or "sqlcoach", "evaluate", "--gold", str(gold), "--pred", str(pred), "--db", str(db_root),
           "--etype", "all", "--timeout", str(timeout), "--workers", str(workers), "--per-example", str(rows)]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60 * timeout + 60)
    wall = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    recs = [json.loads(line) for line in rows.read_text().splitlines()] if rows.exists() else []
    after = sha(target)
    leftovers = sorted(p.name for p in target.parent.iterdir())
    return {
        "returncode": proc.returncode,
        "stderr": proc.stderr[-2000:],
        "seconds": wall,
        "timeout": timeout,
        # ru_maxrss of children is the largest single process (the CLI or one worker), in KiB
        "peak_rss_mb": max(peak_kb, ru0) / 1024,
        "verdicts": [(h[:50], r["ex"], r["error"]) for h, r in zip(HOSTILE, recs)],
        "unchanged": before == after,
        "files": leftovers,
        "shared_world": SHARED_WORLD.is_file(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--timeout", type=float, default=1.0)
    args = ap.parse_args()
    r = run(args.timeout)
    print(f"database: {'Spider world_1 (copy)' if r['shared_world'] else 'generated stand-in'}")
    for sql, ex, err in r["verdicts"]:
        print(f"  {err or 'correct':<13} {sql!r}")
    print(f"{len(r['verdicts'])} hostile predictions, --timeout {r['timeout']}: whole process {r['seconds']:.1f} s, "
          f"peak RSS of any one process {r['peak_rss_mb']:.0f} MiB, database byte-identical: {r['unchanged']}, "
          f"files in its folder afterwards: {r['files']}")


if __name__ == "__main__":
    main()
