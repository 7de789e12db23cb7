"""Value retrieval and the token budget in every prompt the builder makes; an old recipe keeps its
old prompt; which values are indexed does not depend on storage order."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from sqlcoach.prompts.builder import PromptBuilder
from sqlcoach.prompts.recipe import DEFAULTS, RECIPE_FILE, prompt_settings, read_recipe, resolve_prompt
from sqlcoach.schema.serialize import approx_tokens
from sqlcoach.schema.values import build_index, retrieve_values
from sqlcoach.types import Example


@pytest.fixture()
def db(tmp_path: Path) -> str:
    path = tmp_path / "shop" / "shop.sqlite"
    path.parent.mkdir()
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE city (city_id INTEGER PRIMARY KEY, name TEXT, country TEXT)")
    con.execute("CREATE TABLE store (store_id INTEGER PRIMARY KEY, city_id INTEGER REFERENCES city(city_id), label TEXT)")
    for k in range(12):
        con.execute(f"CREATE TABLE extra_{k} (id INTEGER PRIMARY KEY, note TEXT, other TEXT, more TEXT)")
    con.executemany("INSERT INTO city VALUES (?, ?, ?)", [(1, "Berlin", "Germany"), (2, "Lyon", "France")])
    con.executemany("INSERT INTO store VALUES (?, ?, ?)", [(1, 1, "Corner shop"), (2, 2, "Big market")])
    con.commit()
    con.close()
    return str(path)


def _ex(db: str) -> Example:
    return Example(id="q", db_id="shop", question="How many stores are in Berlin?",
                   gold_sql="SELECT count(*) FROM store JOIN city USING (city_id) WHERE name = 'Berlin'", db_path=db)


def test_values_reach_sft_rl_and_prediction_prompts(db):
    b = PromptBuilder("sql_terminal", "compact", 0)  # defaults: value retrieval on
    assert b.value_retrieval == DEFAULTS["value_retrieval"] == 5
    ex = _ex(db)
    texts = [b.sft_row(ex)["prompt"][-1]["content"], b.rl_row(ex)["prompt"][-1]["content"],
             b.messages(ex, lenient=True)[-1]["content"], b.prediction_text(ex, None)]
    for t in texts:
        assert "values: city.name='Berlin'" in t
    off = PromptBuilder("sql_terminal", "compact", 0, value_retrieval=0)
    assert "values:" not in off.prediction_text(ex, None)
    # ddl and nl styles carry them too
    assert "-- matched values: city.name = 'Berlin'" in PromptBuilder("omnisql", "ddl", 0).messages(ex)[0]["content"]
    assert "Relevant values: city.name = 'Berlin'" in PromptBuilder("omnisql", "nl", 0).messages(ex)[0]["content"]


def test_anonymized_template_says_which_column_holds_a_mentioned_value(db):
    ex = _ex(db)
    on = PromptBuilder("anonymized", "compact", 0).messages(ex)[0]["content"]
    off = PromptBuilder("anonymized", "compact", 0, value_retrieval=0).messages(ex)[0]["content"]
    assert "values: t1.c1=v1" in on and "values:" not in off
    assert "Berlin" not in on  # still placeholders only


def test_token_budget_applies_to_every_prompt(db):
    ex = _ex(db)
    full = PromptBuilder("minimal", "compact", 0, value_retrieval=0)
    small = PromptBuilder("minimal", "compact", 0, value_retrieval=0, token_budget=40)
    full_schema = full.example_schema_text(ex)[0]
    small_schema = small.example_schema_text(ex)[0]
    assert approx_tokens(full_schema) > 40 >= approx_tokens(small_schema)
    assert "store(" in small_schema and "city(" in small_schema  # the mentioned tables stay
    assert small_schema in small.sft_row(ex)["prompt"][0]["content"]
    assert small_schema in small.prediction_text(ex, None)


def test_an_old_recipe_reproduces_its_old_prompt(tmp_path, db):
    model = tmp_path / "old-model"
    model.mkdir()
    # what sqlcoach wrote before value retrieval entered the prompt builder (version 1)
    (model / RECIPE_FILE).write_text(json.dumps({
        "version": 1, "template": "sql_terminal", "schema_style": "compact", "schema_sample_values": 3,
        "max_length": 512, "max_new_tokens": None, "value_retrieval": None, "token_budget": None,
        "source": "sft", "history": [], "system_prompt": None, "anonymize": False}))
    rec = read_recipe(model)
    assert (rec.value_retrieval, rec.token_budget, rec.turn_history) == (0, 0, "questions")
    ex = _ex(db)
    old = PromptBuilder("sql_terminal", "compact", 3, value_retrieval=0, token_budget=0)
    assert rec.builder().prediction_text(ex, None) == old.prediction_text(ex, None)
    assert "values:" not in rec.builder().prediction_text(ex, None)
    # a recipe without the keys at all reads the same; a folder without a recipe gets today's defaults
    (model / RECIPE_FILE).write_text(json.dumps({"template": "sql_terminal", "schema_style": "compact", "schema_sample_values": 3}))
    assert read_recipe(model).value_retrieval == 0
    fresh = tmp_path / "no-recipe"
    fresh.mkdir()
    assert resolve_prompt(fresh, log=None).value_retrieval == 5
    # an explicit setting wins over the recorded one
    assert resolve_prompt(model, value_retrieval=3, log=None).value_retrieval == 3
    assert prompt_settings(rec)["value_retrieval"] == 0


def test_value_index_does_not_depend_on_storage_order(tmp_path):
    values = [f"name {i:03d}" for i in range(40)] + ["popular"] * 5
    files = []
    for order in ("forward", "backward"):
        path = tmp_path / f"{order}.sqlite"
        con = sqlite3.connect(path)
        con.execute("CREATE TABLE t (v TEXT)")
        con.executemany("INSERT INTO t VALUES (?)", [(v,) for v in (values if order == "forward" else values[::-1])])
        con.commit()
        con.close()
        files.append(path)
    a = build_index(files[0], max_distinct=10).values
    b = build_index(files[1], max_distinct=10).values
    assert a == b and len(a) == 10
    assert a[0] == ("t", "v", "popular")  # the most frequent first, then in value order
    assert [v for _t, _c, v in a[1:]] == [f"name {i:03d}" for i in range(9)]
    assert retrieve_values(files[0], "show popular") == retrieve_values(files[1], "show popular")
