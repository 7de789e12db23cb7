import json

import pytest

from sqlcoach.errors import DataError
from sqlcoach.metrics.files import read_difficulties, read_gold, read_pred


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_single_turn_blank_prediction_is_empty_not_a_crash(tmp_path):
    gold = write(tmp_path / "gold.sql", "SELECT 1\tdb\nSELECT 2\tdb\nSELECT 3\tdb\n")
    pred = write(tmp_path / "pred.sql", "SELECT 1\n\nSELECT 3\n")
    items, multi = read_gold(gold)
    assert not multi and [g.sql for g in items] == ["SELECT 1", "SELECT 2", "SELECT 3"]
    preds, warnings = read_pred(pred, items, multi)
    assert preds == ["SELECT 1", "", "SELECT 3"] and warnings == []


def test_short_prediction_file_pads_with_empty_and_warns(tmp_path):
    gold = write(tmp_path / "gold.sql", "SELECT 1\tdb\nSELECT 2\tdb\n")
    pred = write(tmp_path / "pred.sql", "SELECT 1\n")
    items, multi = read_gold(gold)
    preds, warnings = read_pred(pred, items, multi)
    assert preds == ["SELECT 1", ""] and len(warnings) == 1


def test_too_many_predictions_is_an_error_with_line(tmp_path):
    gold = write(tmp_path / "gold.sql", "SELECT 1\tdb\n")
    pred = write(tmp_path / "pred.sql", "SELECT 1\nSELECT 2\n")
    items, multi = read_gold(gold)
    with pytest.raises(DataError, match="pred.sql:2"):
        read_pred(pred, items, multi)


def test_gold_line_without_tab_names_file_and_line(tmp_path):
    gold = write(tmp_path / "gold.sql", "SELECT 1\tdb\nSELECT 2 db\n")
    with pytest.raises(DataError, match="gold.sql:2"):
        read_gold(gold)


def test_multi_turn_interactions(tmp_path):
    gold = write(tmp_path / "gold.sql", "SELECT 1\ta\nSELECT 2\ta\n\nSELECT 3\tb\n")
    pred = write(tmp_path / "pred.sql", "SELECT 1\n\nSELECT 3\n")
    items, multi = read_gold(gold)
    assert multi and [(g.interaction, g.turn) for g in items] == [(0, 0), (0, 1), (1, 0)]
    preds, warnings = read_pred(pred, items, multi)
    assert preds == ["SELECT 1", "", "SELECT 3"] and len(warnings) == 1


def test_bird_json_predictions(tmp_path):
    gold = write(tmp_path / "gold.sql", "SELECT 1\tdb\nSELECT 2\tdb\n")
    pred = tmp_path / "predict_dev.json"
    pred.write_text(json.dumps({"1": "SELECT 2\t----- bird -----\tdb"}))
    items, multi = read_gold(gold)
    preds, warnings = read_pred(pred, items, multi)
    assert preds == ["", "SELECT 2"] and warnings


def test_difficulties_from_bird_json(tmp_path):
    p = tmp_path / "dev.json"
    p.write_text(json.dumps([{"difficulty": "simple"}, {"difficulty": "challenging"}]))
    assert read_difficulties(p, 2) == ["simple", "challenging"]
    with pytest.raises(DataError):
        read_difficulties(p, 3)


def test_predictions_from_stdin(tmp_path, monkeypatch):
    import io

    gold = write(tmp_path / "gold.sql", "SELECT 1\tdb\nSELECT 2\tdb\n")
    items, multi = read_gold(gold)
    monkeypatch.setattr("sys.stdin", io.StringIO("SELECT 1\nSELECT 2\n"))
    preds, _ = read_pred("-", items, multi)
    assert preds == ["SELECT 1", "SELECT 2"]


def test_predict_jsonl_given_as_pred_is_refused_with_the_sql_file_named(tmp_path):
    gold = write(tmp_path / "gold.sql", "SELECT 1\tdb\nSELECT 2\tdb\n")
    pred = write(tmp_path / "greedy.jsonl", json.dumps({"index": 0, "sql": "SELECT 1"}) + "\n"
                 + json.dumps({"index": 1, "sql": "SELECT 2"}) + "\n")
    write(tmp_path / "greedy.sql", "SELECT 1\nSELECT 2\n")
    items, multi = read_gold(gold)
    with pytest.raises(DataError) as e:
        read_pred(pred, items, multi)
    assert "JSON records" in str(e.value) and "greedy.sql" in str(e.value) and ":1" in str(e.value)


def test_sql_that_merely_starts_with_a_brace_is_still_read_as_sql(tmp_path):
    gold = write(tmp_path / "gold.sql", "SELECT 1\tdb\n")
    pred = write(tmp_path / "pred.sql", "{not json} SELECT 1\n")
    items, multi = read_gold(gold)
    preds, _ = read_pred(pred, items, multi)
    assert preds == ["{not json} SELECT 1"]
