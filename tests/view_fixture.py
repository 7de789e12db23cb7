"""Run folders for the ``sqlcoach view`` tests, generated (no model): a demo-like folder and a
compare-like folder over a two-database world, with prediction files whose verdicts are known.

Questions (world/dev.json) and the two prediction files A and B:

    #  db       question                               A                 B
    0  concert  How many singers are there?            right             right
    1  concert  List the names of all singers.         right             wrong
    2  concert  What is the average age of singers?    wrong             right
    3  concert  Which singers are from France?         exec_error        right
    4  shop     What is the price of ink?              right             right
    5  shop     How many items cost more than 2?       wrong             wrong

so right in A only: {1}; right in B only: {2, 3}. B's file has one malformed line (line 3).
"""

from __future__ import annotations

import json
import sqlite3
import struct
import zlib
from pathlib import Path

SINGERS = [(1, "Ana", 31, "France"), (2, "Bo", 24, "Sweden"), (3, "Cy", 45, "France"), (4, "Di", 38, "Chile")]
ITEMS = [(1, "pen", 1.5), (2, "ink", 3.0), (3, "pad", 2.5)]
QUESTIONS = [
    ("concert", "How many singers are there?", "SELECT count(*) FROM singer"),
    ("concert", "List the names of all singers.", "SELECT name FROM singer"),
    ("concert", "What is the average age of singers?", "SELECT avg(age) FROM singer"),
    ("concert", "Which singers are from France?", "SELECT name FROM singer WHERE country = 'France'"),
    ("shop", "What is the price of ink?", "SELECT price FROM item WHERE label = 'ink'"),
    ("shop", "How many items cost more than 2?", "SELECT count(*) FROM item WHERE price > 2"),
]
PRED_A = ["SELECT count(*) FROM singer", "SELECT name FROM singer", "SELECT max(age) FROM singer",
          "SELECT name FROM singer WHERE nation = 'France'", "SELECT price FROM item WHERE label = 'ink'",
          "SELECT count(*) FROM item"]
PRED_B = ["SELECT count(singer_id) FROM singer", "SELECT name FROM singer WHERE age > 30", "SELECT avg(age) FROM singer",
          "SELECT name FROM singer WHERE country = 'France'", "SELECT price FROM item WHERE label = 'ink'",
          "SELECT count(*) FROM item WHERE price < 2"]
A_ONLY, B_ONLY = [1], [2, 3]
BAD_LINE = 3


def make_world(folder: Path) -> Path:
    """A Spider-layout world: ``dev.json``, ``dev_gold.sql``, ``database/{concert,shop}/*.sqlite``."""
    tables = (("concert", "singer", "singer_id INTEGER PRIMARY KEY, name TEXT, age INTEGER, country TEXT", SINGERS),
              ("shop", "item", "id INTEGER PRIMARY KEY, label TEXT, price REAL", ITEMS))
    for db, table, columns, rows in tables:
        (folder / "database" / db).mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(folder / "database" / db / f"{db}.sqlite")
        con.execute(f"CREATE TABLE {table} ({columns})")
        con.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(rows[0]))})", rows)
        con.commit()
        con.close()
    (folder / "dev.json").write_text(json.dumps([{"db_id": d, "question": q, "query": g} for d, q, g in QUESTIONS]))
    (folder / "dev_gold.sql").write_text("".join(f"{g}\t{d}\n" for d, _, g in QUESTIONS))
    return folder


def prediction_records(world: Path, preds: list[str], **extra_of: dict) -> list[dict]:
    """Records as ``sqlcoach predict`` writes them (``example`` = ``generate.resume.example_key``)."""
    from sqlcoach.data import load_examples
    from sqlcoach.generate.resume import example_key

    exs = load_examples("spider", world, "dev")
    return [{"index": i, "id": ex.id, "db_id": ex.db_id, "raw": p, "sql": p, "example": example_key(ex), "run_key": "k",
             **extra_of.get(str(i), {})} for i, (ex, p) in enumerate(zip(exs, preds))]


def write_jsonl(path: Path, records: list[dict], *, bad_at: int | None = None) -> Path:
    lines = [json.dumps(r) for r in records]
    if bad_at is not None:
        lines.insert(bad_at - 1, '{"index": 99, "sql": "SELECT')  # a torn line
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def tiny_png(path: Path, w: int = 8, h: int = 8) -> Path:
    """A valid grey PNG (standard library only)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\0" + b"\x80" * w for _ in range(h))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


def training_run(folder: Path, steps: int = 40, *, rewards: bool = False) -> Path:
    """``summary.json`` as ``train.run.write_summary`` writes it, ``log_history.json``, ``loss.png``;
    ``rewards``: a ``reward_curve`` in the summary too (as the RL recipes keep)."""
    folder.mkdir(parents=True, exist_ok=True)
    history = [{"step": s, "loss": 3.0 / (1 + s / 10), "learning_rate": 1e-3} for s in range(5, steps + 1, 5)]
    flat = {"recipe": "grpo" if rewards else "sft", "final_dir": str(folder / "final"), "global_step": steps,
            "max_steps": steps, "seconds": 12.5, "train_seconds": 11.0, "median_step_seconds": 0.27,
            "peak_memory_mb": 900.0, "peak_cuda_mb": None, "train_loss": 1.2, "rows": 100, "skipped": 0,
            "trainable_parameters": 1000, "device": "cpu", "resumed_from": None, "stopped_by_clock": False,
            "plot_png": str(folder / "loss.png")}
    if rewards:
        flat["reward_curve"] = [{"step": s, "execution": s / steps, "format": 1.0} for s in range(5, steps + 1, 5)]
    (folder / "summary.json").write_text(json.dumps({"recipe": flat["recipe"], "config": {"learning_rate": 1e-3},
                                                     "summary": flat}))
    (folder / "log_history.json").write_text(json.dumps(history))
    tiny_png(folder / "loss.png")
    return folder


def make_runs(base: Path) -> dict[str, Path]:
    """``base/demo`` (world, pred/greedy.jsonl = A, pred/sc2.jsonl = B with samples, votes,
    verifier scores and agent turns, sft/ training run, report.html) and ``base/compare-x``
    (start/world, methods/{a,b}/pred.jsonl, methods/a/train/, report.html)."""
    demo = base / "demo"
    world = make_world(demo / "world")
    write_jsonl(demo / "pred" / "greedy.jsonl", prediction_records(world, PRED_A))
    extra = {"2": {"samples": [PRED_B[2], PRED_A[2]], "raw_samples": [PRED_B[2], PRED_A[2]], "votes": [1, 1],
                   "sample_errors": [None, None], "chosen": 0, "verifier_scores": [0.9, 0.2],
                   "turns": [{"query": "SELECT avg(age) FROM singer", "observation": "avg(age)\n34.5"}]}}
    write_jsonl(demo / "pred" / "sc2.jsonl", prediction_records(world, PRED_B, **extra), bad_at=BAD_LINE)
    training_run(demo / "sft")
    (demo / "report.html").write_text("<!doctype html><title>demo report</title><h1>demo report</h1>")
    cmp_ = base / "compare-x"
    cworld = make_world(cmp_ / "start" / "world")
    (cmp_ / "report.json").write_text(json.dumps({"config": {"world": "", "data_kind": "spider"}}))
    write_jsonl(cmp_ / "methods" / "a" / "pred.jsonl", prediction_records(cworld, PRED_A))
    write_jsonl(cmp_ / "methods" / "b" / "pred.jsonl", prediction_records(cworld, PRED_B))
    training_run(cmp_ / "methods" / "a" / "train", rewards=True)
    write_jsonl(cmp_ / "methods" / "a" / "train" / "samples.jsonl",  # the RL sample log: not a prediction file
                [{"step": 1, "index": 0, "question": "q", "db_id": "concert", "gold_sql": "SELECT 1", "completion": "x",
                  "sql": "SELECT 1", "reward": 1.0}])
    (cmp_ / "report.html").write_text("<!doctype html><title>compare report</title><h1>compare report</h1>")
    return {"demo": demo, "compare": cmp_}


def per_example_file(path: Path, n: int, *, bad_at: int | None = None) -> Path:
    """``n`` rows in ``evaluate --per-example``'s format over the fixture's questions (cycled)."""
    rows = []
    for i in range(n):
        d, _, g = QUESTIONS[i % len(QUESTIONS)]
        p = PRED_A[i % len(QUESTIONS)]
        right = (i % len(QUESTIONS)) in (0, 1, 4)
        rows.append({"index": i, "db_id": d, "hardness": "easy" if i % 2 else "medium", "difficulty": None, "ex": right,
                     "em": right, "error": None if right else ("exec_error" if i % len(QUESTIONS) == 3 else "wrong_result"),
                     "message": "", "seconds": 0.001, "pred": p, "gold": g})
    return write_jsonl(path, rows, bad_at=bad_at)
