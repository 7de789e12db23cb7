"""The fixed cross-database split of Spider dev: dev_train / dev_eval share no database."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from sqlcoach.data import load_examples
from sqlcoach.data.spider import SPIDER_DEV_PARTS

SHARED = Path(__file__).resolve().parents[4] / "shared" / "data" / "spider"


def test_parts_are_disjoint_and_leave_out_the_missing_database():
    train, dev_eval = set(SPIDER_DEV_PARTS["dev_train"]), set(SPIDER_DEV_PARTS["dev_eval"])
    assert not train & dev_eval and "wta_1" not in train | dev_eval


def test_a_part_keeps_only_its_databases_and_dev_ids(tmp_path):
    db_train, db_eval = SPIDER_DEV_PARTS["dev_train"][0], SPIDER_DEV_PARTS["dev_eval"][0]
    rows = [{"db_id": db, "question": f"q{i}", "query": "SELECT 1"} for i, db in enumerate([db_train, db_eval, db_train])]
    (tmp_path / "dev.json").write_text(json.dumps(rows))
    for db in (db_train, db_eval):
        (tmp_path / "database" / db).mkdir(parents=True)
        sqlite3.connect(tmp_path / "database" / db / f"{db}.sqlite").close()
    got = load_examples("spider", tmp_path, "dev_train")
    assert [e.db_id for e in got] == [db_train, db_train]
    assert [e.id for e in got] == ["spider-dev-0", "spider-dev-2"]  # ids line up with dev_gold.sql
    assert [e.db_id for e in load_examples("spider", tmp_path, "dev_eval")] == [db_eval]


@pytest.mark.skipif(not (SHARED / "dev.json").is_file(), reason="../shared/data/spider is absent (a fresh clone)")
def test_the_shared_spider_dev_splits_519_and_453():
    train = load_examples("spider", SHARED, "dev_train")
    dev_eval = load_examples("spider", SHARED, "dev_eval")
    assert (len(train), len(dev_eval)) == (519, 453)
    assert {e.db_id for e in train} == set(SPIDER_DEV_PARTS["dev_train"])
    assert all(e.db_path for e in train + dev_eval)
