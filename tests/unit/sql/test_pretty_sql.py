"""``sql.parse.pretty_sql``: a query laid out for reading; anything else as written, never an error."""

from __future__ import annotations

from sqlcoach.sql.parse import pretty_sql


def test_a_query_is_laid_out_one_clause_per_line():
    assert pretty_sql("select name, count(*) from singer where age > 30 group by name") == (
        "SELECT\n  name,\n  COUNT(*)\nFROM singer\nWHERE\n  age > 30\nGROUP BY\n  name")


def test_what_is_not_one_query_comes_back_as_written():
    for text in ("selec junk", "SELECT FROM WHERE", "DELETE FROM singer", "SELECT 1; SELECT 2", "", "1 + 1"):
        assert pretty_sql(text) == text


def test_hostile_text_does_not_raise():
    deep = "SELECT " + "(" * 3000 + "1" + ")" * 3000
    assert isinstance(pretty_sql(deep), str)
    assert isinstance(pretty_sql("SELECT '" + "\x00" * 10 + "'"), str)
