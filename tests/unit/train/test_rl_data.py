"""RL prompt rows, gold curation and the pass-rate filter, on a database generated in the test."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import pytest

from sqlcoach.errors import DataError, ModelError
from sqlcoach.execution.pool import ExecutorPool
from sqlcoach.prompts.builder import PromptBuilder
from sqlcoach.prompts.settings import PromptSettings
from sqlcoach.train.rl_data import RL_COLUMNS, build_rl_rows, curate_gold, pass_rate_filter
from sqlcoach.types import Example


@pytest.fixture()
def db(tmp_path):
    path = tmp_path / "shop" / "shop.sqlite"
    path.parent.mkdir()
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE item (item_id INTEGER PRIMARY KEY, name TEXT, price REAL)")
    con.executemany("INSERT INTO item VALUES (?, ?, ?)", [(1, "pen", 2.0), (2, "ink", 5.0), (3, "pad", 3.5)])
    con.execute("CREATE TABLE empty_t (x INTEGER)")
    con.commit()
    con.close()
    return str(path)


def _ex(i, sql, db, **kw):
    return Example(id=f"q{i}", db_id="shop", question=f"question {i}?", gold_sql=sql, db_path=db, **kw)


def test_rows_have_the_columns_and_the_sft_prompt(db):
    exs = [_ex(0, "SELECT count(*) FROM item", db, hardness="easy"), _ex(1, "SELECT name FROM item", db)]
    rows = build_rl_rows(exs, prompt=PromptSettings(template="sql_terminal", schema_sample_values=0))
    assert len(rows) == 2
    for row in rows:
        assert set(RL_COLUMNS) | {"prompt"} <= set(row)
        assert row["format_template"] == "sql_terminal"
        assert row["db_path"] == db
    assert rows[0]["hardness"] == "easy" and rows[1]["hardness"] == ""
    assert rows[1]["gold_sql"] == "SELECT name FROM item" and rows[1]["question"] == "question 1?"
    # Exactly the SFT recipe's prompt (one definition of the prompt).
    sft_rows, _ = PromptBuilder("sql_terminal", "compact", 0).sft_rows(exs)
    assert [r["prompt"] for r in rows] == [r["prompt"] for r in sft_rows]
    assert rows[0]["prompt"][-1]["role"] == "user" and "item" in rows[0]["prompt"][-1]["content"]


def test_anonymized_rows_carry_the_name_map_and_the_filter_decodes_with_it(db):
    import json

    from sqlcoach.generate.hf import Generations

    exs = [Example(id="a", db_id="shop", question="What is the price of the ink?",
                   gold_sql="SELECT price FROM item WHERE name = 'ink'", db_path=db)]
    [row] = build_rl_rows(exs, prompt=PromptSettings(template="anonymized", schema_sample_values=0))
    names = json.loads(row["sql_names"])
    assert names["t1"] == "item" and names["v1"] == "ink"
    assert "Question: What is the c2 of the v1?" in row["prompt"][-1]["content"]
    assert build_rl_rows(exs, prompt=PromptSettings(template="sql_terminal", schema_sample_values=0))[0]["sql_names"] == ""

    def gen(model, tok, texts, *, n, **kw):  # half right once decoded, half wrong
        return Generations([["SELECT c2 FROM t1 WHERE c1 = 'v1'", "SELECT c1 FROM t1"] for _ in texts], 0, 0, 0.0)

    kept, stats = pass_rate_filter([row], model=None, tokenizer=None, k=2, generate=gen)
    assert stats["pass_rates"] == [0.5] and kept == [row]


def test_rows_skip_unusable_examples_and_keep_order(db, tmp_path):
    bad_db = tmp_path / "broken.sqlite"
    bad_db.write_bytes(b"this is not a database" * 100)
    exs = [
        _ex(0, "SELECT 1", db),
        _ex(1, None, db),  # no gold
        _ex(2, "SELECT 1", None),  # no database
        _ex(3, "SELECT 1", str(bad_db)),  # unreadable database
        _ex(4, "SELECT 2", db),
    ]
    seen = []
    rows = build_rl_rows(exs, prompt=PromptSettings(template="omnisql", schema_sample_values=0), log=seen.append)
    assert [r["id"] for r in rows] == ["q0", "q4"]
    assert any("q1" in s for s in seen) and any("q2" in s for s in seen) and any("q3" in s for s in seen)
    with pytest.raises(DataError):
        build_rl_rows(exs[1:4], prompt=PromptSettings(template="omnisql", schema_sample_values=0))


def test_prompt_tokens_with_a_tokenizer(db):
    class Tok:
        chat_template = None

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": text.split()}

    rows = build_rl_rows([_ex(0, "SELECT 1", db)], prompt=PromptSettings(template="sql_terminal", schema_sample_values=0), tokenizer=Tok())
    assert rows[0]["prompt_tokens"] == len(rows[0]["prompt"][-1]["content"].split())


def test_curate_gold_drops_failing_and_empty_golds(db, tmp_path):
    exs = [
        _ex(0, "SELECT count(*) FROM item", db),
        _ex(1, "SELECT nope FROM item", db),  # fails
        _ex(2, "SELECT x FROM empty_t", db),  # no rows
        _ex(3, "SELECT max(x) FROM empty_t", db),  # one row of NULL
        _ex(4, "SELECT name FROM item WHERE price > 3", db),
    ]
    rows = build_rl_rows(exs, prompt=PromptSettings(template="sql_terminal", schema_sample_values=0))
    rows.append(dict(rows[0], id="q5", db_path=str(tmp_path / "emptydir")))
    (tmp_path / "emptydir").mkdir()
    with ExecutorPool(workers=0) as pool:
        kept, report = curate_gold(rows, pool=pool)
        assert [r["id"] for r in kept] == ["q0", "q4"]
        assert report["in"] == 6 and report["kept"] == 2
        assert report["dropped"] == {"gold_error": 1, "gold_empty": 2, "no_database": 1}
        assert {e["id"]: e["reason"] for e in report["examples"]} == {
            "q1": "gold_error", "q2": "gold_empty", "q3": "gold_empty", "q5": "no_database"}
        # Golds are cached in the pool: a second pass runs nothing new.
        misses = pool.cache_info()["misses"]
        curate_gold(rows, pool=pool)
        assert pool.cache_info()["misses"] == misses


@dataclass
class _Gens:
    texts: list
    generated_tokens: int = 0


def _fake_generate(answers):
    """A generate function that returns fixed completions per prompt and records its arguments."""
    calls = []

    def generate(model, tokenizer, prompts, *, n, temperature, max_new_tokens, batch_size, seed):
        calls.append(dict(n=n, temperature=temperature, seed=seed, prompts=list(prompts)))
        return _Gens([list(answers[i]) for i in range(len(prompts))], generated_tokens=7)

    return generate, calls


def test_pass_rate_filter_drops_always_and_never_solved(db):
    exs = [_ex(i, "SELECT count(*) FROM item", db) for i in range(4)]
    rows = build_rl_rows(exs, prompt=PromptSettings(template="sql_terminal", schema_sample_values=0))
    right, wrong, broken = "SELECT count(*) FROM item", "SELECT 7", "SELEC garbage"
    answers = [
        [right] * 4,  # always solved
        [wrong, broken, wrong, wrong],  # never solved
        [right, wrong, right, broken],  # 2/4: signal
        [wrong, wrong, wrong, right],  # 1/4: signal
    ]
    generate, calls = _fake_generate(answers)
    kept, stats = pass_rate_filter(rows, model=None, tokenizer=None, k=4, generate=generate, seed=3, temperature=0.9)
    assert [r["id"] for r in kept] == ["q2", "q3"]
    assert stats["dropped_always"] == 1 and stats["dropped_never"] == 1 and stats["kept"] == 2
    assert stats["pass_rates"] == [1.0, 0.0, 0.5, 0.25]
    assert stats["pass_rate_histogram"] == {"0/4": 1, "1/4": 1, "2/4": 1, "3/4": 0, "4/4": 1}
    assert calls[0]["n"] == 4 and calls[0]["seed"] == 3 and calls[0]["temperature"] == 0.9
    # The text handed to generation is the chat-formatted prompt (plain fallback without a tokenizer).
    assert calls[0]["prompts"][0].startswith(rows[0]["prompt"][0]["content"][:20])

    generate, _ = _fake_generate(answers)
    kept, stats = pass_rate_filter(rows, model=None, tokenizer=None, k=4, generate=generate, drop_never=False)
    assert [r["id"] for r in kept] == ["q1", "q2", "q3"] and stats["dropped_never"] == 0
    generate, _ = _fake_generate(answers)
    kept, _ = pass_rate_filter(rows, model=None, tokenizer=None, k=4, generate=generate,
                               drop_always=False, drop_never=False)
    assert len(kept) == 4


def test_pass_rate_filter_counts_unscorable_and_checks_shapes(db):
    rows = build_rl_rows([_ex(0, "SELECT nope FROM item", db), _ex(1, "SELECT 1", db)],
                         prompt=PromptSettings(template="sql_terminal", schema_sample_values=0))
    generate, _ = _fake_generate([["SELECT 1", "SELECT 2"], ["SELECT 1", "SELECT 2"]])
    kept, stats = pass_rate_filter(rows, model=None, tokenizer=None, k=2, generate=generate)
    assert [r["id"] for r in kept] == ["q1"] and stats["unscorable"] == 1 and stats["pass_rates"][0] is None
    short, _ = _fake_generate([["SELECT 1"], ["SELECT 1"]])
    with pytest.raises(ModelError, match="expected 2"):
        pass_rate_filter(rows, model=None, tokenizer=None, k=2, generate=short)
    with pytest.raises(ValueError):
        pass_rate_filter(rows, model=None, tokenizer=None, k=0, generate=generate)
