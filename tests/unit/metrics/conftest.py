import sqlite3

import pytest


def make_db(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.executescript(
        """
        CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER);
        CREATE TABLE concert (concert_id INTEGER PRIMARY KEY, singer_id INTEGER REFERENCES singer(singer_id), year INTEGER);
        """
    )
    con.executemany("INSERT INTO singer VALUES (?,?,?,?)", rows)
    con.executemany("INSERT INTO concert VALUES (?,?,?)", [(1, 1, 2014), (2, 1, 2015), (3, 2, 2015)])
    con.commit()
    con.close()


SINGERS = [(1, "Ann", "France", 30), (2, "Bob", "France", 41), (3, "Cid", "Spain", 25), (4, "Dee", "Peru", 41)]


@pytest.fixture
def db_dir(tmp_path):
    """Spider layout: db_dir/<db_id>/<db_id>.sqlite. `suite` holds two files (test-suite style):
    the second swaps ages so that queries that only work by accident on the first are caught."""
    root = tmp_path / "database"
    make_db(root / "music" / "music.sqlite", SINGERS)
    make_db(root / "suite" / "suite.sqlite", SINGERS)
    swapped = [(1, "Ann", "France", 41), (2, "Bob", "France", 30), (3, "Cid", "Spain", 25), (4, "Dee", "Peru", 41)]
    make_db(root / "suite" / "suite_2.sqlite", swapped)
    return root
