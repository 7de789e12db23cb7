"""extract_sql: many shapes of model output, and junk that must never raise."""

from __future__ import annotations

import random
import string

import pytest

from sqlcoach.sql.extract import _extract, extract_sql

CASES = [
    # fenced blocks: the last ```sql block wins
    ("Thinking...\n```sql\nSELECT 1\n```\nBetter:\n```sql\nSELECT name FROM t\n```", "SELECT name FROM t"),
    ("```SQL\nselect a from b;\n```", "select a from b"),
    ("```sqlite\nSELECT a FROM b\n```", "SELECT a FROM b"),
    ("Use this:\n```\nSELECT a FROM b\n```\nand this is python:\n```python\nprint(1)\n```", "SELECT a FROM b"),
    ("```sql\n-- count rows\nSELECT count(*)\nFROM t\n```", "SELECT count(*)\nFROM t"),
    ("```sql\nSELECT a FROM b WHERE c = 'x;y'; DROP TABLE b;\n```", "SELECT a FROM b WHERE c = 'x;y'"),
    ("Cut off mid-way:\n```sql\nSELECT a FROM b WHERE", "SELECT a FROM b WHERE"),
    ("```sql\n-- Your SQL query\n```\nSELECT real FROM t", "SELECT real FROM t"),
    # tags
    ("<think>maybe SELECT wrong</think>\n<answer>\n```sql\nSELECT right FROM t\n```\n</answer>", "SELECT right FROM t"),
    ("<think>x</think><answer>SELECT a FROM t</answer>", "SELECT a FROM t"),
    ("<reasoning>we need t</reasoning>\n<sql>\nSELECT b FROM t\n</sql>", "SELECT b FROM t"),
    ("<answer>first</answer> <answer>SELECT 2</answer>", "SELECT 2"),
    # the SQL agent's protocol: the final answer wins over the queries run before it
    ("<solution>SELECT c1 FROM t1</solution>", "SELECT c1 FROM t1"),
    ("<sql>SELECT a FROM t</sql>\n<observation>\nrows: 0\n</observation>\n<solution>SELECT b FROM t</solution>",
     "SELECT b FROM t"),
    ("<sql>SELECT never_closed FROM t", "SELECT never_closed FROM t"),
    # DB-GPT-Hub
    ("...###Input:\nq\n\n###Response:SELECT count(*) FROM singer", "SELECT count(*) FROM singer"),
    ("###Response:\n SELECT a FROM b </s>", "SELECT a FROM b </s>"),
    # prefixed lines
    ("The answer is below.\nSQL: SELECT * FROM x\nThis query returns all rows.", "SELECT * FROM x"),
    ("SQL query: SELECT a\nFROM b\n\nExplanation: ...", "SELECT a\nFROM b"),
    ("Query:\nSELECT a FROM b", "SELECT a FROM b"),
    # plain text
    ("SELECT a FROM b", "SELECT a FROM b"),
    ("  select a from b;  ", "select a from b"),
    ("WITH t AS (SELECT 1 AS x) SELECT x FROM t", "WITH t AS (SELECT 1 AS x) SELECT x FROM t"),
    ("Here you go:\nSELECT a\nFROM b\nWHERE c = 1\nThe result lists a.", "SELECT a\nFROM b\nWHERE c = 1"),
    ("(SELECT a FROM b) UNION (SELECT a FROM c)", "(SELECT a FROM b) UNION (SELECT a FROM c)"),
    # writes are returned: the executor refuses them, extraction does not judge
    ("```sql\nDELETE FROM t\n```", "DELETE FROM t"),
    # nothing SQL-like
    ("", ""),
    ("I cannot answer that.", ""),
    ("```python\nprint('hi')\n```", ""),
    ("<answer></answer>", ""),
    ("SQL: none", ""),
]


@pytest.mark.parametrize(("raw", "want"), CASES)
def test_extract(raw: str, want: str) -> None:
    assert extract_sql(raw) == want


def test_non_strings_and_bytes() -> None:
    assert extract_sql(None) == ""  # type: ignore[arg-type]
    assert extract_sql(42) == ""  # type: ignore[arg-type]
    assert extract_sql(b"```sql\nSELECT 1\n```") == "SELECT 1"  # type: ignore[arg-type]
    assert extract_sql(b"\xff\xfe SELECT x FROM y") == ""  # type: ignore[arg-type] - not at line start
    assert extract_sql("SELECT a\x00 FROM b") == "SELECT a FROM b"


def test_fuzz_never_raises() -> None:
    rng = random.Random(1234)
    alphabet = string.printable + "`<>/\\;'\"\u00e9\u4e2d\U0001f600\x00"
    pieces = ["```", "```sql\n", "<answer>", "</answer>", "<sql>", "</sql>", "<think>", "SELECT ", "WITH ",
              "###Response:", "SQL:", ";", "'", "\n\n", "--", "(", ")"]
    for _ in range(1500):
        kind = rng.random()
        if kind < 0.3:
            raw = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))
            text = raw.decode("latin-1")
        elif kind < 0.6:
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300)))
        else:
            text = "".join(rng.choice(pieces + [rng.choice(alphabet)]) for _ in range(rng.randint(0, 80)))
        # the rules themselves must not raise (extract_sql's catch-all is only a last resort)
        assert _extract(text.replace("\x00", "")) == extract_sql(text)
        out = extract_sql(text)
        assert isinstance(out, str)
        assert out == out.strip()


PATHOLOGICAL = {
    "open_answer_tags": "<answer>" * 25000,
    "open_sql_tags": "<sql>x" * 30000,
    "fences_without_newline": "```a" * 50000,
    "unclosed_fences": "```\n" + "```x" * 50000,
    "open_sql_fences": "```sql\n" * 28000,
    "sql_prefix_lines": "SQL: x\n" * 28000,
    "response_cues": "###Response:" * 16000,
    "unterminated_quote": "SELECT '" + ";a" * 95000,
    "spaces": " " * 200000,
    "backticks": "`" * 200000,
    "repeated_select": "SELECT " * 50000 + "```sql\n" + "x" * 100000,
}


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_runaway_generations_stay_linear(name: str) -> None:
    # Each of these took from 10 s to minutes with backtracking regexes; now milliseconds.
    import time

    t0 = time.perf_counter()
    assert isinstance(extract_sql(PATHOLOGICAL[name]), str)
    assert time.perf_counter() - t0 < 3.0


def test_first_statement_respects_quotes_and_comments() -> None:
    from sqlcoach.sql.extract import first_statement

    assert first_statement("SELECT ';' AS a; SELECT 2") == "SELECT ';' AS a"
    assert first_statement("SELECT 'it''s;' FROM t;") == "SELECT 'it''s;' FROM t"
    assert first_statement('SELECT "a;b", `c;d`, [e;f] FROM t; x') == 'SELECT "a;b", `c;d`, [e;f] FROM t'
    assert first_statement("SELECT 1 -- no; really\n; SELECT 2") == "SELECT 1 -- no; really"
    assert first_statement("SELECT /* ; */ 1; 2") == "SELECT /* ; */ 1"
    assert first_statement("SELECT 'open;") == "SELECT 'open;"
