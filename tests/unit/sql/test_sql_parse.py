from __future__ import annotations

import pytest
from sqlglot import exp

from sqlcoach.sql.parse import (
    normalize_sql,
    parse_sql,
    set_operation_parts,
    spider_struct,
    top_select,
)


def test_normalize_joins_split_operators_and_strips_semicolons():
    assert normalize_sql("  SELECT a\n FROM t WHERE b > = 1 AND c ! = 2 AND d <  = 3 ;; ") == (
        "SELECT a FROM t WHERE b >= 1 AND c != 2 AND d <= 3"
    )
    assert normalize_sql(normalize_sql("SELECT 1 ;")) == "SELECT 1"
    assert normalize_sql("") == ""


def test_normalize_leaves_quoted_text_alone():
    sql = "SELECT  a FROM t WHERE b = 'x  > = y'  AND c = \"p   q\" ;"
    assert normalize_sql(sql) == "SELECT a FROM t WHERE b = 'x  > = y' AND c = \"p   q\""
    assert normalize_sql("SELECT 'it''s  ok'") == "SELECT 'it''s  ok'"


@pytest.mark.parametrize(
    "junk",
    ["", "   ", ";", "SELECT FROM WHERE", "SELECT ((((", "'unterminated", "SELECT 1; SELECT 2", "\x00\xff", "(" * 3000],
)
def test_parse_never_raises_and_explains(junk):
    tree, err = parse_sql(junk)
    assert tree is None and isinstance(err, str) and err


def test_parse_caches_and_returns_one_statement():
    a, err = parse_sql("SELECT name FROM singer")
    b, _ = parse_sql("SELECT  name  FROM singer ;")
    assert err is None and a is b and isinstance(a, exp.Select)


def test_set_operation_parts_in_textual_order():
    tree, _ = parse_sql("SELECT a FROM t UNION SELECT b FROM u EXCEPT SELECT c FROM v")
    parts, ops = set_operation_parts(tree)
    assert ops == ["union", "except"]
    assert [p.sql() for p in parts] == ["SELECT a FROM t", "SELECT b FROM u", "SELECT c FROM v"]
    assert top_select(tree).sql() == "SELECT a FROM t"
    assert top_select(None) is None


def test_struct_shape_of_a_join_query():
    s = spider_struct(
        "SELECT T1.name ,  count(*) FROM singer AS T1 JOIN singer_in_concert AS T2 ON T1.singer_id = T2.singer_id "
        "WHERE T1.age > 20 AND T1.country NOT LIKE 'x%' GROUP BY T1.name ORDER BY count(*) DESC LIMIT 3"
    )
    assert s["select"] == (False, [("none", ("none", ("none", "__singer.name__", False), None)),
                                   ("count", ("none", ("none", "__all__", False), None))])
    assert s["from"]["table_units"] == [("table_unit", "__singer__"), ("table_unit", "__singer_in_concert__")]
    assert s["from"]["conds"][0][:3] == (False, "=", ("none", ("none", "__singer.singer_id__", False), None))
    assert [u if isinstance(u, str) else u[:2] for u in s["where"]] == [(False, ">"), "and", (True, "like")]
    assert s["groupBy"] == [("none", "__singer.name__", False)]
    assert s["orderBy"] == ("desc", [("none", ("count", "__all__", False), None)])
    assert s["limit"] == 3


def test_struct_double_quoted_strings_are_values_and_subqueries_nest():
    s = spider_struct('SELECT name FROM singer WHERE country = "France" AND age > (SELECT avg(age) FROM singer)')
    first, _, second = s["where"]
    assert first[3] == '"France"'
    assert isinstance(second[3], dict) and second[3]["select"][1][0][0] == "avg"


def test_struct_set_operations_are_right_nested_and_take_the_trailing_order():
    s = spider_struct("SELECT a FROM t UNION SELECT b FROM u INTERSECT SELECT c FROM v ORDER BY c LIMIT 1")
    assert s["orderBy"] == [] and s["limit"] is None
    second = s["union"]
    third = second["intersect"]
    assert second["union"] is None and third is not None
    assert third["orderBy"][0] == "asc" and third["limit"] == 1


def test_struct_resolves_columns_with_a_schema(concert_db):
    # unqualified columns go to the first FROM table that has them; aliases are statement-wide
    s = spider_struct("SELECT name ,  theme FROM singer AS a JOIN concert AS b ON a.singer_id = b.concert_id", concert_db)
    cols = [item[1][1][1] for item in s["select"][1]]
    assert cols == ["__singer.name__", "__concert.theme__"]
    assert spider_struct("SELECT name FROM singer JOIN concert")["select"][1][0][1][1][1] == "__name__"
    assert spider_struct("SELECT name FROM singer")["select"][1][0][1][1][1] == "__singer.name__"


def test_struct_order_direction_is_the_last_explicit_one():
    assert spider_struct("SELECT a FROM t ORDER BY a DESC, b")["orderBy"][0] == "desc"
    assert spider_struct("SELECT a FROM t ORDER BY a DESC, b ASC")["orderBy"][0] == "asc"
    assert spider_struct("SELECT a FROM t ORDER BY a")["orderBy"][0] == "asc"


@pytest.mark.parametrize("sql", ["INSERT INTO t VALUES (1)", "DROP TABLE t", "SELECT FROM", "(" * 3000 + "1"])
def test_struct_is_none_for_non_queries(sql):
    assert spider_struct(sql) is None


def test_comments_are_dropped_not_allowed_to_swallow_the_query():
    from sqlcoach.sql.parse import normalize_sql, parse_sql

    assert normalize_sql("-- note\nSELECT a, '-- kept' FROM t /* c */ WHERE b > = 1;") == (
        "SELECT a, '-- kept' FROM t WHERE b >= 1"
    )
    tree, err = parse_sql("-- note\nSELECT 1")
    assert tree is not None and err is None
