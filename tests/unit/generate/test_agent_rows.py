"""Warm-start rows (sqlcoach.generate.agent_rows) from scripted policy answers: which row each gets."""

from __future__ import annotations

import json
import sqlite3

import pytest

import sqlcoach.generate.hf as hf
from sqlcoach.data.export import read_training_file
from sqlcoach.generate.agent import AgentConfig
from sqlcoach.generate.agent_rows import warm_start_rows
from sqlcoach.prompts.builder import PromptBuilder
from sqlcoach.types import Example


class WordTokenizer:
    chat_template = None

    def encode(self, text, add_special_tokens=False):
        return text.split()


@pytest.fixture
def examples(tmp_path):
    db = tmp_path / "shop.sqlite"
    con = sqlite3.connect(db)
    con.executescript("CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, price REAL);"
                      "INSERT INTO item VALUES (1,'pen',1.5),(2,'ink',3.0);")
    con.commit()
    con.close()
    q = [("how many items", "SELECT count(*) FROM item"), ("item names", "SELECT name FROM item"),
         ("prices", "SELECT price FROM item"), ("ids", "SELECT id FROM item")]
    return [Example(f"e{i}", "shop", question, gold, str(db)) for i, (question, gold) in enumerate(q)]


def test_rows_by_outcome(examples, tmp_path, monkeypatch):
    answers = ["SELECT count(*) FROM item",  # right
               "SELECT nme FROM item",  # fails to run
               "SELECT id FROM item",  # runs, wrong result
               ""]  # no SQL at all

    def fake_generate(model, tokenizer, prompts, **kw):
        assert len(prompts) == 4
        return hf.Generations([[a] for a in answers], 0, 0, 0.0)

    monkeypatch.setattr(hf, "generate_texts", fake_generate)
    out = tmp_path / "rows.jsonl"
    s = warm_start_rows(None, WordTokenizer(), examples, out, builder=PromptBuilder("sql_terminal", "compact", 0),
                        config=AgentConfig(max_turns=3), verify_fraction=1.0, workers=0)
    assert (s.revisions, s.direct, s.verified, s.skipped) == (2, 1, 1, [])
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    text = {r["id"]: r["completion"][0]["content"] for r in recs}
    assert [r["agent_row"] for r in recs] == ["verified", "revision", "revision", "direct"]
    assert text["e0"].startswith("<sql>SELECT count(*) FROM item</sql>\n<observation>\n")
    assert text["e0"].endswith("<solution>SELECT count(*) FROM item</solution>")
    assert "error: exec_error: no such column: nme" in text["e1"] and text["e1"].endswith("<solution>SELECT name FROM item</solution>")
    assert "rows: 2" in text["e2"] and "turns left: 2" in text["e2"]
    assert text["e3"] == "<solution>SELECT id FROM item</solution>"
    # the observation spans mark exactly the environment's text (no loss on it in `train sft`)
    for r in recs:
        content = r["completion"][0]["content"]
        marked = [content[a:b] for a, b in r["observation_spans"]]
        assert marked == ([] if r["agent_row"] == "direct" else [content[content.index("\n<observation>"):
                                                                         content.index("</observation>\n") + 15]])
    rows, problems, settings = read_training_file(out)
    assert len(rows) == 4 and not problems and settings["template"] == "sql_terminal"
    assert [r["observation_spans"] for r in rows] == [r["observation_spans"] for r in recs]


def test_keep_action_rows_keep_instead_of_copying(examples, tmp_path, monkeypatch):
    """With ``keep``, a right attempt's row ends with the keep action, and replaying the row through
    the environment answers with exactly that attempt; revisions still write the gold."""
    from sqlcoach.generate.agent import SqlAgentEnv
    from sqlcoach.prompts.agent import KEEP_TURN

    answers = ["SELECT count(*) FROM item", "SELECT nme FROM item", "SELECT price FROM item", ""]
    monkeypatch.setattr(hf, "generate_texts", lambda model, tok, prompts, **kw: hf.Generations([[a] for a in answers], 0, 0, 0.0))
    out = tmp_path / "keep.jsonl"
    s = warm_start_rows(None, WordTokenizer(), examples, out, builder=PromptBuilder("sql_terminal", "compact", 0),
                        config=AgentConfig(max_turns=3, keep=True), verify_fraction=1.0, workers=0)
    assert (s.revisions, s.direct, s.verified) == (1, 1, 2)
    recs = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    kept = recs["e0"]["completion"][0]["content"]
    assert kept.endswith("</observation>\n" + KEEP_TURN) and "SELECT count(*) FROM item</solution>" not in kept
    assert recs["e1"]["completion"][0]["content"].endswith("<solution>SELECT name FROM item</solution>")
    assert "<solution></solution>" in recs["e0"]["prompt"][-1]["content"]  # the instruction offers the keep
    env = SqlAgentEnv(examples[0].db_path, AgentConfig(max_turns=3, keep=True))
    first, rest = kept.split("\n<observation>", 1)
    env.step(first)
    env.step(KEEP_TURN)
    assert env.answer == "SELECT count(*) FROM item"


def test_tool_protocol_rows(examples, tmp_path, monkeypatch):
    pytest.importorskip("tokenizers")
    from tool_template import tool_tokenizer

    from sqlcoach.prompts.agent import RUN_SQL_TOOL

    answers = ["SELECT nme FROM item", "SELECT name FROM item", "SELECT name FROM item", "SELECT id FROM item"]
    monkeypatch.setattr(hf, "generate_texts", lambda model, tok, prompts, **kw: hf.Generations([[a] for a in answers], 0, 0, 0.0))
    out = tmp_path / "tools.jsonl"
    s = warm_start_rows(None, tool_tokenizer(), examples, out, builder=PromptBuilder("sql_terminal", "compact", 0),
                        config=AgentConfig(max_turns=3, protocol="tools"), verify_fraction=0.0, workers=0)
    assert (s.revisions, s.direct) == (2, 2)
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    first = recs[0]["completion"][0]["content"]
    assert first.startswith('<tool_call>\n{"name": "run_sql", "arguments": {"query": "SELECT nme FROM item"}}\n</tool_call>')
    (a, b), = recs[0]["observation_spans"]
    assert "<tool_response>" in first[a:b] and "no such column: nme" in first[a:b] and first[b:] == "SELECT count(*) FROM item"
    assert recs[1]["completion"][0]["content"] == "SELECT name FROM item" and recs[1]["observation_spans"] == []
    assert all(r["tools"] == [RUN_SQL_TOOL] for r in recs) and "run_sql tool" in recs[0]["prompt"][-1]["content"]
    rows, problems, _ = read_training_file(out)
    assert not problems and rows[0]["tools"] == [RUN_SQL_TOOL]


def test_verify_fraction_checked(examples, tmp_path):
    from sqlcoach.errors import ConfigError

    with pytest.raises(ConfigError):
        warm_start_rows(None, WordTokenizer(), examples, tmp_path / "x.jsonl",
                        builder=PromptBuilder("sql_terminal", "compact", 0), verify_fraction=2.0)


def test_no_attempt_loss_marks_the_attempt_as_no_loss_text(examples, tmp_path, monkeypatch):
    answers = ["SELECT count(*) FROM item", "SELECT nme FROM item", "SELECT id FROM item", ""]
    monkeypatch.setattr(hf, "generate_texts", lambda model, tok, prompts, **kw: hf.Generations([[a] for a in answers], 0, 0, 0.0))
    out = tmp_path / "rows.jsonl"
    warm_start_rows(None, WordTokenizer(), examples, out, builder=PromptBuilder("sql_terminal", "compact", 0),
                    config=AgentConfig(max_turns=3), verify_fraction=1.0, workers=0, attempt_loss="none")
    rows, problems, _ = read_training_file(out)  # the spans pass the reader's checks
    assert not problems
    kinds = [json.loads(line)["agent_row"] for line in out.read_text().splitlines()]
    for r, kind in zip(rows, kinds):
        text = r["completion"][0]["content"]
        untrained = "".join(text[a:b] for a, b in r["observation_spans"])
        trained = text[len(untrained):]
        if kind == "direct":
            assert r["observation_spans"] == [] and trained == text
        else:  # the attempt and the observation carry no loss; the answer alone is trained
            assert untrained.startswith("<sql>") and untrained.endswith("</observation>\n")
            assert trained.startswith("<solution>") and "<sql>" not in trained


def test_attempt_loss_right_masks_only_the_wrong_attempts_and_sampling_is_passed_on(examples, tmp_path, monkeypatch):
    answers = ["SELECT count(*) FROM item", "SELECT nme FROM item", "SELECT id FROM item", ""]
    seen = {}

    def fake(model, tok, prompts, **kw):
        seen.update(kw)
        return hf.Generations([[a] for a in answers], 0, 0, 0.0)

    monkeypatch.setattr(hf, "generate_texts", fake)
    out = tmp_path / "rows.jsonl"
    warm_start_rows(None, WordTokenizer(), examples, out, builder=PromptBuilder("sql_terminal", "compact", 0),
                    config=AgentConfig(max_turns=3), verify_fraction=1.0, workers=0, attempt_loss="right",
                    attempt_temperature=0.7, seed=3)
    assert seen["temperature"] == 0.7 and seen["seed"] == 3
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    spans = {r["agent_row"] + r["id"]: len(r["observation_spans"]) for r in recs}
    assert spans == {"verifiede0": 1, "revisione1": 2, "revisione2": 2, "directe3": 0}
    with pytest.raises(Exception, match="attempt_loss"):
        warm_start_rows(None, WordTokenizer(), examples, out, builder=PromptBuilder("sql_terminal", "compact", 0),
                        attempt_loss="some")
