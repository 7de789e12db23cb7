"""The judge's reply parser on hand-written replies, well-formed and malformed: it never raises,
reads the usual variations, and refuses to guess when a score is missing or out of range."""

from __future__ import annotations

import pytest

from sqlcoach.generate.judge import load_template, parse_reply, render, summarize_judgements
from sqlcoach.errors import DataError

GOOD = """SQL_SCORE: 4
REASONING_SCORE: 3
FORMAT_SCORE: 5
EDUCATIONAL_SCORE: 4
OVERALL_SCORE: 4.0
EXPLANATION: Correct join, but the ORDER BY is redundant.
ERROR_TYPE: none"""


def test_well_formed_reply():
    s = parse_reply(GOOD)
    assert s.ok and (s.sql, s.reasoning, s.format, s.educational, s.overall) == (4, 3, 5, 4, 4.0)
    assert s.explanation == "Correct join, but the ORDER BY is redundant." and s.error_type == "none"
    assert s.problems == []


@pytest.mark.parametrize("reply", [
    "**SQL_SCORE:** 4\n**REASONING_SCORE:** 3\n**FORMAT_SCORE:** 5\n**EDUCATIONAL_SCORE:** 4\n**OVERALL_SCORE:** 4",
    "SQL_SCORE: [4]\nREASONING_SCORE: [3]\nFORMAT_SCORE: [5]\nEDUCATIONAL_SCORE: [4]\nOVERALL_SCORE: [4.0]",
    "sql score: 4/5, reasoning score: 3/5, format score: 5/5, educational score = 4/5, overall score: 4",
    "Here is my grading.\n\n`SQL_SCORE: 4`\n`REASONING_SCORE: 3`\n`FORMAT_SCORE: 5`\n`EDUCATIONAL_SCORE: 4`\nThanks!",
])
def test_variations_are_read(reply):
    s = parse_reply(reply)
    assert s.ok and (s.sql, s.reasoning, s.format, s.educational) == (4, 3, 5, 4)
    assert s.overall == 4.0


@pytest.mark.parametrize("reply, problem", [
    ("", "empty reply"),
    (None, "empty reply"),
    ("The query looks fine to me, I would give it a good score.", "no SQL_SCORE"),
    ("SQL_SCORE: 4\nREASONING_SCORE: 3\nFORMAT_SCORE: 5", "no EDUCATIONAL_SCORE"),
    ("SQL_SCORE: 9\nREASONING_SCORE: 3\nFORMAT_SCORE: 5\nEDUCATIONAL_SCORE: 4", "SQL_SCORE 9 outside 1-5"),
    ("SQL_SCORE: 0\nREASONING_SCORE: 3\nFORMAT_SCORE: 5\nEDUCATIONAL_SCORE: 4", "SQL_SCORE 0 outside 1-5"),
    ("SQL_SCORE: high\nREASONING_SCORE: 3\nFORMAT_SCORE: 5\nEDUCATIONAL_SCORE: 4", "no SQL_SCORE"),
    ("SQL_SCORE: 4\nREASONING_SCORE: 3\nFORMAT_SCORE: 5\nEDUCATIONAL_SCORE: 4" * 0 + "\x00\ufffd" * 50, "no SQL_SCORE"),
])
def test_malformed_replies_are_counted_not_guessed(reply, problem):
    s = parse_reply(reply)
    assert not s.ok and s.overall is None
    assert problem in s.problems


def test_the_template_echoed_back_is_not_a_score():
    # what SmolLM2-135M-Instruct replied when served as the judge (sqlcoach serve, 2026-12-02)
    reply = ("SQL_SCORE: [1-5]\nREASONING_SCORE: [1-5]\nFORMAT_SCORE: [1-5]\nEDUCATIONAL_SCORE: [1-5]\n"
             "OVERALL_SCORE: [average of the four scores]\nEXPLANATION: [one or two sentences]\n\nThe answer is:\n[1-5]")
    s = parse_reply(reply)
    assert not s.ok and s.sql is None and s.overall is None
    assert "SQL_SCORE is the placeholder 1-5, not a score" in s.problems
    assert parse_reply("SQL_SCORE: 4 - 5\nREASONING_SCORE: 3\nFORMAT_SCORE: 5\nEDUCATIONAL_SCORE: 4").sql is None


def test_missing_or_inconsistent_overall_uses_the_mean():
    s = parse_reply("SQL_SCORE: 5\nREASONING_SCORE: 4\nFORMAT_SCORE: 5\nEDUCATIONAL_SCORE: 2\nERROR_TYPE: none")
    assert s.ok and s.overall == 4.0 and "no OVERALL_SCORE: the mean of the four used" in s.problems
    s = parse_reply("SQL_SCORE: 1\nREASONING_SCORE: 1\nFORMAT_SCORE: 1\nEDUCATIONAL_SCORE: 1\nOVERALL_SCORE: 5")
    assert s.ok and s.overall == 1.0 and any("not the mean" in p for p in s.problems)


def test_error_type_outside_the_list_is_other():
    s = parse_reply(GOOD.replace("ERROR_TYPE: none", "ERROR_TYPE: wrong aggregation"))
    assert s.ok and s.error_type == "other" and any("ERROR_TYPE" in p for p in s.problems)
    s = parse_reply(GOOD.replace("ERROR_TYPE: none", "ERROR_TYPE: [logic]"))
    assert s.error_type == "logic"


def test_template_rendering_is_one_pass_and_checked(tmp_path):
    t = load_template()
    for ph in ("{schema}", "{question}", "{gold_sql}", "{prediction}", "{db_id}"):
        assert ph in t
    out = render("Q: {question} P: {prediction}", question="what is {prediction}?", prediction="SELECT 1")
    assert out == "Q: what is {prediction}? P: SELECT 1"
    bad = tmp_path / "t.txt"
    bad.write_text("no placeholder here")
    with pytest.raises(DataError, match="prediction"):
        load_template(bad)
    with pytest.raises(DataError, match="cannot read"):
        load_template(tmp_path / "missing.txt")


def test_summary_confusion_and_kappa():
    def rec(sql, overall=None, ok=True, err=None):
        scores = None if err else {"ok": ok, "sql": sql, "reasoning": 3, "format": 5, "educational": 3,
                                   "overall": overall if overall is not None else (sql + 11) / 4, "error_type": "none"}
        return {"scores": scores, "request_error": err, "usage": {"prompt_tokens": 10, "completion_tokens": 5}}

    records = [rec(5), rec(5), rec(2), rec(4), rec(1, ok=False), rec(0, err="timeout"), rec(5)]
    ex = [True, True, False, False, True, True, None]
    s = summarize_judgements(records, ex)
    assert s["judged"] == 5 and s["malformed_replies"] == 1 and s["request_errors"]["timeout"] == 1
    c = s["confusion"]
    assert (c["judge_pass_ex_true"], c["judge_pass_ex_false"], c["judge_fail_ex_true"], c["judge_fail_ex_false"]) \
        == (2, 1, 0, 1)
    assert c["compared"] == 4 and c["agreement"] == 0.75
    assert c["kappa"] == 0.5  # p_o 0.75, p_e 0.5
    assert s["means"]["sql"] == round((5 + 5 + 2 + 4 + 5) / 5, 4)
    assert s["overall_ge_4"] == 3 and s["usage"]["prompt_tokens"] == 70
