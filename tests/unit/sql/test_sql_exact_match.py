from __future__ import annotations

import pytest

from sqlcoach.sql.exact_match import (
    COMPONENTS,
    NORMALIZERS,
    drop_distinct,
    drop_values,
    em_components,
    exact_match,
    keywords,
    merge_foreign_keys,
    normalized_struct,
)
from sqlcoach.sql.parse import spider_struct

JOIN = "FROM singer AS T1 JOIN singer_in_concert AS T2 ON T1.singer_id = T2.singer_id"


def failing(pred: str, gold: str, db) -> set[str]:
    return {name for name, ok in em_components(pred, gold, db).items() if not ok}


@pytest.mark.parametrize(
    "pred,gold,expected",
    [
        ("SELECT max(age) FROM singer", "SELECT min(age) FROM singer", {"select"}),
        ("SELECT max(age) FROM singer", "SELECT max(name) FROM singer", {"select", "select(no AGG)"}),
        ("SELECT name FROM singer WHERE age >= 1", "SELECT name FROM singer WHERE age > 1", {"where"}),
        ("SELECT name FROM singer WHERE name > 1", "SELECT name FROM singer WHERE age > 1", {"where", "where(no OP)"}),
        (
            "SELECT name FROM singer GROUP BY country HAVING count(*) > 1",
            "SELECT name FROM singer GROUP BY country HAVING sum(age) > 1",
            {"group"},
        ),
        ("SELECT name FROM singer GROUP BY name", "SELECT name FROM singer GROUP BY country", {"group(no Having)", "group"}),
        ("SELECT name FROM singer ORDER BY age DESC", "SELECT name FROM singer ORDER BY age ASC", {"order", "keywords"}),
        (
            "SELECT name FROM singer WHERE age > 1 OR age < 2",
            "SELECT name FROM singer WHERE age > 1 AND age < 2",
            {"and/or", "keywords"},
        ),
        (
            "SELECT name FROM singer UNION SELECT name FROM stadium",
            "SELECT name FROM singer UNION SELECT name FROM concert",
            {"IUEN"},
        ),
        ("SELECT name FROM stadium", "SELECT name FROM singer", {"select", "select(no AGG)", "from"}),
        ("SELECT name FROM singer LIMIT 3", "SELECT name FROM singer", {"keywords"}),
    ],
)
def test_each_component_fails_alone(pred, gold, expected, concert_db):
    assert failing(pred, gold, concert_db) == expected
    assert not exact_match(pred, gold, concert_db)


def test_group_without_having_ignores_the_table_part(concert_db):
    # official quirk: "group(no Having)" compares column names only; "group" compares full ids
    pred = "SELECT count(*) FROM stadium AS T1 JOIN concert AS T2 ON T1.stadium_id = T2.stadium_id GROUP BY T1.name"
    gold = "SELECT count(*) FROM stadium AS T1 JOIN concert AS T2 ON T1.stadium_id = T2.stadium_id GROUP BY T2.theme"
    assert "group(no Having)" in failing(pred, gold, concert_db)
    pred2 = "SELECT count(*) FROM stadium AS T1 JOIN singer AS T2 GROUP BY T1.name"
    gold2 = "SELECT count(*) FROM stadium AS T1 JOIN singer AS T2 GROUP BY T2.name"
    assert failing(pred2, gold2, concert_db) == {"group"}


def test_foreign_key_merge_needs_the_schema_and_both_tables(concert_db):
    pred = f"SELECT T2.singer_id {JOIN}"
    gold = f"SELECT T1.singer_id {JOIN}"
    assert exact_match(pred, gold, concert_db)
    assert not exact_match(pred, gold, None)  # no schema: no foreign keys to merge
    # the other side's table is not in FROM: singer_in_concert.singer_id is not merged with singer's
    assert not exact_match("SELECT singer_id FROM singer_in_concert", "SELECT singer_id FROM singer", concert_db)


def test_normalizers_are_a_replaceable_pipeline(concert_db):
    assert NORMALIZERS == (drop_values, merge_foreign_keys, drop_distinct)
    pred, gold = f"SELECT T2.singer_id {JOIN}", f"SELECT T1.singer_id {JOIN}"
    without_fk = tuple(f for f in NORMALIZERS if f is not merge_foreign_keys)
    assert not exact_match(pred, gold, concert_db, normalizers=without_fk)
    keep_distinct = (drop_values, merge_foreign_keys)
    pred, gold = "SELECT count(DISTINCT name) FROM singer", "SELECT count(name) FROM singer"
    assert exact_match(pred, gold, concert_db)
    assert not exact_match(pred, gold, concert_db, normalizers=keep_distinct)
    # SELECT DISTINCT itself is never compared by any component (the official compares items only)
    assert exact_match("SELECT DISTINCT name FROM singer", "SELECT name FROM singer", concert_db, normalizers=keep_distinct)
    values_kept = (merge_foreign_keys, drop_distinct)
    assert not exact_match(
        "SELECT name FROM singer WHERE age > 3", "SELECT name FROM singer WHERE age > 4", concert_db, normalizers=values_kept
    )


def test_components_are_a_replaceable_pipeline(concert_db):
    names = [name for name, _ in COMPONENTS]
    assert names == ["select", "select(no AGG)", "where", "where(no OP)", "group(no Having)", "group", "order",
                     "and/or", "IUEN", "keywords"]
    no_order = tuple((n, f) for n, f in COMPONENTS if n not in ("order", "keywords"))
    pred, gold = "SELECT name FROM singer ORDER BY age DESC", "SELECT name FROM singer ORDER BY age"
    assert not exact_match(pred, gold, concert_db)
    assert exact_match(pred, gold, concert_db, components=no_order)


def test_distinct_inside_a_where_subquery_still_counts(concert_db):
    # the official rebuild does not reach subqueries nested in conditions
    pred = "SELECT name FROM singer WHERE singer_id IN (SELECT DISTINCT singer_id FROM singer_in_concert)"
    gold = "SELECT name FROM singer WHERE singer_id IN (SELECT singer_id FROM singer_in_concert)"
    assert failing(pred, gold, concert_db) == {"where"}


def test_limit_value_is_ignored_even_inside_subqueries(concert_db):
    pred = "SELECT name FROM singer WHERE age = (SELECT age FROM singer ORDER BY age LIMIT 2)"
    gold = "SELECT name FROM singer WHERE age = (SELECT age FROM singer ORDER BY age LIMIT 1)"
    assert exact_match(pred, gold, concert_db)


def test_keywords_of_a_query():
    s = spider_struct(
        "SELECT name FROM singer WHERE country NOT IN (SELECT country FROM stadium) OR name LIKE 'a%' "
        "GROUP BY name HAVING count(*) > 1 ORDER BY name DESC LIMIT 1 EXCEPT SELECT name FROM singer"
    )
    assert keywords(s) == {"where", "group", "having", "order", "desc", "limit", "except", "or", "not", "in", "like"}


@pytest.mark.parametrize(
    "pred",
    ["", "   ", "SELECT", "DROP TABLE singer", "SELECT name FROM singer; DELETE FROM singer", "(" * 5000,
     "SELECT * FROM singer WHERE " + " OR ".join(["a = 1"] * 2000), "\x00", "SELECT strftime('%Y', x) FROM t"],
)
def test_hostile_predictions_never_raise(pred, concert_db):
    assert exact_match(pred, "SELECT name FROM singer", concert_db) is False
    comps = em_components(pred, "SELECT name FROM singer", concert_db)
    assert set(comps) >= {"select", "from", "parsed"}


def test_unparsable_gold_gives_false_everywhere(concert_db):
    assert exact_match("SELECT name FROM singer", "SELECT FROM", concert_db) is False
    assert not any(em_components("SELECT name FROM singer", "SELECT FROM", concert_db).values())


def test_unparsable_prediction_is_compared_with_an_empty_query(concert_db):
    comps = em_components("SELECT FROM", "SELECT name FROM singer", concert_db)
    assert comps["parsed"] is False and comps["select"] is False and comps["where"] is True


def test_normalized_struct_is_cached_and_not_mutated(concert_db):
    a = normalized_struct("SELECT name FROM singer WHERE age > 3", concert_db)
    b = normalized_struct("SELECT  name FROM singer WHERE age > 3 ;", concert_db)
    assert a is b and a["where"][0][3] is None
    raw = spider_struct("SELECT name FROM singer WHERE age > 3", concert_db)
    assert raw["where"][0][3] == 3.0  # the normalizers built new structures
