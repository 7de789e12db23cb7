"""Rewards that read the completion without running it: format, complexity, reasoning, linking."""

from __future__ import annotations

import math

import pytest

from sqlcoach.errors import ConfigError
from sqlcoach.rewards.common import column, completion_text
from sqlcoach.rewards.complexity import ComplexityReward, complexity_score, sql_complexity
from sqlcoach.rewards.errors import ERROR_CREDIT, ERROR_KINDS, classify, classify_message
from sqlcoach.rewards.format import FormatReward
from sqlcoach.rewards.linking import NgramReward, SchemaLinkingReward, ngram_f1, schema_items, sql_tokens
from sqlcoach.rewards.reasoning import ReasoningQualityReward, reasoning_parts, reasoning_text, schema_names
from sqlcoach.types import ExecResult

# ----------------------------------------------------------------------------- common


def test_completion_text_standard_and_conversational():
    assert completion_text("SELECT 1") == "SELECT 1"
    assert completion_text([{"role": "assistant", "content": "hi"}]) == "hi"
    assert completion_text([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]) == "a"
    assert completion_text({"role": "assistant", "content": "x"}) == "x"
    assert completion_text([{"role": "assistant", "content": [{"type": "text", "text": "p"}, {"type": "text", "text": "q"}]}]) == "pq"
    assert completion_text(None) == "" and completion_text([]) == "" and completion_text(3) == ""


def test_column_broadcasts_scalars_and_checks_lengths():
    assert column({"a": "x"}, "a", 3, reward="r") == ["x", "x", "x"]
    assert column({"a": [1, 2]}, "a", 2, reward="r") == [1, 2]
    assert column({}, "a", 2, reward="r", required=False) == [None, None]
    with pytest.raises(ConfigError, match="needs the dataset column 'a'"):
        column({"log_extra": print}, "a", 2, reward="r")
    with pytest.raises(ConfigError):
        column({"a": [1]}, "a", 2, reward="r")


# ----------------------------------------------------------------------------- error classes


@pytest.mark.parametrize(
    "error,message,kind",
    [
        ("parse_error", 'near "FORM": syntax error', "syntax"),
        ("parse_error", "incomplete input", "syntax"),
        ("exec_error", "no such table: singers", "missing_table"),
        ("exec_error", "no such column: nme", "missing_column"),
        ("exec_error", "no such function: foo", "missing_function"),
        ("exec_error", "ambiguous column name: name", "ambiguous_column"),
        ("exec_error", "datatype mismatch", "type_mismatch"),
        ("exec_error", "misuse of aggregate function count()", "misuse"),
        ("exec_error", "wrong number of arguments to function substr()", "misuse"),
        ("exec_error", "refused: DELETE is not a read-only query", "forbidden"),
        ("exec_error", "refused: not authorized (only read-only queries may run)", "forbidden"),
        ("exec_error", "attempt to write a readonly database", "forbidden"),
        ("exec_error", "multiple statements", "forbidden"),
        ("exec_error", "something new", "other"),
        ("timeout", "deadline passed", "timeout"),
        ("too_large", "more than 10 rows", "too_large"),
        ("no_sql", "empty SQL", "no_sql"),
    ],
)
def test_error_classification(error, message, kind):
    assert classify(ExecResult(rows=None, error=error, message=message)) == kind


def test_error_table_is_complete_and_bounded():
    assert set(ERROR_CREDIT) == set(ERROR_KINDS)
    assert all(0.0 <= v <= 0.2 for v in ERROR_CREDIT.values())
    assert ERROR_CREDIT["syntax"] == 0.0 < ERROR_CREDIT["missing_table"] < ERROR_CREDIT["ambiguous_column"]
    assert classify(ExecResult(rows=())) is None
    # "not allowed" inside an aggregate message is a misuse, not a refused write
    assert classify_message("aggregate functions are not allowed in the GROUP BY clause") == "misuse"


# ----------------------------------------------------------------------------- format


def test_format_templates():
    reward = FormatReward()  # reasoning_tags
    good = "<reasoning>Find names.</reasoning>\n<sql>SELECT name FROM singer</sql>"
    assert reward(None, [good, f"  {good}\n", "<sql>SELECT 1</sql>", "<reasoning></reasoning><sql>SELECT 1</sql>",
                         good + " trailing"]) == [1.0, 1.0, 0.0, 0.0, 0.0]  # fmt: skip
    r1 = FormatReward(template="reasoning", weight=0.1)
    assert r1(None, ["<think>a</think>\n<answer>\n```sql\nSELECT 1\n```\n</answer>",
                     "<think>a</think><answer>SELECT 1</answer>", good]) == pytest.approx([0.1, 0.0, 0.0])  # fmt: skip
    think = FormatReward(template="think")
    assert think(None, ["<think>a</think><answer>SELECT 1</answer>", "<think>a</think><answer> </answer>"]) == [1.0, 0.0]
    md = FormatReward(template="omnisql")
    assert md(None, ["We count.\n```sql\nSELECT 1\n```", "```sql\nSELECT 1\n```\nmore", "```sql\n```"]) == [1.0, 0.0, 0.0]
    bare = FormatReward(template="sql_terminal")
    assert bare(None, ["SELECT 1", "WITH x AS (SELECT 1) SELECT * FROM x", "Sure: SELECT 1", "SELECT 1 ```"]) == [
        1.0, 1.0, 0.0, 0.0,
    ]  # fmt: skip


def test_format_uses_the_prompt_templates_shapes():
    from sqlcoach.prompts.templates import TEMPLATES, render_completion

    for name, t in TEMPLATES.items():
        if t.anonymize:  # its completion needs a database; its shape is minimal's, checked below
            target = "SELECT c1 FROM t1"
        else:
            target = render_completion("SELECT name FROM singer", name, "Look at the singer table.")
        assert FormatReward(template=name)(None, [target]) == [1.0], name


def test_format_conversational_custom_pattern_and_column():
    reward = FormatReward(pattern=r"ANSWER: (.+)")
    assert reward(None, [[{"role": "assistant", "content": "ANSWER: 3"}], "answer: "]) == [1.0, 0.0]
    reward = FormatReward()
    got = reward(None, ["<think>a</think><answer>b</answer>", "<think>a</think><answer>b</answer>"],
                 format_template=["think", None])  # fmt: skip
    assert got == [1.0, 0.0]
    with pytest.raises(ConfigError, match="unknown template"):
        reward(None, ["x"], format_template=["nope"])
    with pytest.raises(ConfigError):
        FormatReward(template="nope")
    with pytest.raises(ConfigError, match="regular expression"):
        FormatReward(pattern="(")


# ----------------------------------------------------------------------------- complexity


def test_complexity_count():
    assert sql_complexity("SELECT name FROM singer") == 1.0
    assert sql_complexity("SELECT count(*) FROM singer WHERE age > 20") == 2.0
    two = "SELECT T1.name, count(*) FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id GROUP BY T1.name ORDER BY count(*) DESC LIMIT 1"
    # select 1 + join 1 + ON predicate 0.5 + 2 aggregates 1.0 + group 1 + order 0.5 + limit 0.25
    assert sql_complexity(two) == pytest.approx(5.25)
    assert sql_complexity("SELECT name FROM singer WHERE age > (SELECT avg(age) FROM singer)") == pytest.approx(3.0)
    assert sql_complexity("") is None and sql_complexity("SELECT FROM WHERE (") is None


def test_complexity_reward_with_and_without_gold():
    reward = ComplexityReward()
    gold = "SELECT count(*) FROM singer WHERE age > 20"  # 2.0
    got = reward(None, [gold, "SELECT name FROM singer", "", "SELECT ((("], gold_sql=[gold] * 4)
    assert got[0] == pytest.approx(0.6)
    assert got[1] == pytest.approx(0.6 * math.exp(-0.5 * math.log(0.5) ** 2))
    assert got[2:] == [0.0, 0.0]
    assert reward(None, ["SELECT 1"], gold_sql=["SELECT ((("]) == [None]
    no_gold = reward(None, ["SELECT name FROM singer", gold, "SELECT x FROM t"])
    assert no_gold == pytest.approx([0.06, 0.24, 0.06])
    assert reward(None, [gold], gold_sql=[None]) == pytest.approx([0.24])


def test_complexity_ratio_is_clamped():
    assert complexity_score(1e9, 1.0) == pytest.approx(math.exp(-0.5 * math.log(1000) ** 2))
    assert complexity_score(0.0, 5.0) == pytest.approx(math.exp(-0.5 * math.log(0.001) ** 2))
    assert complexity_score(3.0, 0.0) == complexity_score(1000.0, 1.0)
    assert complexity_score(8.0, None) == 0.4 and complexity_score(8.5, None) == 0.1


# ----------------------------------------------------------------------------- reasoning


GOOD_REASONING = """<reasoning>
First, find the singer table and its name and age columns.
Then filter the rows WHERE age is above 20 and count them with COUNT.
Finally, ORDER BY nothing: a single aggregate needs no sort, and GROUP BY is not needed either.
This question asks how many singers are older than twenty, so a plain count over one table answers it.
</reasoning>
<sql>SELECT count(*) FROM singer WHERE age > 20</sql>"""


def test_reasoning_parts(concert_db):
    names = schema_names(str(concert_db))
    assert {"singer", "concert", "name", "age", "country", "singer_id", "year", "concert_id"} <= names
    text = reasoning_text(GOOD_REASONING)
    assert "SELECT count" not in text
    parts = reasoning_parts(text, names)
    assert parts["length"] == 0.20  # 50+ words
    assert parts["terms"] == 0.20  # where, count, order by, group by, table, column(s)?, filter, aggregate, sort ...
    assert parts["structure"] == 0.15 and parts["steps"] == 0.15
    assert parts["schema"] == pytest.approx(0.15)  # singer, name, age


def test_reasoning_reward_levels(concert_db):
    reward = ReasoningQualityReward()
    got = reward(
        None,
        [GOOD_REASONING, "<reasoning>count each singer</reasoning><sql>SELECT count(*) FROM singer</sql>",
         "SELECT count(*) FROM singer WHERE age > 20", [{"role": "assistant", "content": GOOD_REASONING}]],
        db_path=[str(concert_db)] * 4,
    )  # fmt: skip
    assert got[0] == pytest.approx(0.7 * 0.85)
    assert got[1] == pytest.approx(0.7 * 0.03 + 0.7 * 0.05)  # one SQL term (count), one table (singer)
    assert got[2] == 0.0  # bare SQL is not reasoning
    assert got[3] == got[0]
    # without a database, no schema part
    assert reward(None, [GOOD_REASONING])[0] == pytest.approx(0.7 * 0.70)


def test_reasoning_small_thresholds():
    ten = " ".join(["word"] * 10)
    assert reasoning_parts(ten)["length"] == 0.10
    assert reasoning_parts(" ".join(["word"] * 25))["length"] == 0.15
    assert reasoning_parts("a\nb")["structure"] == 0.10
    assert reasoning_parts("First do x.")["steps"] == 0.0
    assert reasoning_parts("1. pick\n2. sort")["steps"] == 0.15
    assert schema_names("/nonexistent/x.sqlite") == frozenset()


def test_schema_names_of_a_test_suite_folder(concert_db):
    # concert_db lives in a tmp folder: a folder without <name>.sqlite uses its first *.sqlite
    assert "singer" in schema_names(str(concert_db.parent))


def test_reasoning_is_capped_at_weight(concert_db):
    names = " ".join(["singer name age country year concert singer_id concert_id"] * 3)
    terms = "select where join group by order by having count sum avg"
    text = f"<think>First {names}\nthen {terms}\n" + " ".join(["w"] * 60) + "\nend</think><answer>SELECT 1</answer>"
    got = ReasoningQualityReward(weight=0.7)(None, [text], db_path=[str(concert_db)])
    assert got == pytest.approx([0.7])


# ----------------------------------------------------------------------------- linking


def test_schema_linking():
    gold = "SELECT T1.name FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id"
    assert schema_items(gold) == frozenset({("table", "singer"), ("table", "concert"), ("column", "name"),
                                            ("column", "singer_id")})  # fmt: skip
    reward = SchemaLinkingReward()
    got = reward(None, [gold, "SELECT name FROM singer", "", "SELECT ((("], gold_sql=[gold] * 4)
    assert got == pytest.approx([1.0, 0.5, 0.0, 0.0])
    assert reward(None, ["SELECT 1"], gold_sql=[None]) == [None]
    assert reward(None, ["SELECT 1"], gold_sql=["SELECT ((("]) == [None]


def test_ngram():
    assert sql_tokens("SELECT a FROM t WHERE b = 'x y'") == ["select", "a", "from", "t", "where", "b", "=", "'x y'"]
    assert ngram_f1(["a", "b"], ["a", "b"]) == 1.0
    assert ngram_f1(["a"], ["b"]) == 0.0
    # unigrams: 2 of 3 shared both ways (F1 2/3); bigrams: 1 of 2 (F1 1/2); trigrams: 0
    assert ngram_f1(["a", "b", "c"], ["a", "b", "d"]) == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    reward = NgramReward(weight=0.5)
    got = reward(None, ["SELECT name FROM singer", "", "SELECT name FROM singer"],
                 gold_sql=["select NAME from singer", "SELECT 1", "  "])  # fmt: skip
    assert got == [0.5, 0.0, None]
