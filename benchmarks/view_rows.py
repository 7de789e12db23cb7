"""How fast `sqlcoach view` answers row requests over a large prediction file.

    PYTHONPATH=src python benchmarks/view_rows.py [--rows 20000] [--repeat 15]

Writes an `evaluate --per-example` file of N rows over the test fixture's questions
(tests/view_fixture.py, cycled; matched to their world by database and gold SQL), loads it the
way `sqlcoach view` does, and times R calls of each kind of request through FastAPI's
TestClient (in process, no network): the first page, a page deep in the file, a verdict +
database filter, a full-text search, a sort on question text descending. Prints the load time
and, per request kind, the median and max milliseconds and the rows that matched.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()

    import view_fixture as vf
    from fastapi.testclient import TestClient

    from sqlcoach.view.app import build_app
    from sqlcoach.view.setup import ViewOptions, open_viewer

    with tempfile.TemporaryDirectory() as tmp:
        world = vf.make_world(Path(tmp) / "world")
        vf.per_example_file(Path(tmp) / "run" / "rows.jsonl", args.rows)
        t0 = time.perf_counter()
        viewer = open_viewer(ViewOptions(roots=[str(Path(tmp) / "run")], data=str(world), sql_workers=0),
                             log=lambda m: None)
        load_s = time.perf_counter() - t0
        client = TestClient(build_app(viewer))
        kinds = {
            "first page (50)": {},
            "deep page (offset N-100, 100)": {"offset": args.rows - 100, "limit": 100},
            "verdict=wrong & db=concert": {"verdict": "wrong", "db": "concert"},
            "search 'france'": {"q": "france"},
            "sort question desc": {"sort": "question", "order": "desc"},
        }
        print(f"{args.rows} rows loaded in {load_s:.2f} s")
        print(f"{'request':<32}{'median ms':>10}{'max ms':>9}{'matched':>9}")
        for name, params in kinds.items():
            times, total = [], 0
            for _ in range(args.repeat):
                t = time.perf_counter()
                r = client.get("/api/files/0/rows", params=params)
                times.append(1000 * (time.perf_counter() - t))
                total = r.json()["total"]
            print(f"{name:<32}{statistics.median(times):>10.1f}{max(times):>9.1f}{total:>9}")
        viewer.close()


if __name__ == "__main__":
    main()
