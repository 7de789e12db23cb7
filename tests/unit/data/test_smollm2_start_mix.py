"""benchmarks/smollm2_start.py's training mix: the world's train questions plus Spider's dev_train
part, their tables and database links, loadable as one Spider folder; a db_id in both is an error."""

import importlib.util
import json
from pathlib import Path

import pytest

from sqlcoach.data import load_examples
from sqlcoach.data.spider import SPIDER_DEV_PARTS
from sqlcoach.errors import DataError

_spec = importlib.util.spec_from_file_location(
    "smollm2_start_bench", Path(__file__).resolve().parents[3] / "benchmarks" / "smollm2_start.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def _table(db):
    return {"db_id": db, "table_names_original": ["t"], "table_names": ["t"],
            "column_names_original": [[-1, "*"], [0, "a"]], "column_names": [[-1, "*"], [0, "a"]],
            "column_types": ["text", "number"], "primary_keys": [1], "foreign_keys": []}


def _folder(root: Path, dbs: list[str], questions: dict[str, list[str]], name: str) -> Path:
    import sqlite3

    root.mkdir(parents=True)
    for db in dbs:
        (root / "database" / db).mkdir(parents=True)
        con = sqlite3.connect(root / "database" / db / f"{db}.sqlite")
        con.execute("CREATE TABLE t (a INTEGER)")
        con.commit()
        con.close()
    (root / "tables.json").write_text(json.dumps([_table(db) for db in dbs]))
    (root / name).write_text(json.dumps([{"db_id": db, "question": q, "query": "SELECT a FROM t"}
                                         for db in dbs for q in questions.get(db, [])]))
    return root


def test_the_mix_holds_both_sources_and_loads_as_one_spider_folder(tmp_path):
    train_part = list(SPIDER_DEV_PARTS["dev_train"][:2])
    eval_db = SPIDER_DEV_PARTS["dev_eval"][0]
    world = _folder(tmp_path / "world", ["zoo", "gym"], {"zoo": ["q1", "q2"], "gym": ["q3"]}, "train.json")
    spider = _folder(tmp_path / "spider", train_part + [eval_db],
                     {train_part[0]: ["s1"], train_part[1]: ["s2", "s3"], eval_db: ["never trained on"]}, "dev.json")
    stats = bench.build_mix(world, spider, tmp_path / "mix")
    assert stats == {"world_questions": 3, "spider_questions": 3, "databases": 4}
    exs = load_examples("spider", str(tmp_path / "mix"), "train")
    assert sorted(e.question for e in exs) == ["q1", "q2", "q3", "s1", "s2", "s3"]  # dev_eval stays out
    assert all(Path(e.db_path).is_file() for e in exs)
    bench.build_mix(world, spider, tmp_path / "mix")  # a second run over the same folder is fine


def test_a_database_in_both_sources_is_an_error(tmp_path):
    db = SPIDER_DEV_PARTS["dev_train"][0]
    world = _folder(tmp_path / "world", [db], {db: ["q"]}, "train.json")
    spider = _folder(tmp_path / "spider", [db], {db: ["s"]}, "dev.json")
    with pytest.raises(DataError, match=f"both the world and Spider.*{db}"):
        bench.build_mix(world, spider, tmp_path / "mix")
