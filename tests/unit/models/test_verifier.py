"""The verifier's input, its folder checks, its selections and its reward, without a model
(a fake ``Verifier`` scores); training a real one is tests/integration/test_verifier_tiny.py."""

from __future__ import annotations

import json
import math
import sqlite3
import sys
from pathlib import Path

import pytest

from sqlcoach.errors import ConfigError
from sqlcoach.execution.select import Candidates, get_selector
from sqlcoach.generate.verifier_select import VerifierSelector, build_selector, chosen_score
from sqlcoach.models.verifier import SPEC_FILE, VerifierSpec, check_head, read_spec, verifier_text
from sqlcoach.types import ExecResult

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from fake_verifier import FakeVerifier  # noqa: E402

OK = lambda *rows: ExecResult(rows=tuple(rows), columns=("name",))  # noqa: E731
FAIL = ExecResult(rows=None, error="exec_error", message="no such column: nme")
TIMEOUT = ExecResult(rows=None, error="timeout", message="")


# ------------------------------------------------------------------ input text


def test_verifier_text_reads_schema_question_sql_and_result_within_budget():
    big = OK(*[(f"name number {i} " * 5,) for i in range(500)])
    text = verifier_text("Who?", "singer(name)", "SELECT  name\nFROM singer", big, result_budget=120)
    head, result = text.split("result:\n")
    assert head == "schema:\nsinger(name)\nquestion: Who?\nSQL: SELECT name FROM singer\n"
    assert len(result) <= 120 and result.startswith("columns (1): name\nrows: 500")
    assert verifier_text("Who?", "", "SELECT x", TIMEOUT, result_budget=200).endswith("error: timeout: the query ran past its time limit")
    assert verifier_text("Who?", "", "", None, result_budget=200).endswith("not run: no SQL")


# ------------------------------------------------------------------ folder checks


def _folder(tmp_path, spec=True, archs=("Qwen2ForSequenceClassification",), labels=1, **spec_kw):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "config.json").write_text(json.dumps(
        {"architectures": list(archs), "id2label": {str(i): f"LABEL_{i}" for i in range(labels)}}))
    if spec:
        VerifierSpec(base_model="tiny", **spec_kw).save(tmp_path)
    return tmp_path


def test_a_folder_that_is_not_a_verifier_is_a_one_line_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        read_spec(tmp_path / "missing")
    with pytest.raises(ConfigError, match="no sqlcoach_verifier.json"):
        read_spec(_folder(tmp_path / "policy", spec=False))
    wrong_kind = _folder(tmp_path / "rm")
    (wrong_kind / SPEC_FILE).write_text(json.dumps({"base_model": "x", "kind": "reward_model"}))
    with pytest.raises(ConfigError, match="not a verifier"):
        read_spec(wrong_kind)
    (wrong_kind / SPEC_FILE).write_text("{not json")
    with pytest.raises(ConfigError, match="not a readable verifier spec"):
        read_spec(wrong_kind)
    with pytest.raises(ConfigError, match="head is .*ForCausalLM"):
        check_head(_folder(tmp_path / "causal", archs=("Qwen2ForCausalLM",)))
    with pytest.raises(ConfigError, match="2 outputs"):
        check_head(_folder(tmp_path / "two", labels=2))
    check_head(_folder(tmp_path / "good"))
    assert read_spec(tmp_path / "good").result_budget == 128
    with pytest.raises(ConfigError) as info:
        read_spec(tmp_path / "policy")
    assert "\n" not in str(info.value)  # the CLI prints it as one line


# ------------------------------------------------------------------ selection


def test_verifier_never_picks_a_failing_candidate_whatever_its_score():
    c = Candidates.of(["SELECT nme FROM t", "SELECT slow FROM t", "SELECT a FROM t", "SELECT b FROM t"],
                      [FAIL, TIMEOUT, OK(("x",)), OK(("y",))], question="Q?", schema_text="t(a, b)")
    fake = FakeVerifier({"SELECT nme FROM t": 9.0, "SELECT slow FROM t": 8.0, "SELECT a FROM t": -1.0, "SELECT b FROM t": 0.5})
    pick = VerifierSelector(fake, "verifier")(c)
    assert (pick.chosen, pick.rule, pick.fallback) == (3, "verifier", False)
    # the failing and timed-out candidates (which the fake would score 9 and 8) are not scored at all
    assert pick.scores == (None, None, -1.0, 0.5) and chosen_score(pick) == 0.5
    assert pick.votes == (0, 0, 1, 1)  # the plain vote's group sizes, as every rule records them
    # it read the question, the schema and the result of each candidate that ran, and only those
    assert {it[0] for it in fake.read} == {"Q?"} and {it[1] for it in fake.read} == {"t(a, b)"}
    assert [it[2] for it in fake.read] == ["SELECT a FROM t", "SELECT b FROM t"]
    both = VerifierSelector(fake, "vote+verifier")(c)
    assert both.chosen == 3


def test_verifier_ties_go_to_the_earlier_candidate_and_nothing_ran_falls_back_to_the_vote():
    c = Candidates.of(["SELECT a FROM t", "SELECT b FROM t"], [OK(("x",)), OK(("y",))])
    assert VerifierSelector(FakeVerifier({}), "verifier")(c).chosen == 0
    none_ran = Candidates.of(["SELECT nme", "SELECT nme", "SELECT z"], [FAIL, FAIL, FAIL])
    pick = VerifierSelector(FakeVerifier({"SELECT z": 5.0}), "verifier")(none_ran)
    assert (pick.chosen, pick.fallback) == (0, True)  # the vote's fallback: the most frequent SQL text
    assert pick.scores == (None, None, None) and chosen_score(pick) is None


def test_vote_plus_verifier_weighs_groups_by_probability():
    # two samples agree on result x, one sample alone on y
    c = Candidates.of(["SELECT a FROM t", "SELECT a2 FROM t", "SELECT b FROM t"], [OK(("x",)), OK(("x",)), OK(("y",))])
    assert VerifierSelector(FakeVerifier({}), "vote+verifier")(c).chosen == 0  # equal scores: the plain vote
    confident = FakeVerifier({"SELECT a FROM t": -6.0, "SELECT a2 FROM t": -5.0, "SELECT b FROM t": 6.0})
    assert VerifierSelector(confident, "vote+verifier")(c).chosen == 2  # 0.998 > 0.0025 + 0.0067
    within = FakeVerifier({"SELECT a FROM t": 0.1, "SELECT a2 FROM t": 2.0, "SELECT b FROM t": 0.0})
    assert VerifierSelector(within, "vote+verifier")(c).chosen == 1  # the best-scored member of the winning group


def test_build_selector_rules():
    assert build_selector("vote") is get_selector("vote")
    with pytest.raises(ConfigError, match="--verifier DIR"):
        build_selector("verifier")
    with pytest.raises(ConfigError, match="read only by the selections"):
        build_selector("vote", "some/dir")
    with pytest.raises(ConfigError, match="choose one of .*vote\\+verifier"):
        get_selector("nope")
    with pytest.raises(ConfigError, match="not a verifier|not found"):
        build_selector("verifier", "no/such/folder")


# ------------------------------------------------------------------ reward (TRL contract, no gold)


def test_verifier_reward_on_trls_contract_reads_no_gold(tmp_path):
    from sqlcoach.rewards.registry import build_rewards, close_rewards

    db = tmp_path / "db.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE singer (name TEXT, age INTEGER)")
    con.executemany("INSERT INTO singer VALUES (?, ?)", [("Ann", 25), ("Bo", 35)])
    con.commit()
    con.close()
    folder = _folder(tmp_path / "verifier")
    (reward,) = build_rewards(["verifier"], verifier={"verifier_path": str(folder)})
    assert reward.__name__ == "verifier"
    fake = FakeVerifier({"SELECT name FROM singer WHERE age > 30": 2.0, "SELECT nme FROM singer": 3.0})
    reward._verifier, reward._builder = fake, __import__("sqlcoach.prompts.builder", fromlist=["x"]).PromptBuilder()
    try:
        out = reward(
            prompts=[[{"role": "user", "content": "q"}]] * 4,
            completions=[[{"role": "assistant", "content": "SELECT name FROM singer WHERE age > 30"}],
                         [{"role": "assistant", "content": "SELECT nme FROM singer"}],
                         [{"role": "assistant", "content": "no sql here"}],
                         [{"role": "assistant", "content": "SELECT 1"}]],
            completion_ids=None,
            question=["Who is over 30?", "Who?", "Who?", ""], db_path=[str(db)] * 4,
        )
    finally:
        close_rewards([reward])
    assert out[0] == pytest.approx(1 / (1 + math.exp(-2.0))) and out[3] is None
    read = {sql: res for _, _, sql, res in fake.read}
    assert read["SELECT name FROM singer WHERE age > 30"].rows == (("Bo",),)
    assert read["SELECT nme FROM singer"].error == "exec_error"  # executed, failed, rendered for the verifier
    assert "singer" in fake.read[0][1]  # the schema text, built from db_path
    with pytest.raises(ConfigError, match="needs verifier_path"):
        build_rewards(["verifier"])
    with pytest.raises(ConfigError, match="no sqlcoach_verifier.json"):
        build_rewards(["verifier"], verifier={"verifier_path": str(tmp_path)})
