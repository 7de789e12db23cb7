"""Agreement of sqlcoach's hardness and exact match with the official Spider scorer.

Run:  PYTHONPATH=src python benchmarks/em_agreement.py [--data ../shared/data]

For each prediction file of spider-reference/ (972 predictions, aligned with dev972_gold.tsv) it
prints the agreement (%) of ``sqlcoach.sql.hardness.hardness(gold)`` with the official hardness
column and of ``sqlcoach.sql.exact_match.exact_match(pred, gold, db)`` with the official ``em``
column, the indices where they disagree, sqlcoach's EM next to the official EM, and the time per
(hardness + EM) pair, cold caches for the first file.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from sqlcoach.sql.exact_match import exact_match
from sqlcoach.sql.hardness import hardness
from sqlcoach.sql.tables import load_tables

FILES = ("gold", "nodistinct", "limitplus1", "flipdir", "droporder", "swapcols")


def agreement(data: Path) -> list[dict]:
    """One row per reference file: hardness/EM agreement, disagreeing indices, EM rates, timing."""
    ref = data / "spider-reference"
    tables = load_tables(data / "spider" / "tables.json")
    gold = [line.rstrip("\n").split("\t") for line in open(ref / "dev972_gold.tsv", encoding="utf-8")]
    rows = []
    for name in FILES:
        preds = [line.rstrip("\n") for line in open(ref / f"{name}.sql", encoding="utf-8")]
        official = [line.rstrip("\n").split("\t") for line in open(ref / f"{name}.official.tsv", encoding="utf-8")][1:]
        if not (len(preds) == len(gold) == len(official)):
            raise SystemExit(f"{name}: {len(preds)} predictions, {len(gold)} gold, {len(official)} verdicts")
        hard_bad, em_bad, em_ours = [], [], 0
        start = time.perf_counter()
        for i, (pred, (sql, db_id), off) in enumerate(zip(preds, gold, official)):
            h = hardness(sql)
            em = exact_match(pred, sql, tables.get(db_id))
            em_ours += em
            if h != off[1]:
                hard_bad.append(i)
            if int(em) != int(off[4]):
                em_bad.append(i)
        seconds = time.perf_counter() - start
        n = len(gold)
        rows.append(
            {
                "file": name,
                "n": n,
                "hardness_agree": 1 - len(hard_bad) / n,
                "em_agree": 1 - len(em_bad) / n,
                "em_ours": em_ours / n,
                "em_official": sum(int(o[4]) for o in official) / n,
                "hardness_disagree": hard_bad,
                "em_disagree": em_bad,
                "ms_per_pair": 1000 * seconds / n,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    parser.add_argument("--data", type=Path, default=default, help="the shared data folder")
    args = parser.parse_args(argv)
    if not (args.data / "spider-reference").is_dir():
        print(f"no spider-reference under {args.data}", file=sys.stderr)
        return 2
    print(f"{'file':<11} {'hardness%':>9} {'EM agree%':>9} {'EM ours':>8} {'EM off.':>8} {'ms/pair':>8}  disagreeing indices")
    for r in agreement(args.data):
        print(
            f"{r['file']:<11} {100 * r['hardness_agree']:9.2f} {100 * r['em_agree']:9.2f} {r['em_ours']:8.4f}"
            f" {r['em_official']:8.4f} {r['ms_per_pair']:8.3f}  hardness={r['hardness_disagree']} em={r['em_disagree']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
