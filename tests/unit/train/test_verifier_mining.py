"""The verifier's training data: candidates mined by execution (a fake policy), labelled by the
one EX scorer, one row per distinct candidate, the result rendered into the input; the split by
question, the validation figures and the config rules."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import pytest

from sqlcoach.config import VerifierRunConfig, build_config
from sqlcoach.errors import ConfigError, DataError
from sqlcoach.execution.pool import ExecutorPool
from sqlcoach.metrics.stats import roc_auc
from sqlcoach.prompts.builder import PromptBuilder
from sqlcoach.train.verifier import evaluate_verifier, mine_verifier_rows, read_rows, split_by_question
from sqlcoach.types import Example

GOLD = "SELECT name FROM singer WHERE age > 30"
WRONG = "SELECT name FROM singer WHERE age < 30"
ERROR = "SELECT nme FROM singer"


@dataclass
class _Gen:
    texts: list
    prompt_tokens: int = 0
    generated_tokens: int = 0


def fake_generate(model, tokenizer, prompts, *, n, **kw):
    return _Gen([[GOLD, WRONG, GOLD, ERROR, "no sql at all"][:n] for _ in prompts])


class CharTokenizer:
    def encode(self, text, add_special_tokens=False):
        return list(text)


@pytest.fixture()
def db(tmp_path):
    path = tmp_path / "music" / "music.sqlite"
    path.parent.mkdir()
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE singer (id INTEGER PRIMARY KEY, name TEXT, age INTEGER)")
    con.executemany("INSERT INTO singer VALUES (?, ?, ?)", [(1, "Ann", 25), (2, "Bo", 35), (3, "Cy", 45)])
    con.commit()
    con.close()
    return str(path)


def test_mined_rows_are_labelled_by_execution_and_read_the_result(db):
    exs = [Example(id=f"q{i}", db_id="music", question=f"Who is over 30? ({i})", gold_sql=GOLD, db_path=db) for i in range(3)]
    exs.append(Example(id="bad", db_id="music", question="broken gold", gold_sql="SELECT x FROM missing", db_path=db))
    with ExecutorPool(0) as pool:
        rows, stats = mine_verifier_rows(None, None, exs, PromptBuilder(), verifier_tokenizer=CharTokenizer(),
                                         result_budget=200, k=5, temperature=0.8, pool=pool, generate_fn=fake_generate)
    assert stats["gold_errors"] == 1 and stats["questions"] == 3
    assert stats["by_kind"] == {"correct": 3, "exec_error": 3, "no_sql": 3, "wrong_result": 3}
    q0 = [r for r in rows if r["qid"] == "music/q0"]
    assert [(r["sql"], r["label"], r["count"], r["ran"]) for r in q0] == [
        (GOLD, 1, 2, True), (WRONG, 0, 1, True), (ERROR, 0, 1, False), ("", 0, 1, False)]
    assert q0[0]["text"].endswith("result:\ncolumns (1): name\nrows: 2\nBo\nCy")
    assert "singer(" in q0[0]["text"] and "question: Who is over 30? (0)" in q0[0]["text"]
    assert "error: exec_error: no such column: nme" in q0[2]["text"]


def test_split_keeps_questions_whole_and_evaluation_figures():
    rows = [{"qid": f"q{i // 2}", "label": i % 2, "ran": True, "count": 1 + (i % 2 == 0), "text": "t"} for i in range(20)]
    train, held = split_by_question(rows, 0.2, seed=0)
    assert {r["qid"] for r in train}.isdisjoint({r["qid"] for r in held}) and len(held) == 4
    scores = [1.0 if r["label"] else -1.0 for r in rows]
    ev = evaluate_verifier(scores, rows)
    assert ev["auc"] == 1.0 and ev["accuracy"] == 1.0 and ev["pick_correct"] == 1.0
    assert ev["any_correct"] == 1.0 and ev["most_common_correct"] == 0.0  # the wrong candidate was the more common
    assert evaluate_verifier([0.0] * 20, rows)["auc"] == 0.5


def test_roc_auc_against_the_pairwise_count():
    import random

    rng = random.Random(1)
    for _ in range(20):
        scores = [rng.choice([0.0, 0.5, 1.0, rng.random()]) for _ in range(15)]
        labels = [rng.randint(0, 1) for _ in range(15)]
        if len(set(labels)) < 2:
            continue
        pos = [s for s, y in zip(scores, labels) if y]
        neg = [s for s, y in zip(scores, labels) if not y]
        brute = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))
        assert roc_auc(scores, labels) == pytest.approx(brute)
    with pytest.raises(ValueError):
        roc_auc([1.0], [1])


def test_rows_file_errors(tmp_path):
    p = tmp_path / "rows.jsonl"
    p.write_text('{"qid": "a", "label": 1, "text": "x"}\n{"qid": "a", "label": 2, "text": "x"}\n')
    with pytest.raises(DataError, match="line 2|:2"):
        read_rows(p)
    with pytest.raises(DataError, match="not found"):
        read_rows(tmp_path / "none.jsonl")


def test_config_rules():
    base = dict(model="m", data_path="d")
    assert build_config(VerifierRunConfig, base).k == 8
    for bad, match in [({"holdout": 0}, "holdout"), ({"result_budget": 600}, "below max_length"),
                       ({"balance": "oversample"}, "balance"), ({"k": 4, "temperature": 0}, "temperature"),
                       ({"method": "qlora"}, "method"), ({"nonsense": 1}, "nonsense")]:
        with pytest.raises(ConfigError, match=match):
            build_config(VerifierRunConfig, {**base, **bad})
