"""Exports read back in each format, and the `sqlcoach data` verb end to end on fixtures."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from loader_testdata import SHARED
from sqlcoach.cli import main
from sqlcoach.data import load_examples, load_sparc, load_spider
from sqlcoach.data.export import FORMATS, SchemaSource, export_examples, schema_text
from sqlcoach.data.spider import read_tables_json
from sqlcoach.prompts.templates import SQL_TERMINAL_PREFIX, expected_format
from sqlcoach.sql.extract import extract_sql


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _source(data_dir: Path) -> SchemaSource:
    return SchemaSource(read_tables_json(data_dir / "spider" / "tables.json"))


def test_chat_format_is_trl_conversational(data_dir: Path, tmp_path: Path) -> None:
    exs = load_spider(data_dir / "spider", "dev")
    out = tmp_path / "out" / "chat.jsonl"
    summary = export_examples(exs, out, "chat", template="omnisql", source=_source(data_dir), progress=False)
    rows = _jsonl(out)
    assert summary.records == len(rows) == 3
    r = rows[0]
    assert [m["role"] for m in r["prompt"]] == ["user"]
    assert [m["role"] for m in r["completion"]] == ["assistant"]
    assert expected_format("omnisql").fullmatch(r["completion"][0]["content"])
    assert extract_sql(r["completion"][0]["content"]) == "SELECT count(*) FROM item"
    assert r["db_id"] == "shop" and r["gold_sql"] == "SELECT count(*) FROM item"
    assert r["db_path"].endswith("shop.sqlite")
    assert "CREATE TABLE item (" in r["prompt"][0]["content"]
    # the 'lost' database has no file: its schema comes from tables.json
    lost = rows[2]
    assert lost["db_path"] is None and "CREATE TABLE t (" in lost["prompt"][0]["content"]
    assert (tmp_path / "out" / "chat.jsonl.problems.txt").read_text().startswith("3 records written")
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]


def test_rl_format_is_prompt_only_with_reward_columns(data_dir: Path, tmp_path: Path) -> None:
    exs = load_spider(data_dir / "spider", "dev")
    out = tmp_path / "rl.jsonl"
    export_examples(exs, out, "rl", template="reasoning", source=_source(data_dir), progress=False)
    rows = _jsonl(out)
    assert "completion" not in rows[0]
    assert [m["role"] for m in rows[0]["prompt"]] == ["system", "user"]
    assert {"db_id", "db_path", "gold_sql", "hardness", "difficulty", "id"} <= set(rows[0])


def test_dbgpt_format_splits_instruction_and_input_and_keeps_history(data_dir: Path, tmp_path: Path) -> None:
    exs = load_sparc(data_dir / "sparc", "dev")
    out = tmp_path / "dbgpt.json"
    export_examples(exs, out, "dbgpt", template="sql_terminal", schema_style="nl", progress=False)
    rows = json.loads(out.read_text())
    assert len(rows) == 4
    first, third = rows[0], rows[2]
    assert set(first) == {"db_id", "instruction", "input", "output", "history"}
    assert first["instruction"].startswith(SQL_TERMINAL_PREFIX + "###Instruction:\nshop contains tables such as item, sale. ")
    assert first["input"] == "###Input:\nShow all items.\n\n###Response:"
    assert first["output"] == "SELECT * FROM item" and first["history"] == []
    assert third["history"] == [
        ["###Input:\nShow all items.\n\n###Response:", "SELECT * FROM item"],
        ["###Input:\nOnly their names.\n\n###Response:", "SELECT name FROM item"],
    ]
    # history lives in `history`, not in the input
    assert "Previous questions" not in third["input"]


def test_llamafactory_writes_dataset_info_and_merges(data_dir: Path, tmp_path: Path) -> None:
    exs = load_spider(data_dir / "spider", "dev")
    info_path = tmp_path / "dataset_info.json"
    info_path.write_text(json.dumps({"other": {"file_name": "other.json"}}))
    export_examples(exs, tmp_path / "spider_dev.json", "llamafactory", template="reasoning_tags",
                    source=_source(data_dir), progress=False)
    info = json.loads(info_path.read_text())
    assert info["other"] == {"file_name": "other.json"}
    assert info["spider_dev"] == {
        "file_name": "spider_dev.json",
        "columns": {"prompt": "instruction", "query": "input", "response": "output", "history": "history",
                    "system": "system"},
    }
    rows = json.loads((tmp_path / "spider_dev.json").read_text())
    assert rows[0]["input"] == "" and "<reasoning>" in rows[0]["system"]
    assert expected_format("reasoning_tags").fullmatch(rows[0]["output"])


def test_examples_without_gold_or_schema_are_reported(data_dir: Path, tmp_path: Path) -> None:
    exs = load_spider(data_dir / "spider", "dev")
    nogold = replace(exs[0], gold_sql=None)
    noschema = replace(exs[1], db_id="missing", db_path=None)
    summary = export_examples([nogold, noschema, exs[2]], tmp_path / "x.jsonl", "chat",
                              source=_source(data_dir), progress=False)
    assert summary.records == 1
    assert [("no gold SQL" in str(p), "no schema" in str(p)) for p in summary.problems] == [(True, False), (False, True)]
    assert "no gold SQL" in (tmp_path / "x.jsonl.problems.txt").read_text()
    with pytest.raises(ValueError, match="unknown export format"):
        export_examples(exs, tmp_path / "y", "csv")


def test_schema_text_adds_matched_values_and_respects_budget(data_dir: Path) -> None:
    ex = replace(load_spider(data_dir / "spider", "dev")[0], question="What does the Blue Mug cost?")
    text = schema_text(ex, "ddl")
    assert "-- matched values: item.name = 'Blue Mug'" in text
    assert "-- matched values" not in schema_text(ex, "ddl", values=False)
    short = schema_text(ex, "compact", budget_tokens=12)
    assert len(short.split()) <= 12


def test_cli_stats_show_build(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = str(data_dir / "spider")
    assert main(["data", "stats", "--kind", "spider", "--path", root, "--split", "dev"]) == 0
    out = capsys.readouterr().out
    assert "examples: 3\n" in out and "databases referenced: 3\n" in out and "databases present: 2\n" in out
    assert "problems: 2\n" in out and "unknown db_id 'nowhere_db'" in out
    assert main(["data", "show", "--kind", "spider", "--path", root, "--index", "0", "--template", "sql_terminal",
                 "--schema-style", "compact", "--completion"]) == 0
    out = capsys.readouterr().out
    assert "item(item_id*{1|2|3}, name{'Red Kettle'|'Blue Mug'|'Green Teapot'}, price{25.5|7.0|31.0})" in out
    assert "###Input:\nHow many items are there?\n\n###Response:" in out
    assert out.rstrip().endswith("SELECT count(*) FROM item")
    for fmt in FORMATS:
        dest = tmp_path / f"o_{fmt}.json"
        assert main(["data", "build", "--kind", "spider", "--path", root, "--format", fmt, "--out", str(dest),
                     "--limit", "2", "--no-values", "--no-progress"]) == 0
        assert dest.is_file()
    assert len(json.loads((tmp_path / "o_dbgpt.json").read_text())) == 2
    # a loader option that does not apply is a clean error (exit 2), not a traceback
    assert main(["data", "stats", "--kind", "create_context", "--path", root, "--db-dir", root]) == 2
    assert main(["data", "show", "--kind", "spider", "--path", root, "--index", "99"]) == 2


shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data not found at {SHARED}")


@pytest.mark.shared
@shared
def test_shared_spider_dev_and_bird_counts() -> None:
    spider = load_examples("spider", SHARED / "spider", "dev", with_hardness=False)
    assert len(spider) == 1034
    assert len({e.db_id for e in spider}) == 20
    assert sum(1 for e in spider if e.db_path) == 972  # wta_1's 62 questions have no database
    bird = load_examples("bird", SHARED / "bird-dev-questions" / "dev.json")
    assert len(bird) == 1534 and all(e.db_path is None for e in bird)
    assert sum(1 for e in bird if e.evidence) > 1000


@pytest.mark.shared
@shared
def test_shared_cli_stats(capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "stats", "--kind", "spider", "--path", str(SHARED / "spider"), "--split", "dev"]) == 0
    out = capsys.readouterr().out
    assert "examples: 1034\n" in out and "databases referenced: 20\n" in out
    assert main(["data", "stats", "--kind", "bird", "--path", str(SHARED / "bird-dev-questions" / "dev.json")]) == 0
    out = capsys.readouterr().out
    assert "examples: 1534\n" in out and "databases present: 0\n" in out


# --- read back for `train sft data_kind=export` ----------------------------------------------------


def test_every_export_format_reads_back_as_sft_rows(data_dir: Path, tmp_path: Path) -> None:
    from sqlcoach.data.export import read_training_file

    exs = load_spider(data_dir / "spider", "dev")
    rows = {}
    for fmt in FORMATS:
        out = tmp_path / (f"{fmt}.jsonl" if fmt in ("chat", "rl", "openai") else f"{fmt}.json")
        export_examples(exs, out, fmt, template="sql_terminal", schema_style="compact", source=_source(data_dir), progress=False)
        rows[fmt], problems, settings = read_training_file(out)
        # openai rows come from the prompt builder, which needs the database: 'lost' has none
        assert problems == [] and len(rows[fmt]) == (2 if fmt == "openai" else 3)
        if fmt in ("chat", "rl"):
            assert settings["template"] == "sql_terminal" and settings["schema_style"] == "compact"
        else:
            assert settings is None
    # one prompt and one answer whichever file it went through (DB-GPT-Hub's instruction + input = the prompt)
    for fmt in ("rl", "dbgpt", "llamafactory"):
        assert rows[fmt] == rows["chat"], fmt
    assert rows["openai"] == rows["chat"][:2]
    assert rows["chat"][0]["completion"][0]["content"] == "SELECT count(*) FROM item"


def test_export_read_back_reports_bad_records_with_line(tmp_path: Path) -> None:
    from sqlcoach.data.export import read_training_file

    f = tmp_path / "chat.jsonl"
    good = {"prompt": [{"role": "user", "content": "q"}], "completion": [{"role": "assistant", "content": "SELECT 1"}]}
    f.write_text(json.dumps(good) + "\n" + json.dumps({"prompt": "not messages"}) + "\n{oops\n")
    rows, problems, _ = read_training_file(f)
    assert rows == [good]
    assert [(p.line, p.message.split(":")[0]) for p in problems] == [(2, "'prompt' must be a non-empty list of {role, content} messages"), (3, "invalid JSON")]


def test_chat_export_of_multi_turn_data_shows_no_earlier_gold_by_default(data_dir: Path, tmp_path: Path) -> None:
    exs = [e for e in load_sparc(data_dir / "sparc", "dev") if e.turns]
    out = tmp_path / "chat.jsonl"
    export_examples(exs, out, "chat", template="sql_terminal", schema_style="compact", progress=False)
    for ex, row in zip(exs, _jsonl(out)):
        for t in ex.turns:
            assert not t.sql or t.sql not in row["prompt"][0]["content"]
