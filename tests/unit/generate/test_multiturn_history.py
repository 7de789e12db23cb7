"""Multi-turn (SParC format): the default history never shows an earlier turn's gold SQL, the
``predicted`` history shows the model's own earlier SQL, ``gold`` is labelled an oracle, and the
official multi-turn gold file scores sqlcoach's own ``predict`` output (question and interaction match)."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

import sqlcoach.generate.predict as P
from sqlcoach.data import load_examples
from sqlcoach.generate.hf import Generations
from sqlcoach.metrics import evaluate_files
from sqlcoach.prompts.builder import PromptBuilder
from sqlcoach.prompts.settings import PromptSettings

T1 = "SELECT name FROM singer WHERE age > 30"
# the second turn's answer IS the first turn's gold: a prompt that leaked it would let a model copy it
INTERACTIONS = [
    {"database_id": "concert", "interaction": [
        {"utterance": "Which singers are older than 30?", "query": T1},
        {"utterance": "Just their names, please.", "query": T1},
        {"utterance": "How many are there?", "query": "SELECT count(*) FROM singer WHERE age > 30"},
    ]},
    {"database_id": "concert", "interaction": [
        {"utterance": "List all singer ages.", "query": "SELECT age FROM singer"},
        {"utterance": "Only those from France.", "query": "SELECT age FROM singer WHERE country = 'France'"},
    ]},
]


@pytest.fixture()
def sparc(tmp_path: Path) -> Path:
    root = tmp_path / "sparc"
    db = root / "database" / "concert"
    db.mkdir(parents=True)
    con = sqlite3.connect(db / "concert.sqlite")
    con.execute("CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, age INTEGER, country TEXT)")
    con.executemany("INSERT INTO singer VALUES (?, ?, ?, ?)",
                    [(1, "Ana", 34, "France"), (2, "Bo", 25, "Spain"), (3, "Cy", 41, "France")])
    con.commit()
    con.close()
    (root / "dev.json").write_text(json.dumps(INTERACTIONS, indent=1))
    # the official multi-turn gold file: one "SQL<TAB>db_id" per turn, a blank line between interactions
    (root / "dev_gold.txt").write_text(
        "\n\n".join("\n".join(f"{t['query']}\tconcert" for t in it["interaction"]) for it in INTERACTIONS) + "\n")
    return root


class AnswerFromPrompt:
    """Answers each turn with its gold SQL, found by the current question in the prompt; records the prompts."""

    def __init__(self, wrong: set[str] = frozenset()):
        self.prompts: list[str] = []
        self.wrong = wrong
        self.gold = {t["utterance"]: t["query"] for it in INTERACTIONS for t in it["interaction"]}

    def __call__(self, model, tokenizer, prompts, *, n, on_batch=None, **kw):
        self.prompts.extend(prompts)
        texts = []
        for p in prompts:
            current = p.split("Current question:\n")[-1] if "Current question:" in p else p
            q = next(u for u in self.gold if u in current)
            texts.append(["SELECT 'wrong'" if q in self.wrong else self.gold[q]])
        return Generations(texts, prompt_tokens=len(prompts), generated_tokens=len(prompts), seconds=0.0)


def _earlier_gold(ex) -> list[str]:
    return [t.sql for t in ex.turns if t.sql]


def test_default_history_shows_no_earlier_gold_sql(sparc):
    exs = load_examples("sparc", sparc, "dev")
    assert exs[1].gold_sql == exs[0].gold_sql == T1 and exs[1].turns[0].sql == T1
    for template in ("sql_terminal", "omnisql", "minimal", "anonymized"):
        builder = PromptBuilder(template, "compact", 3)
        assert builder.turn_history == "questions"  # the default
        for ex in exs:
            texts = [m["content"] for m in builder.messages(ex)]
            texts += [m["content"] for m in builder.sft_row(ex)["prompt"]]
            texts.append(builder.prediction_text(ex, None))
            for text in texts:
                for sql in _earlier_gold(ex):
                    assert sql not in text, (template, ex.id)
                assert "SQL:" not in text.split("Question")[0] or template == "minimal"
            if ex.turns:  # the earlier questions are there
                assert ex.turns[0].question.split()[0] in texts[-1] or template == "anonymized"


def test_predict_default_history_and_official_layout_scored_by_evaluate(sparc, tmp_path):
    exs = load_examples("sparc", sparc, "dev")
    gen = AnswerFromPrompt(wrong={"Only those from France."})
    out = tmp_path / "pred.sql"
    s = P.predict(None, None, exs, out, generate_fn=gen, progress=False, prompt=PromptSettings(template="sql_terminal"))
    for prompt, ex in zip(gen.prompts, exs):
        for sql in _earlier_gold(ex):
            assert sql not in prompt
    assert s.multi_turn and s.turn_history == "questions" and "ORACLE" not in s.line()
    # the official layout: a blank line between the two interactions
    assert out.read_text().split("\n") == [T1, T1, "SELECT count(*) FROM singer WHERE age > 30", "",
                                           "SELECT age FROM singer", "SELECT 'wrong'", ""]
    rep = evaluate_files(sparc / "dev_gold.txt", out, db_dir=sparc / "database", etype="all", workers=0)
    assert rep.summary["all"]["count"] == 5 and rep.summary["all"]["ex"] == pytest.approx(4 / 5)  # question match
    inter = rep.summary["interaction"]
    assert inter["count"] == 2 and inter["ex"] == pytest.approx(1 / 2)  # interaction match
    assert "interactions: 2  interaction EX 0.5000" in rep.table()


def test_predicted_history_shows_the_models_own_sql_turn_by_turn(sparc, tmp_path):
    exs = load_examples("sparc", sparc, "dev")
    gen = AnswerFromPrompt(wrong={"Which singers are older than 30?"})
    out = tmp_path / "pred.sql"
    P.predict(None, None, exs, out, generate_fn=gen, progress=False,
              prompt=PromptSettings(template="sql_terminal", turn_history="predicted"), chunk_size=16)
    by_q = {re.search(r"(?:Current question:\n)?([^\n]+)\n\n###Response:", p).group(1): p for p in gen.prompts}
    second = by_q["Just their names, please."]
    assert "SQL: SELECT 'wrong'" in second and T1 not in second  # its own (wrong) first answer, not the gold
    third = by_q["How many are there?"]
    assert "SQL: SELECT 'wrong'" in third and f"SQL: {T1}" in third  # turn 2 was predicted right
    recs = [json.loads(x) for x in out.with_suffix(".jsonl").read_text().splitlines()]
    assert next(r for r in recs if r["index"] == 1)["history_sql"] == ["SELECT 'wrong'"]


def test_gold_history_is_an_oracle_and_labelled(sparc, tmp_path):
    exs = load_examples("sparc", sparc, "dev")
    gen = AnswerFromPrompt()
    out = tmp_path / "pred.sql"
    s = P.predict(None, None, exs, out, generate_fn=gen, progress=False,
                  prompt=PromptSettings(template="sql_terminal", turn_history="gold"))
    assert any(f"SQL: {T1}" in p for p in gen.prompts)
    assert "ORACLE" in s.line()
    rep = evaluate_files(sparc / "dev_gold.txt", out, db_dir=sparc / "database", etype="exec", workers=0)
    assert rep.summary["oracle_history"] is True and "ORACLE" in rep.table()
    assert any("history=gold" in w for w in rep.warnings)
