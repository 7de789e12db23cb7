"""BIRD's database_description/*.csv (a fixture in BIRD's own layout, Latin-1 and BOM files
included) reaches the ddl and nl schema styles; compact stays as it was; the budget drops it first."""

from __future__ import annotations

from sqlcoach.data import load_examples
from sqlcoach.prompts.builder import PromptBuilder
from sqlcoach.schema.descriptions import read_descriptions
from sqlcoach.schema.introspect import introspect
from sqlcoach.schema.serialize import serialize


def test_descriptions_are_read_in_birds_format(data_dir):
    d = read_descriptions(data_dir / "bird" / "dev_databases" / "shop")
    assert d["item"]["price"] == ("price in euros, tax included", "0 means a free sample; café items are always > 2")
    assert d["item"]["item_id"] == ("the id of the item", "")
    assert "name" not in d["item"]  # a description that repeats the name says nothing
    assert d["sale"]["day"] == ("weekday of the sale", "Monday, Tuesday, ...")  # BOM file, table name case


def test_ddl_and_nl_show_them_compact_does_not(data_dir):
    ex = load_examples("bird", data_dir / "bird", "dev")[0]
    ddl = PromptBuilder("omnisql", "ddl", 1, value_retrieval=0).messages(ex)[0]["content"]
    assert "  price real, -- price in euros, tax included; values: 0 means a free sample; café items are always > 2; example: [" in ddl
    assert "  day text, -- weekday of the sale; values: Monday, Tuesday, ...;" in ddl
    nl = PromptBuilder("omnisql", "nl", 0, value_retrieval=0).messages(ex)[0]["content"]
    assert "Column meanings of item: item_id: the id of the item; price: price in euros, tax included (values: 0 means" in nl
    compact = PromptBuilder("omnisql", "compact", 0, value_retrieval=0).messages(ex)[0]["content"]
    assert "euros" not in compact
    # a database without the folder: the schema text is unchanged
    plain = introspect(data_dir / "spider" / "database" / "shop" / "shop.sqlite", sample_values=0)
    assert all(not c.description for t in plain.tables for c in t.columns)


def test_budget_drops_descriptions_first(data_dir):
    schema = introspect(data_dir / "bird" / "dev_databases" / "shop" / "shop.sqlite", sample_values=0)
    full = serialize(schema, "ddl")
    cut = serialize(schema, "ddl", budget_tokens=len(full.split()) // 2 + 30)
    assert "euros" in full and "euros" not in cut and "CREATE TABLE item" in cut
