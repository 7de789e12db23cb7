"""`data build --format dbgpt` with no other flag writes what dbgpt-hub 0.3.1's own processing
(``ProcessSqlData``) writes: checked against fixtures made from ITS output by
tests/fixtures/data/dbgpt_hub/make_fixtures.py (its code is run there, not copied here)."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from loader_testdata import FIXTURES, SHARED, make_db
from sqlcoach.cli import main
from sqlcoach.data import load_spider
from sqlcoach.data.export import DBGPT_HUB_INSTRUCTION, SchemaSource, export_examples, format_defaults
from sqlcoach.data.spider import read_tables_json
from sqlcoach.prompts.templates import SQL_TERMINAL_PREFIX

HUB = FIXTURES / "dbgpt_hub"
FIELDS = ("db_id", "instruction", "input", "output", "history")


def _build(path: Path, out: Path, *flags: str) -> bytes:
    assert main(["data", "build", "--kind", "spider", "--path", str(path), "--split", "dev", "--format", "dbgpt",
                 "--out", str(out), "--no-progress", *flags]) == 0
    return out.read_bytes()


def test_plain_dbgpt_build_is_byte_identical_to_dbgpt_hub_on_the_rules_fixture(tmp_path: Path) -> None:
    """Key lines in primary_keys order (a composite key as two lines), a table without a key (no
    line break), foreign keys in file order, quotes, non-ASCII, a question's trailing space kept,
    DB-GPT-Hub's preamble and its file layout (indent 4, no final newline)."""
    got = _build(HUB, tmp_path / "dev.json")
    want = (HUB / "expected_dev.json").read_bytes()
    assert got == want
    rec = json.loads(got)[0]
    assert rec["instruction"].startswith(DBGPT_HUB_INSTRUCTION.split("{schema}")[0])
    assert "\n\"\n##Instruction:\n" in rec["instruction"] and "me.Below" in rec["instruction"]


def test_plain_dbgpt_build_ignores_the_database_file_as_dbgpt_hub_does(tmp_path: Path) -> None:
    """With a database present (whose keys and values differ from tables.json) the default still
    reads tables.json and shows no values; flags switch sqlcoach's richer schema on."""
    root = tmp_path / "hub"
    root.mkdir()
    for name in ("dev.json", "tables.json"):
        (root / name).write_bytes((HUB / name).read_bytes())
    make_db(root / "database" / "tiny" / "tiny.sqlite",
            "CREATE TABLE Stadium (Stadium_ID INTEGER PRIMARY KEY, Location TEXT);"
            "INSERT INTO Stadium VALUES (1, 'NJ\n'), (2, 'Every location');")
    want = json.loads((HUB / "expected_dev.json").read_text(encoding="utf-8"))
    assert json.loads(_build(root, tmp_path / "a.json")) == want
    rich = json.loads(_build(root, tmp_path / "b.json", "--schema-source", "database", "--sample-values", "2",
                             "--values", "--template", "sql_terminal"))
    tiny = rich[2]["instruction"]
    assert tiny.startswith(SQL_TERMINAL_PREFIX)  # sqlcoach's own preamble when asked for
    assert "Stadium_ID is the primary key.\n" in tiny  # the database's key, which tables.json lacks
    assert "Example values of Stadium: Stadium_ID: 1, 2; Location: 'NJ\\n', 'Every location'.\n" in tiny
    assert "Relevant values: Stadium.Location = 'Every location'" in tiny
    assert rich[2]["input"] == want[2]["input"] and rich[2]["output"] == want[2]["output"]


def test_dbgpt_defaults_and_the_hub_template_are_for_the_alpaca_formats_only(tmp_path: Path) -> None:
    d = format_defaults("dbgpt")
    assert (d.template, d.schema_style, d.value_retrieval, d.sample_values, d.schema_source) == (
        "dbgpt_hub", "nl", 0, 0, "tables")
    assert format_defaults("chat").template == "omnisql"
    exs = load_spider(HUB, "dev")
    with pytest.raises(ValueError, match="only for formats dbgpt and llamafactory"):
        export_examples(exs, tmp_path / "x.jsonl", "chat", template="dbgpt_hub", progress=False)
    assert main(["data", "build", "--kind", "spider", "--path", str(HUB), "--format", "rl", "--template", "dbgpt_hub",
                 "--out", str(tmp_path / "y.jsonl")]) == 2
    # llamafactory with DB-GPT-Hub's prompt: the same instruction / input / output
    export_examples(exs, tmp_path / "lf.json", "llamafactory", template="dbgpt_hub", schema_style="nl", values=False,
                    source=SchemaSource(read_tables_json(HUB / "tables.json"), sample_values=0, prefer="tables"),
                    progress=False)
    lf = json.loads((tmp_path / "lf.json").read_text())
    want = json.loads((HUB / "expected_dev.json").read_text(encoding="utf-8"))
    assert [{k: r[k] for k in ("instruction", "input", "output", "history")} for r in want] == lf


shared = pytest.mark.skipif(not (SHARED / "spider" / "dev.json").is_file(), reason=f"shared Spider not found at {SHARED}")


@pytest.mark.shared
@shared
def test_spider_dev_export_equals_dbgpt_hub_for_every_record_and_field(tmp_path: Path) -> None:
    with gzip.open(HUB / "spider_dev_digests.json.gz", "rt", encoding="utf-8") as fh:
        fx = json.load(fh)
    got = _build(SHARED / "spider", tmp_path / "dev.json")
    recs = json.loads(got)
    assert len(recs) == fx["records"] == 1034
    bad = [(i, f) for i, (r, want) in enumerate(zip(recs, fx["digests"])) for f, w in zip(FIELDS, want)
           if hashlib.sha256(json.dumps(r[f], ensure_ascii=False).encode("utf-8")).hexdigest()[:16] != w]
    assert not bad, f"{len(bad)} fields differ from dbgpt-hub's, first: {bad[:5]}"
    for i, want in fx["full"].items():
        assert recs[int(i)] == want
    assert (hashlib.sha256(got).hexdigest(), len(got)) == (fx["file_sha256"], fx["file_bytes"])
