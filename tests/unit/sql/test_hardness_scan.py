"""The token scan of hardness counts (sql.hardness_scan) gives the parser's counts or declines."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
from sql_helpers import fixture_lines

from sqlcoach.sql.hardness import component_counts
from sqlcoach.sql.hardness_scan import _SQLGLOT_RESERVED, scan_counts

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"

# Read by the scan; each checked against the parser.
PLAIN = [
    "SELECT count(*) FROM singer",
    "SELECT avg(age) ,  min(age) ,  max(age) FROM singer WHERE country  =  'France'",
    "SELECT song_name FROM singer WHERE age  >  (SELECT avg(age) FROM singer)",
    "SELECT T2.name ,  T2.capacity FROM concert AS T1 JOIN stadium AS T2 ON T1.stadium_id  =  T2.stadium_id "
    "WHERE T1.year  >=  2014 GROUP BY T2.stadium_id ORDER BY count(*) DESC LIMIT 1",
    "SELECT name FROM t WHERE a NOT IN (SELECT b FROM u) AND c LIKE '%x%' OR d IS NOT NULL",
    "SELECT name FROM t WHERE NOT a = 1 AND b BETWEEN 1 AND (SELECT max(b) FROM u)",
    "SELECT name FROM t WHERE (a = 1 OR b = 2) AND c != 3",
    "SELECT a FROM t WHERE NOT EXISTS (SELECT b FROM u WHERE u.x = t.x)",
    "SELECT a FROM t GROUP BY a, b HAVING count(*) > 1 AND NOT sum(x) < 3",
    "SELECT a FROM t ORDER BY max(a) - min(a) DESC, b",
    "SELECT max(a) - min(a) FROM t",
    "SELECT count(DISTINCT a) cnt FROM t AS x JOIN u ON x.a = u.a JOIN v ON u.b = v.b",
    "SELECT a FROM t UNION SELECT b FROM u ORDER BY a LIMIT 3",
    "SELECT a FROM t INTERSECT SELECT b FROM u EXCEPT SELECT c FROM v",
    "SELECT a FROM (SELECT a FROM t) AS s, u WHERE s.a = u.a",
    'SELECT a FROM t WHERE name = "Spider\'s double quotes"',
    "select T1.a from t as T1 where T1.b in (1, 2, 3);",
]

# Outside the plain subset: the scan must decline (the parser decides).
DECLINED = [
    "SELECT a FROM t -- comment",
    "SELECT CASE WHEN a > 1 THEN 1 ELSE 0 END FROM t",
    "SELECT CAST(a AS INT) FROM t",
    "SELECT a FROM t LEFT JOIN u ON t.x = u.x",
    "SELECT a FROM t WHERE a = -1",
    "SELECT a || b FROM t",
    "SELECT a % 2 FROM t",
    "SELECT a FROM t WHERE NOT (a = 1 OR b = 2)",
    "SELECT a FROM t WHERE a = b = c",
    "SELECT a FROM t LIMIT 1 UNION SELECT b FROM u",
    "SELECT 1",
    "INSERT INTO t VALUES (1)",
    "SELECT a FROM t; SELECT b FROM u",
    "SELECT a FROM players AS JOIN rankings AS T2 ON T1.x = T2.x",  # AS without an alias
    "SELECT count(a) T1.name FROM t",  # a dotted name is no alias
    "SELECT MIN ( ) FROM t",
    "SELECT a FROM V. AS t4",
    "SELECT a FROM t ORDER BY for DESC",
    "SELECT a FROM t WHERE NULL IS NOT side",
    "SELECT a FROM phone ON x LIKE 'Full'",
    "SELECT a FROM t JOIN u , v ON t.x = v.x",
    "",
    "SELECT a FROM t WHERE (a = 1",
    "SELECT a FROM t WHERE id NOT OR (SELECT id FROM u)",
]


def _parsed(sql):
    c = component_counts(sql)
    return None if c is None else {k: c[k] for k in ("component1", "component2", "others", "aggregates")}


@pytest.mark.parametrize("sql", PLAIN)
def test_plain_sql_is_scanned_to_the_parsers_counts(sql):
    got = scan_counts(sql)
    assert got is not None, "declined"
    assert got == _parsed(sql)


@pytest.mark.parametrize("sql", DECLINED)
def test_other_sql_is_left_to_the_parser(sql):
    assert scan_counts(sql) is None


@pytest.mark.parametrize("number,case", fixture_lines("hardness.txt", 2), ids=lambda x: str(x))
def test_fixture_golds_agree_when_scanned(number, case):
    sql, _ = case
    got = scan_counts(sql)
    if got is not None:
        assert got == _parsed(sql), f"hardness.txt:{number}"


def test_mutated_queries_never_disagree_with_the_parser():
    # Hostile input: token deletions, insertions and swaps of the queries above. Whatever the
    # scan accepts, the parser must read to the same counts (not fail, not count otherwise).
    rng = random.Random(0)
    words = ["NOT", "AND", "OR", "(", ")", ",", "SELECT", "FROM", "WHERE", "IN", "LIKE", "BETWEEN", "IS", "NULL", "AS",
             "JOIN", "ON", "count(*)", "-", "*", "=", "UNION", "ORDER BY", "GROUP BY", "LIMIT", "1", "'x'", "EXISTS",
             "INNER", "t1.a", "b", "DESC", "HAVING", "DISTINCT"]
    accepted = 0
    for _ in range(3000):
        toks = rng.choice(PLAIN).split()
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(toks) + 1)
            roll = rng.random()
            if roll < 0.35 and i < len(toks):
                del toks[i]
            elif roll < 0.7:
                toks.insert(i, rng.choice(words))
            elif toks:
                j = rng.randrange(len(toks))
                toks[min(i, len(toks) - 1)], toks[j] = toks[j], toks[min(i, len(toks) - 1)]
        sql = " ".join(toks)
        got = scan_counts(sql)
        if got is not None:
            accepted += 1
            assert got == _parsed(sql), sql
    assert accepted > 100  # the check above ran on enough accepted mutants to mean something


def test_every_word_the_parser_never_reads_as_a_name_is_declined():
    from sqlglot.dialects.sqlite import SQLite

    ids = SQLite.parser_class.ID_VAR_TOKENS
    reserved = {k.lower() for k, v in SQLite.tokenizer_class.KEYWORDS.items()
                if k.replace("_", "").isalpha() and " " not in k and v not in ids}
    assert reserved <= _SQLGLOT_RESERVED, sorted(reserved - _SQLGLOT_RESERVED)


def test_hardness_of_plain_sql_imports_no_parser():
    code = ("import sys; from sqlcoach.sql.hardness import hardness; "
            "print(hardness('SELECT count(*) FROM t WHERE a > 1'), 'sqlglot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["easy", "False"]


@pytest.mark.skipif(not (SHARED / "spider" / "dev_gold.sql").is_file(), reason="needs ../shared/data (Spider dev golds)")
def test_every_spider_dev_gold_is_scanned_to_the_parsers_counts():
    golds = {line.rsplit("\t", 1)[0] for line in (SHARED / "spider" / "dev_gold.sql").read_text(encoding="utf-8").splitlines()
             if line.strip()}
    scanned = {sql: scan_counts(sql) for sql in golds}
    assert sum(v is not None for v in scanned.values()) >= 0.97 * len(golds)
    assert [sql for sql, got in scanned.items() if got is not None and got != _parsed(sql)] == []
