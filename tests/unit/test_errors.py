"""The error hierarchy, and a few call sites that raise its leaves for a user's bad input."""

from __future__ import annotations

import json

import pytest

from sqlcoach.errors import ConfigError, DataError, ExecutionError, ModelError, SqlcoachError


@pytest.mark.parametrize(
    "leaf, builtin",
    [(ConfigError, ValueError), (DataError, ValueError), (ExecutionError, RuntimeError), (ModelError, RuntimeError)],
)
def test_every_leaf_is_a_sqlcoach_error_and_its_builtin(leaf, builtin):
    assert issubclass(leaf, SqlcoachError) and issubclass(leaf, builtin)
    err = leaf("x") if leaf is not DataError else DataError("x")
    assert isinstance(err, SqlcoachError) and isinstance(err, builtin)


def test_data_error_formats_path_and_line():
    assert str(DataError("bad record", "data/dev.json", 7)) == "data/dev.json:7: bad record"
    assert str(DataError("file not found", "data/dev.json")) == "data/dev.json: file not found"
    assert str(DataError("no schema")) == "no schema"
    err = DataError("bad record", "a.jsonl", 3)
    assert (err.path, err.line) == ("a.jsonl", 3)


def test_jsonl_record_helpers_raise_data_error_and_loader_reports_path_and_line(tmp_path):
    from sqlcoach.data.jsonl import LoadReport, load_jsonl, require_str

    with pytest.raises(DataError, match="missing field 'db_id'"):
        require_str({"question": "q"}, "db_id")
    path = tmp_path / "mini.jsonl"
    path.write_text(
        json.dumps({"question": "How many?", "db_id": "d"}) + "\n"
        + json.dumps({"question": "No db"}) + "\n"
        + json.dumps({"question": "Bad meta", "db_id": "d", "meta": [1]}) + "\n",
        encoding="utf-8",
    )
    report = LoadReport()
    examples = load_jsonl(path, report=report)
    assert [e.question for e in examples] == ["How many?"]
    # the record helpers' DataError carries no location; the loader adds it once, not twice
    assert [str(p) for p in report.problems] == [
        f"{path}:2: missing field 'db_id'",
        f"{path}:3: field 'meta' must be an object",
    ]


def test_malformed_json_array_raises_data_error_with_path_and_line(tmp_path):
    from sqlcoach.data.jsonl import LoadReport, load_jsonl

    path = tmp_path / "broken.json"
    path.write_text('[\n  {"question": "q", "db_id": "d"},\n  {"question": oops}\n]\n', encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_jsonl(path, report=LoadReport())
    assert (info.value.path, info.value.line) == (str(path), 3)
    assert str(info.value).startswith(f"{path}:3: invalid JSON")


def test_wikisql_sql_dict_out_of_range_is_a_data_error():
    from sqlcoach.data.wikisql import wikisql_to_sql

    table = {"id": "t-1", "header": ["a", "b"], "types": ["text", "real"], "rows": []}
    with pytest.raises(DataError, match="sel 5 out of range"):
        wikisql_to_sql({"sel": 5, "agg": 0, "conds": []}, table)


def test_bad_metric_and_pool_arguments_are_config_errors():
    from sqlcoach.execution import ExecutorPool, Limits, same_result
    from sqlcoach.metrics.bird import time_ratios
    from sqlcoach.metrics.ex import score_execution

    with pytest.raises(ConfigError, match="iterations must be >= 1"):
        time_ratios([], pool=None, iterations=0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown mode 'nope'"):
        score_execution([], pool=None, mode="nope")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown comparison mode"):
        same_result([], [], mode="nope")
    with pytest.raises(ConfigError, match="workers must be an int >= 0"):
        ExecutorPool(workers=-1)
    with pytest.raises(ConfigError, match="Limits.timeout"):
        Limits(timeout=0)


def test_unknown_schema_style_is_a_config_error():
    from sqlcoach.schema.serialize import serialize
    from sqlcoach.types import Column, Schema, Table

    schema = Schema("d", (Table("t", (Column("a", "text"),)),))
    with pytest.raises(ConfigError, match="unknown schema style 'fancy'"):
        serialize(schema, "fancy")


def test_evaluate_files_with_a_missing_bird_json_prediction_file_is_a_data_error(tmp_path):
    from sqlcoach.metrics.evaluate import evaluate_pairs
    from sqlcoach.metrics.files import read_gold, read_pred

    gold = tmp_path / "gold.sql"
    gold.write_text("SELECT 1\td\n", encoding="utf-8")
    items, multi = read_gold(gold)
    with pytest.raises(DataError, match="file not found"):
        read_pred(tmp_path / "predict_dev.json", items, multi)
    with pytest.raises(DataError, match="2 predictions for 1 gold"):
        evaluate_pairs(["SELECT 1", "SELECT 2"], [("SELECT 1", "d")], etype="match")
