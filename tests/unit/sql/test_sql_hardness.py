from __future__ import annotations

import pytest

from sqlcoach.sql.hardness import component_counts, hardness, level


def test_counts_of_an_extra_query():
    sql = (
        "SELECT T2.name FROM concert AS T1 JOIN stadium AS T2 ON T1.stadium_id = T2.stadium_id "
        "WHERE T1.year > 2013 OR T2.name LIKE 'a%' GROUP BY T1.stadium_id ORDER BY count(*) DESC LIMIT 1"
    )
    # where + group + order + limit + 1 join + 1 or + 1 like
    assert component_counts(sql) == {"component1": 7, "component2": 0, "others": 1, "aggregates": 1}
    assert hardness(sql) == "extra"


def test_nesting_counts_condition_subqueries_and_set_operations_not_from_subqueries():
    assert component_counts("SELECT a FROM (SELECT a FROM t)")["component2"] == 0
    assert component_counts("SELECT a FROM (SELECT a FROM t)")["component1"] == 0
    assert component_counts("SELECT a FROM t WHERE a IN (SELECT a FROM u) AND b > (SELECT 1 FROM v)")["component2"] == 2
    assert component_counts("SELECT a FROM t UNION SELECT a FROM u EXCEPT SELECT a FROM v")["component2"] == 1
    assert component_counts("SELECT a FROM t HAVING count(*) > (SELECT 1 FROM v)")["component2"] == 1


def test_join_on_conditions_count_or_and_like_but_not_where():
    counts = component_counts("SELECT a FROM t JOIN u ON t.x = u.x OR t.y LIKE u.y")
    assert counts["component1"] == 3  # join + or + like; no WHERE
    assert counts["others"] == 0


@pytest.mark.parametrize(
    "c1,c2,others,expected",
    [(0, 0, 0, "easy"), (1, 0, 0, "easy"), (1, 0, 2, "medium"), (2, 0, 1, "medium"), (2, 0, 2, "extra"),
     (2, 0, 3, "hard"), (3, 0, 2, "hard"), (1, 1, 0, "hard"), (3, 0, 3, "extra"), (4, 0, 0, "extra"),
     (0, 2, 0, "extra"), (2, 1, 0, "extra")],
)
def test_decision_table(c1, c2, others, expected):
    assert level(c1, c2, others) == expected


@pytest.mark.parametrize("sql", ["", "SELECT FROM", "INSERT INTO t VALUES (1)", "(" * 4000])
def test_unparsable_has_no_hardness(sql):
    assert hardness(sql) is None and component_counts(sql) is None
