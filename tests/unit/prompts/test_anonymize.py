"""The anonymized template: names and mentioned values become placeholders, and come back."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from sqlcoach.errors import DataError
from sqlcoach.prompts import expected_format, render_completion, render_prompt
from sqlcoach.prompts.anonymize import decode_sql, name_map
from sqlcoach.prompts.templates import names_column, restore_sql
from sqlcoach.sql.extract import extract_sql
from sqlcoach.types import Example, Turn


@pytest.fixture()
def db(tmp_path: Path) -> str:
    f = tmp_path / "club.sqlite"
    con = sqlite3.connect(f)
    con.executescript(
        """
        CREATE TABLE coach (coach_id INTEGER PRIMARY KEY, name TEXT, sport TEXT, age INTEGER);
        CREATE TABLE player (player_id INTEGER PRIMARY KEY, name TEXT, city TEXT, birth_year INTEGER,
                             coach_id INTEGER REFERENCES coach(coach_id));
        INSERT INTO coach VALUES (1, 'Karl Smith', 'boxing', 40), (2, 'Anna Lee', 'Table Tennis', 51);
        INSERT INTO player VALUES (1, 'Ben Stone', 'New York', 1999, 1), (2, 'Zoe King', 'Oslo', 2001, 2);
        """
    )
    con.commit()
    con.close()
    return str(f)


def one_table_db(tmp_path: Path, ddl: str) -> Path:
    f = tmp_path / "one.sqlite"
    con = sqlite3.connect(f)
    con.execute(ddl)
    con.close()
    return f


def ex(db: str, question: str, sql: str, **kw) -> Example:
    return Example(id="e", db_id="club", question=question, gold_sql=sql, db_path=db, **kw)


def test_prompt_uses_placeholders_for_names_and_values(db: str) -> None:
    e = ex(db, "Which coaches with sport table tennis are older than 45? Give their names.",
           "SELECT name FROM coach WHERE sport = 'Table Tennis' AND age > 45")
    [msg] = render_prompt(e, "ignored schema text", "anonymized")
    assert msg["content"] == (
        "Question: Which t1s with c2 v1 are older than 45? Give their c1s.\n"
        "t1(t1_id*, c1, c2, c3)\n"
        "t2(t2_id*, c1, c4, c5, t1_id->t1.t1_id)\n"
        "SQL:"
    )
    out = render_completion(e.gold_sql, "anonymized", example=e)
    assert out == "SELECT c1 FROM t1 WHERE c2 = 'v1' AND c3 > 45"
    assert expected_format("anonymized").fullmatch(out)
    # the database's spelling comes back, not the question's
    assert restore_sql(extract_sql(out), e, "anonymized") == e.gold_sql


def test_joins_aliases_functions_and_multiword_columns(db: str) -> None:
    e = ex(db, "How many players in New York have a coach older than 30? Count by birth year.",
           "SELECT T2.birth_year, count(*) FROM coach AS T1 JOIN player AS T2 ON T1.coach_id = T2.coach_id "
           "WHERE T2.city = 'New York' AND T1.age > 30 GROUP BY T2.birth_year")
    nm = name_map(e)
    assert nm.encode_text(e.question) == "How many t2s in v1 have a t1 older than 30? Count by c5."
    enc = nm.encode_sql(e.gold_sql)
    assert enc == ("SELECT T2.c5, count(*) FROM t1 AS T1 JOIN t2 AS T2 ON T1.t1_id = T2.t1_id "
                   "WHERE T2.c4 = 'v1' AND T1.c3 > 30 GROUP BY T2.c5")
    assert nm.decode_sql(enc) == e.gold_sql


def test_like_word_of_a_value_is_linked(db: str) -> None:
    e = ex(db, "Which coaches have Karl in their name?", "SELECT name FROM coach WHERE name LIKE '%Karl%'")
    out = render_completion(e.gold_sql, "anonymized", example=e)
    assert out == "SELECT c1 FROM t1 WHERE c1 LIKE '%v1%'"
    assert restore_sql(out, e, "anonymized") == e.gold_sql
    quoted = ex(db, "Which coaches have the word 'Karl' in their name?", e.gold_sql)
    assert name_map(quoted).encode_text(quoted.question) == "Which t1s have the word 'v1' in their c1?"


def test_unknown_placeholders_and_unmentioned_values_stay(db: str) -> None:
    e = ex(db, "Show coaches from Paris.", "SELECT name FROM coach WHERE city = 'Paris'")
    assert name_map(e).values == {}  # Paris is in no table: nothing to link
    assert restore_sql("SELECT c9, c1 FROM t7 WHERE x = 'v3'", e, "anonymized") == "SELECT c9, name FROM t7 WHERE x = 'v3'"
    # aliases are upper case and never touched
    assert restore_sql("SELECT T1.c1 FROM t1 AS T1", e, "anonymized") == "SELECT T1.name FROM coach AS T1"


def test_names_column_decodes_like_restore(db: str) -> None:
    e = ex(db, "List the sport of the coach Anna Lee.", "SELECT sport FROM coach WHERE name = 'Anna Lee'")
    col = names_column(e, "anonymized")
    assert json.loads(col)["v1"] == "Anna Lee"
    assert decode_sql("SELECT c2 FROM t1 WHERE c1 = 'v1'", col) == e.gold_sql
    assert names_column(e, "minimal") == ""
    assert decode_sql("SELECT c1", "not json") == "SELECT c1"


def test_multi_turn_history_is_encoded(db: str) -> None:
    e = ex(db, "Only those in Oslo.", "SELECT name FROM player WHERE city = 'Oslo'",
           turns=(Turn("Show all players.", "SELECT * FROM player"),))
    text = render_prompt(e, "", "anonymized")[-1]["content"]
    assert "1. Show all t2s.\n   SQL: SELECT * FROM t2\n\nCurrent question:\nOnly those in v1." in text


def test_completion_needs_the_example_and_placeholder_like_names_are_refused(db: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs the example"):
        render_completion("SELECT 1", "anonymized")
    bad = one_table_db(tmp_path, "CREATE TABLE t1 (c1 TEXT)")
    with pytest.raises(DataError, match="placeholders"):
        render_prompt(ex(str(bad), "Show c1.", "SELECT c1 FROM t1"), "", "anonymized")
    assert restore_sql("SELECT c1 FROM t1", ex(str(bad), "q", "SELECT 1"), "anonymized") == "SELECT c1 FROM t1"


def test_a_changed_database_is_read_again(db: str) -> None:
    import os

    e = ex(db, "Which coaches live in Rome?", "SELECT name FROM coach WHERE sport = 'Rome'")
    assert name_map(e).values == {}
    con = sqlite3.connect(db)
    con.execute("INSERT INTO coach VALUES (3, 'Rita Rossi', 'Rome', 33)")
    con.commit()
    con.close()
    st = os.stat(db)
    os.utime(db, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a new mtime even on coarse clocks
    assert name_map(e).values == {"Rome": "v1"}


def test_anonymized_numbers_makes_the_questions_numbers_placeholders(db: str) -> None:
    e = ex(db, "Which coaches with sport table tennis are between 45 and 60, or 45.5? Top 3 by age.",
           "SELECT name FROM coach WHERE sport = 'Table Tennis' AND (age BETWEEN 45 AND 60 OR age = 45.5) "
           "AND coach_id > 1 ORDER BY age LIMIT 3")
    [msg] = render_prompt(e, "", "anonymized_numbers")
    assert msg["content"].startswith(
        "Question: Which t1s with c2 v1 are between n1 and n2, or n3? Top n4 by c3.\n")
    out = render_completion(e.gold_sql, "anonymized_numbers", example=e)
    # a number the question does not write (the 1 of "coach_id > 1") stays as it is
    assert out == ("SELECT c1 FROM t1 WHERE c2 = 'v1' AND (c3 BETWEEN n1 AND n2 OR c3 = n3) "
                   "AND t1_id > 1 ORDER BY c3 LIMIT n4")
    assert expected_format("anonymized_numbers").fullmatch(out)
    assert restore_sql(out, e, "anonymized_numbers") == e.gold_sql
    assert json.loads(names_column(e, "anonymized_numbers"))["n3"] == "45.5"
    # the plain template keeps numbers, and a stray n1 in its output is left as written
    assert render_completion(e.gold_sql, "anonymized", example=e).endswith("LIMIT 3")
    assert restore_sql("SELECT c1 FROM t1 WHERE c3 > n1", e, "anonymized") == "SELECT name FROM coach WHERE age > n1"


def test_anonymized_numbers_leaves_words_placeholders_strings_and_linked_values_alone(db: str, tmp_path: Path) -> None:
    e = ex(db, "Players born in 1999. Who lives in New York, in the 1990s, coach 2?",
           "SELECT name FROM player WHERE birth_year = 1999 AND city = 'New York' AND coach_id = 2 AND name != 'B 1999'")
    names = name_map(e, numbers=True)
    assert names.numbers == {"1999": "n1", "2": "n2"}  # "1990s" is a word; the sentence's full stop is not a decimal
    out = render_completion(e.gold_sql, "anonymized_numbers", example=e)
    assert out == "SELECT c1 FROM t2 WHERE c5 = n1 AND c4 = 'v1' AND t1_id = n2 AND c1 != 'B 1999'"
    assert restore_sql(out, e, "anonymized_numbers") == e.gold_sql
    bad = one_table_db(tmp_path, "CREATE TABLE items (n1 TEXT)")
    with pytest.raises(DataError, match="n1"):
        render_prompt(ex(str(bad), "Show 3 items.", "SELECT n1 FROM items"), "", "anonymized_numbers")
    assert "items" not in render_prompt(ex(str(bad), "Show 3 items.", "SELECT n1 FROM items"), "", "anonymized")[0]["content"]
