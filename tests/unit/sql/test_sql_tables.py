from __future__ import annotations

import json

import pytest
from sql_helpers import CONCERT_ENTRY

from sqlcoach.errors import DataError
from sqlcoach.sql.tables import foreign_key_map, load_report, load_tables, schema_from_entry


def test_schema_from_entry_lowercases_and_maps_foreign_keys(concert_db):
    assert concert_db.table_names == ("stadium", "singer", "concert", "singer_in_concert")
    assert concert_db.table_columns("SINGER") == ("singer_id", "name", "country", "age", "is_male")
    assert concert_db.column_ids[0] == "__all__" and concert_db.column_ids[13] == "__concert.stadium_id__"
    assert concert_db.primary_keys == (1, 5, 10, 15, 16)
    fk = concert_db.foreign_key_map
    assert fk["__concert.stadium_id__"] == fk["__stadium.stadium_id__"] == "__stadium.stadium_id__"
    assert fk["__singer_in_concert.singer_id__"] == "__singer.singer_id__"
    assert "__singer.name__" not in fk


def test_foreign_key_groups_follow_the_official_first_match_rule():
    ids = ["__all__", "__a.x__", "__b.x__", "__c.x__", "__d.x__"]
    # (1,2) and (3,4) make two groups; (2,3) joins the first group only, the groups are not merged
    mapping = foreign_key_map(ids, [(1, 2), (3, 4), (2, 3)])
    # groups: {1, 2, 3} and {3, 4}; c is in both and the later group's minimum (c) overwrites a
    assert mapping["__b.x__"] == "__a.x__"
    assert mapping["__c.x__"] == "__c.x__"
    assert mapping["__d.x__"] == "__c.x__"


def test_load_tables_reports_bad_entries_and_keeps_the_rest(tmp_path):
    bad = {"db_id": "broken", "table_names_original": ["t"]}  # no columns
    path = tmp_path / "tables.json"
    path.write_text(json.dumps([CONCERT_ENTRY, bad, 7]), encoding="utf-8")
    tables = load_tables(path)
    assert list(tables) == ["concert_mini"]
    problems = load_report[str(path.resolve())]
    assert len(problems) == 2 and "entry 1" in problems[0] and "entry 2" in problems[1]
    assert load_tables(path) is tables  # cached while the file is unchanged


def test_load_tables_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="missing.json"):
        load_tables(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("[{", encoding="utf-8")
    with pytest.raises(DataError, match="bad.json:1"):
        load_tables(tmp_path / "bad.json")
    (tmp_path / "obj.json").write_text("{}", encoding="utf-8")
    with pytest.raises(DataError, match="JSON list"):
        load_tables(tmp_path / "obj.json")


def test_foreign_key_out_of_range_is_rejected():
    entry = dict(CONCERT_ENTRY, foreign_keys=[[99, 1]])
    with pytest.raises(ValueError):
        schema_from_entry(entry)
