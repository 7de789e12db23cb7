"""Fixtures for the loader and export tests: a copy of tests/fixtures/data in tmp_path with the
SQLite databases its files refer to generated on the spot (nothing binary is checked in, and
materialised caches land in tmp_path, never in the repository)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from loader_testdata import FIXTURES, SCHOOL_SQL, SHOP_SQL, make_db


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(FIXTURES, root)
    for sub in ("spider/database", "sparc/database"):
        make_db(root / sub / "shop" / "shop.sqlite", SHOP_SQL)
        make_db(root / sub / "school" / "school.sqlite", SCHOOL_SQL)
    make_db(root / "bird" / "dev_databases" / "shop" / "shop.sqlite", SHOP_SQL)
    make_db(root / "jsonl" / "dbs" / "shop.sqlite", SHOP_SQL)
    return root
