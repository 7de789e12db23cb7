"""A small generated SQLite database for the execution tests (built in tmp_path at test time)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

SINGERS = [
    (1, "Alice", "France", 25),
    (2, "Adam", "France", 31),
    (3, "Bob", "Spain", 45),
    (4, "Chen", "China", 28),
    (5, "Dana", "Spain", 52),
    (6, "Emil", "Norway", 19),
]
CONCERTS = [(1, "Spring", 2014, 1), (2, "Summer", 2014, 1), (3, "Fall", 2015, 3), (4, "Winter", 2015, 4), (5, "Gala", 2016, None)]
BIG_ROWS = 2000


def make_db(path: Path) -> Path:
    """Write the test database at ``path`` (singer, concert, big with BIG_ROWS rows, bad_text)."""
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER);
        CREATE TABLE concert (concert_id INTEGER PRIMARY KEY, name TEXT, year INTEGER,
                              singer_id INTEGER REFERENCES singer(singer_id));
        CREATE TABLE big (id INTEGER PRIMARY KEY, label TEXT);
        CREATE TABLE bad_text (id INTEGER, txt TEXT);
        CREATE TABLE audit (id INTEGER PRIMARY KEY, note TEXT);
        CREATE TRIGGER singer_audit AFTER DELETE ON singer BEGIN INSERT INTO audit(note) VALUES ('deleted'); END;
        """
    )
    conn.executemany("INSERT INTO singer VALUES (?,?,?,?)", SINGERS)
    conn.executemany("INSERT INTO concert VALUES (?,?,?,?)", CONCERTS)
    conn.executemany("INSERT INTO big VALUES (?,?)", [(i, f"row{i}") for i in range(BIG_ROWS)])
    # invalid UTF-8 stored as TEXT
    conn.execute("INSERT INTO bad_text VALUES (1, CAST(x'ff41' AS TEXT))")
    conn.commit()
    conn.close()
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def side_files(path: Path) -> list[str]:
    """Journal/WAL/SHM files next to ``path`` (there must be none after read-only use)."""
    return sorted(p.name for p in Path(path).parent.iterdir() if p.name.startswith(Path(path).name + "-"))
