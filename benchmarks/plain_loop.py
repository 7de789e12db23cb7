"""The baseline of benchmarks/eval_speed.py: run every gold and predicted query once, in one
process, with nothing else (no sandbox, no comparison, no parsing). Usage:
    python benchmarks/plain_loop.py GOLD PRED DB_DIR
"""

import sqlite3
import sys


def main(gold_path: str, pred_path: str, db_dir: str) -> None:
    gold = [ln.rstrip("\n").rsplit("\t", 1) for ln in open(gold_path, encoding="utf-8")]
    preds = open(pred_path, encoding="utf-8").read().split("\n")[: len(gold)]
    conns: dict[str, sqlite3.Connection] = {}
    for (g, db), p in zip(gold, preds):
        con = conns.get(db)
        if con is None:
            con = conns[db] = sqlite3.connect(f"file:{db_dir}/{db}/{db}.sqlite?mode=ro", uri=True)
            con.text_factory = lambda b: b.decode("utf-8", "replace")
        for sql in (g, p):
            try:
                con.execute(sql).fetchall()
            except Exception:
                pass


if __name__ == "__main__":
    main(*sys.argv[1:4])
