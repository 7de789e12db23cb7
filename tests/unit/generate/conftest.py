"""Fixtures the agent tests share (test modules that define their own ``db`` keep theirs)."""

from __future__ import annotations

import sqlite3

import pytest


@pytest.fixture
def db(tmp_path):
    """A three-item shop database (``item(id, name, price)``): the agent tests' database."""
    path = tmp_path / "shop.sqlite"
    con = sqlite3.connect(path)
    con.executescript("CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, price REAL);"
                      "INSERT INTO item VALUES (1,'pen',1.5),(2,'ink',3.0),(3,'pad',2.25);")
    con.commit()
    con.close()
    return str(path)
