"""Preference pairs mined by execution: a FAKE generate function on a generated SQLite database
(no model), so the pairing rules, stats, gold fallback and held-out split are checked in seconds."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

import pytest

from sqlcoach.errors import ConfigError, DataError
from sqlcoach.execution.pool import ExecutorPool
from sqlcoach.prompts.settings import PromptSettings
from sqlcoach.train.pairs import (
    build_pairs_for_question,
    mine_pairs,
    read_pairs,
    split_holdout,
    write_pairs,
)
from sqlcoach.types import Example

GOOD = "SELECT name FROM singer WHERE age > 30"
WRONG = "SELECT name FROM singer WHERE age > 40"
ERROR = "SELECT nope FROM singer"
PARSE = "SELECT name FROM WHERE"


# ------------------------------------------------------------------ pure pairing rules


def test_wrong_result_preferred_over_errors_and_most_common_correct_chosen():
    texts = [PARSE, ERROR, "SELECT name FROM singer WHERE 30 < age", WRONG, GOOD, GOOD]
    classes = ["parse_error", "exec_error", None, "wrong_result", None, None]
    (pair,) = build_pairs_for_question(texts, texts, classes, gold_completion="GOLD")
    assert pair["rejected"] == WRONG and pair["rejected_kind"] == "wrong_result"
    assert pair["chosen"] == GOOD and pair["chosen_kind"] == "sample"  # 2 votes beat 1


def test_error_is_used_when_no_wrong_result_and_order_is_configurable():
    texts = [PARSE, ERROR, GOOD]
    classes = ["parse_error", "exec_error", None]
    (pair,) = build_pairs_for_question(texts, texts, classes, gold_completion="GOLD")
    assert pair["rejected_kind"] == "exec_error"
    (pair,) = build_pairs_for_question(texts, texts, classes, gold_completion="GOLD",
                                       rejected_order=("parse_error", "exec_error"))
    assert pair["rejected_kind"] == "parse_error"
    # restricted to wrong results only: no pair here
    assert build_pairs_for_question(texts, texts, classes, gold_completion="GOLD", rejected_order=("wrong_result",)) == []


def test_gold_fallback_and_chosen_modes():
    texts, classes = [WRONG, ERROR], ["wrong_result", "exec_error"]
    (pair,) = build_pairs_for_question(texts, texts, classes, gold_completion="GOLD SQL")
    assert pair["chosen"] == "GOLD SQL" and pair["chosen_kind"] == "gold"
    assert build_pairs_for_question(texts, texts, classes, gold_completion="G", chosen="correct") == []
    (pair,) = build_pairs_for_question([GOOD, WRONG], [GOOD, WRONG], [None, "wrong_result"],
                                       gold_completion="G", chosen="gold")
    assert pair["chosen_kind"] == "gold"
    with pytest.raises(ConfigError, match="chosen must be one of"):
        build_pairs_for_question(texts, texts, classes, gold_completion="G", chosen="best")


def test_several_pairs_per_question_use_distinct_rejected_and_no_pair_when_all_correct():
    texts = [WRONG, WRONG, ERROR, PARSE, GOOD]
    classes = ["wrong_result", "wrong_result", "exec_error", "parse_error", None]
    pairs = build_pairs_for_question(texts, texts, classes, gold_completion="G", pairs_per_question=5)
    assert [p["rejected_kind"] for p in pairs] == ["wrong_result", "exec_error", "parse_error"]
    assert build_pairs_for_question([GOOD, GOOD], [GOOD, GOOD], [None, None], gold_completion="G") == []


# ------------------------------------------------------------------ mining with a fake model


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs-db")
    dbs = {}
    for db_id in ("music", "shop"):
        folder = root / db_id
        folder.mkdir()
        path = folder / f"{db_id}.sqlite"
        con = sqlite3.connect(path)
        con.execute("CREATE TABLE singer (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)")
        con.executemany("INSERT INTO singer VALUES (?, ?, ?)", [(1, "Ann", 25), (2, "Bo", 35), (3, "Cy", 45)])
        con.commit()
        con.close()
        dbs[db_id] = str(path)
    return dbs


@dataclass
class _Gen:
    texts: list
    prompt_tokens: int = 0
    generated_tokens: int = 0
    seconds: float = 0.0


class FakeGenerate:
    """Answers by the question's tag: [good], [wrongonly], [erroronly], [allgood]; records calls."""

    def __init__(self):
        self.calls = []

    def __call__(self, model, tokenizer, prompts, *, n, **kw):
        self.calls.append((len(prompts), n, kw))
        out = []
        for p in prompts:
            if "[allgood]" in p:
                row = [GOOD] * n
            elif "[wrongonly]" in p:
                row = [WRONG, ERROR] * n
            elif "[erroronly]" in p:
                row = [ERROR, PARSE, ""] * n
            else:
                row = [PARSE, GOOD, WRONG, ERROR] * n
            out.append(row[:n])
        return _Gen(out)


def _examples(world):
    qs = [("q0", "music", "Who is over 30? [good]"), ("q1", "music", "Who is over 30? [wrongonly]"),
          ("q2", "shop", "Who is over 30? [erroronly]"), ("q3", "shop", "Who is over 30? [allgood]"),
          ("q4", "shop", "Who is over 30? [good] again")]
    exs = [Example(id=i, db_id=db, question=q, gold_sql=GOOD, db_path=world[db]) for i, db, q in qs]
    exs.append(Example(id="q5", db_id="music", question="broken gold [good]", gold_sql="SELECT x FROM missing", db_path=world["music"]))
    return exs


def test_mine_pairs_kinds_fallback_and_stats(world):
    gen = FakeGenerate()
    logs = []
    with ExecutorPool(0) as pool:
        pairs, stats = mine_pairs(None, None, _examples(world), k=4, pool=pool, generate_fn=gen, progress=False,
                                  chunk_size=4, log=logs.append, prompt=PromptSettings(schema_sample_values=0))
    assert [c[0] for c in gen.calls] == [4, 2] and all(c[1] == 4 for c in gen.calls)  # chunks of questions, k each
    by_id = {p["id"]: p for p in pairs}
    assert set(by_id) == {"q0", "q1", "q2", "q4"}  # q3 all correct, q5 gold fails
    assert by_id["q0"]["chosen_kind"] == "sample" and by_id["q0"]["rejected_kind"] == "wrong_result"
    assert by_id["q1"]["chosen_kind"] == "gold" and by_id["q1"]["rejected_kind"] == "wrong_result"
    assert by_id["q2"]["chosen_kind"] == "gold" and by_id["q2"]["rejected_kind"] == "exec_error"
    q0 = by_id["q0"]
    assert q0["prompt"][-1]["role"] == "user" and "Who is over 30?" in q0["prompt"][-1]["content"]
    assert q0["chosen"] == [{"role": "assistant", "content": GOOD}]
    assert q0["rejected"] == [{"role": "assistant", "content": WRONG}]
    assert q0["db_path"] == world["music"] and q0["gold_sql"] == GOOD
    assert stats.questions == 6 and stats.gold_errors == 1
    assert stats.questions_with_pairs == 4 and stats.pairs == 4
    assert stats.questions_all_correct == 1 and stats.questions_any_correct == 3
    assert stats.samples == 20 and stats.samples_correct == 4 + 1 + 1  # q3: 4, q0 and q4: 1 each
    assert stats.by_rejected_kind == {"wrong_result": 3, "exec_error": 1}
    assert stats.chosen_gold == 2 and stats.chosen_sample == 2
    assert stats.by_sample_class["parse_error"] >= 2 and stats.by_sample_class["no_sql"] == 1
    assert abs(stats.share_correct - 6 / 20) < 1e-9
    assert "questions with pairs" in stats.table() and "4 (66.7%)" in stats.table()
    assert any("[pair 1]" in line and "rejected (wrong_result)" in line for line in logs)  # samples are shown


def test_mine_pairs_only_wrong_results_and_validation(world):
    with ExecutorPool(0) as pool:
        pairs, stats = mine_pairs(None, None, _examples(world), k=4, pool=pool, generate_fn=FakeGenerate(),
                                  progress=False, rejected_order=("wrong_result",), log=lambda m: None)
        assert {p["rejected_kind"] for p in pairs} == {"wrong_result"} and stats.pairs == 3
        with pytest.raises(ConfigError, match="rejected_order"):
            mine_pairs(None, None, [], pool=pool, generate_fn=FakeGenerate(), rejected_order=("gold_error",))
        with pytest.raises(ConfigError, match="k must be"):
            mine_pairs(None, None, [], k=0, pool=pool, generate_fn=FakeGenerate())


# ------------------------------------------------------------------ held-out split and files


def _rows(n_db=4, per_db=10, pairs_per_q=2):
    return [{"prompt": [{"role": "user", "content": f"{d}-{q}"}], "chosen": "a", "rejected": "b",
             "db_id": f"db{d}", "id": f"db{d}-q{q}", "question": f"question {q}"}
            for d in range(n_db) for q in range(per_db) for _ in range(pairs_per_q)]


def test_holdout_by_question_is_deterministic_and_never_splits_a_question():
    rows = _rows()
    train, held = split_holdout(rows, 0.1)
    assert len({r["id"] for r in held}) == 4  # 10 % of 40 questions, both pairs of each
    assert not {r["id"] for r in train} & {r["id"] for r in held}
    assert len(train) + len(held) == len(rows)
    again_train, again_held = split_holdout(list(reversed(rows)), 0.1)
    assert {r["id"] for r in again_held} == {r["id"] for r in held}  # order of rows does not matter
    assert {r["id"] for r in split_holdout(rows, 0.1, seed=1)[1]} != {r["id"] for r in held}


def test_holdout_by_database_and_edges():
    train, held = split_holdout(_rows(), 0.25, by="database")
    assert len({r["db_id"] for r in held}) == 1 and not {r["db_id"] for r in train} & {r["db_id"] for r in held}
    assert split_holdout(_rows(), 0.0) == (_rows(), [])
    _, held = split_holdout(_rows(n_db=1, per_db=3, pairs_per_q=1), 0.01)
    assert len(held) == 1  # a positive fraction holds out at least one group
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        split_holdout(_rows(), 1.0)
    with pytest.raises(ConfigError, match="by"):
        split_holdout(_rows(), 0.1, by="table")


def test_write_and_read_pairs(tmp_path):
    rows = _rows(1, 2, 1)
    path = write_pairs(tmp_path / "sub" / "pairs.jsonl", rows)
    assert read_pairs(path) == rows
    path.write_text(path.read_text() + json.dumps({"prompt": "p", "chosen": "c"}) + "\n")
    with pytest.raises(DataError, match="line 3.*rejected"):
        read_pairs(path)
    with pytest.raises(DataError, match="not found"):
        read_pairs(tmp_path / "missing.jsonl")


def test_mine_pairs_with_the_anonymized_template_scores_decoded_sql(world):
    # singer: id -> c1, name -> c2, age -> c3; the model writes placeholders, the pool runs real names
    ex = Example(id="a0", db_id="music", question="Which singers are older than 30? Give their names.",
                 gold_sql="SELECT name FROM singer WHERE age > 30", db_path=world["music"])
    right, wrong = "SELECT c2 FROM t1 WHERE c3 > 30", "SELECT c2 FROM t1 WHERE c3 > 40"

    def gen(model, tokenizer, prompts, *, n, **kw):
        assert "Which t1s are older than 30? Give their c2s." in prompts[0]
        return _Gen([[right, wrong][:n] * (n // 2)])

    with ExecutorPool(0) as pool:
        pairs, stats = mine_pairs(None, None, [ex], k=2, pool=pool, generate_fn=gen, progress=False,
                                  prompt=PromptSettings(template="anonymized", schema_sample_values=0))
    assert stats.samples_correct == 1 and stats.by_sample_class.get("wrong_result") == 1
    [p] = pairs
    assert p["chosen"][0]["content"] == right and p["rejected"][0]["content"] == wrong


# ------------------------------------------------------------------ no gold: the verifier as the scorer


class LengthVerifier:
    """Scores a sample by its SQL's length (a fake ``Verifier.score``); records what it read."""

    def __init__(self, bonus=None):
        self.bonus = bonus or {}
        self.read = []

    def score(self, items):
        self.read.extend(items)
        return [float(len(sql)) + self.bonus.get(sql, 0.0) for _, _, sql, _ in items]


ALL = "SELECT name FROM singer"


def test_pairs_by_score_pure_rules():
    from sqlcoach.train.pairs import build_pairs_by_score
    from sqlcoach.types import ExecResult

    ok1, ok2, same2 = ExecResult((("Bo",), ("Cy",))), ExecResult((("Ann",), ("Bo",), ("Cy",))), ExecResult((("Cy",), ("Bo",)))
    err = ExecResult(None, error="exec_error", message="no such column")
    texts = ["t0", "t1", "t2", "t3"]
    sqls = [GOOD, ALL, "SELECT name FROM singer WHERE age >= 31", ERROR]
    # the failing sample scores highest: never chosen, rejected whatever its score; the same-result one never rejected
    pairs = build_pairs_by_score(texts, sqls, [ok1, ok2, same2, err], [2.0, 1.0, 0.5, 9.0], pairs_per_question=3)
    assert [(p["chosen"], p["rejected"], p["rejected_kind"]) for p in pairs] == [("t0", "t1", "wrong_result"),
                                                                                  ("t0", "t3", "exec_error")]
    assert pairs[0]["chosen_score"] == 2.0 and pairs[0]["rejected_score"] == 1.0
    # a different result scored HIGHER than the chosen cannot be: the chosen is the best that ran
    assert build_pairs_by_score(texts[:2], sqls[:2], [ok1, ok2], [1.0, 3.0])[0]["chosen"] == "t1"
    # equal scores and different results: not lower, no pair; nothing ran: no pair
    assert build_pairs_by_score(texts[:2], sqls[:2], [ok1, ok2], [1.0, 1.0]) == []
    assert build_pairs_by_score(["a", "b"], [ERROR, ""], [err, None], [1.0, 0.0]) == []
    # rejected_order restricts the kinds
    only = build_pairs_by_score(texts, sqls, [ok1, ok2, same2, err], [2.0, 1.0, 0.5, 9.0], rejected_order=("exec_error",))
    assert [p["rejected"] for p in only] == ["t3"]


def test_mine_pairs_with_the_verifier_reads_no_gold(world):
    """Label-free: the same pairs whether the gold is right, garbage or absent."""
    def mine(gold):
        exs = [Example(id=e.id, db_id=e.db_id, question=e.question, gold_sql=gold, db_path=e.db_path) for e in _examples(world)]
        fake = LengthVerifier()
        with ExecutorPool(0) as pool:
            pairs, stats = mine_pairs(None, None, exs, k=4, pool=pool, generate_fn=FakeGenerate(), progress=False,
                                      log=lambda m: None, scorer="verifier", verifier=fake,
                                      prompt=PromptSettings(schema_sample_values=0))
        return pairs, stats, fake

    pairs, stats, fake = mine(GOOD)
    keep = ("prompt", "chosen", "rejected", "chosen_sql", "rejected_sql", "chosen_kind", "rejected_kind",
            "chosen_score", "rejected_score")
    for gold in ("SELECT garbage FROM nowhere", None):
        other, other_stats, _ = mine(gold)
        assert [{k: p[k] for k in keep} for p in other] == [{k: p[k] for k in keep} for p in pairs]
        assert other_stats.as_dict() | {"seconds": 0} == stats.as_dict() | {"seconds": 0}
    by_id = {p["id"]: p for p in pairs}
    # q0 samples PARSE, GOOD, WRONG, ERROR: GOOD and WRONG ran and score the same (equal length): the
    # earlier (GOOD) is chosen; WRONG is not lower, so the rejected is one that failed
    assert by_id["q0"]["chosen_sql"] == GOOD and by_id["q0"]["chosen_kind"] == "verifier"
    assert by_id["q0"]["rejected_sql"] in (PARSE, ERROR) and by_id["q0"]["rejected_kind"] in ("exec_error", "parse_error")
    # q1 samples WRONG, ERROR: with no gold the verifier's best that ran is chosen, right or not
    assert (by_id["q1"]["chosen_sql"], by_id["q1"]["rejected_sql"]) == (WRONG, ERROR)
    assert "q3" not in by_id  # every sample the same result: nothing to reject
    assert "q2" not in by_id  # nothing ran: no chosen answer
    assert stats.questions_none_ran == 1 and stats.samples_ran == stats.by_sample_class["ran"]
    assert "chosen = best verifier score" in stats.table() and "samples correct" not in stats.table()
    q, schema, sql, res = fake.read[0]
    assert "Who is over 30?" in q and "singer" in schema
    read = {s: r for _, _, s, r in fake.read}
    assert sorted(read[GOOD].rows) == [("Bo",), ("Cy",)]  # it read the result
    assert read[ERROR].error == "exec_error" and read[""] is None


def test_mine_pairs_verifier_option_conflicts(world):
    with ExecutorPool(0) as pool:
        with pytest.raises(ConfigError, match="needs a trained verifier"):
            mine_pairs(None, None, [], pool=pool, generate_fn=FakeGenerate(), scorer="verifier")
        with pytest.raises(ConfigError, match="only by --scorer verifier"):
            mine_pairs(None, None, [], pool=pool, generate_fn=FakeGenerate(), verifier=LengthVerifier())
        with pytest.raises(ConfigError, match="reads the gold"):
            mine_pairs(None, None, [], pool=pool, generate_fn=FakeGenerate(), scorer="verifier",
                       verifier=LengthVerifier(), chosen="gold")
        with pytest.raises(ConfigError, match="scorer must be"):
            mine_pairs(None, None, [], pool=pool, generate_fn=FakeGenerate(), scorer="judge")


@pytest.mark.parametrize("extra, words", [
    (["--scorer", "verifier"], "give its folder"),
    (["--verifier", "x"], "only by --scorer verifier"),
    (["--scorer", "verifier", "--verifier", "x", "--chosen", "gold"], "leave --chosen out"),
    (["--scorer", "verifier", "--verifier", "x", "--mode", "bird"], "--mode"),
])
def test_pairs_mine_cli_conflicts_are_one_line(tmp_path, capsys, extra, words):
    from sqlcoach.cli import main

    assert main(["pairs", "mine", "--model", "m", "--data", str(tmp_path), "--out", str(tmp_path / "p.jsonl"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and words in err and len(err.splitlines()) == 1, err
