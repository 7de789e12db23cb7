"""Generated test database for the reward tests (imported by conftest.py and the tests)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

SINGERS = [
    (1, "Ann", "France", 30),
    (2, "Bob", "USA", 45),
    (3, "Cid", "France", 22),
    (4, "Dee", "UK", 35),
]
CONCERTS = [
    (1, "Spring", 2014, 1),
    (2, "Summer", 2015, 2),
    (3, "Fall", 2015, 1),
    (4, "Winter", 2016, 3),
]


def make_concert_db(path: Path) -> Path:
    """Write the concert database (singer, concert) to ``path`` and return it."""
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER);
        CREATE TABLE concert (concert_id INTEGER PRIMARY KEY, name TEXT, year INTEGER,
                              singer_id INTEGER REFERENCES singer(singer_id));
        """
    )
    conn.executemany("INSERT INTO singer VALUES (?, ?, ?, ?)", SINGERS)
    conn.executemany("INSERT INTO concert VALUES (?, ?, ?, ?)", CONCERTS)
    conn.commit()
    conn.close()
    return path


def checksum(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
