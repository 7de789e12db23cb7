"""Helpers shared by the data tests: generated SQLite databases and line lookups."""

from __future__ import annotations

import sqlite3
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "data"
SHARED = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"

SHOP_SQL = """
CREATE TABLE item (item_id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL);
CREATE TABLE sale (sale_id INTEGER, item_id INTEGER REFERENCES item, day TEXT,
                   PRIMARY KEY (sale_id, day));
INSERT INTO item VALUES (1, 'Red Kettle', 25.5), (2, 'Blue Mug', 7.0), (3, 'Green Teapot', 31.0);
INSERT INTO sale VALUES (1, 1, 'Monday'), (2, 3, 'Tuesday'), (3, 3, 'Monday');
"""
SCHOOL_SQL = """
CREATE TABLE student (id INTEGER PRIMARY KEY, name TEXT);
INSERT INTO student VALUES (1, 'Ada'), (2, 'Grace');
"""


def make_db(path: Path, script: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.executescript(script)
    con.commit()
    con.close()
    return path


def line_of(path: Path, needle: str) -> int:
    """1-based line of the first line containing ``needle`` (to check reported line numbers)."""
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not in {path}")
