"""Schema-renaming augmentation: consistent, value-preserving, executable, deterministic."""

from __future__ import annotations

import random
import re
import sqlite3

import pytest

from sqlcoach.prompts.settings import PromptSettings
from sqlcoach.schema.introspect import introspect
from sqlcoach.train import augment
from sqlcoach.types import Example

GOLDS = [
    ("Show the largest and smallest age among singers.", "SELECT max(age), min(age) FROM singer"),
    ("Show the name of the singers with country Brazil in ascending order of birth year.",
     "SELECT name FROM singer WHERE country = 'Brazil' ORDER BY birth_year"),
    ("What is the name of the singer with the largest number of concerts?",
     "SELECT T1.name FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id "
     "GROUP BY T1.singer_id ORDER BY count(*) DESC LIMIT 1"),
    ("Count the concerts whose genre is pop.", "SELECT count(*) FROM concert WHERE genre = 'pop'"),
    ("List the title of concerts of singers from Rome.",
     "SELECT title FROM concert WHERE singer_id IN (SELECT singer_id FROM singer WHERE country = 'Rome')"),
]


@pytest.fixture()
def db(tmp_path):
    path = tmp_path / "concert.sqlite"
    con = sqlite3.connect(path)
    con.executescript(
        """
        CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER, birth_year INTEGER);
        CREATE TABLE concert (concert_id INTEGER PRIMARY KEY, title TEXT, genre TEXT, pop INTEGER,
                              singer_id INTEGER REFERENCES singer(singer_id));
        INSERT INTO singer VALUES (1, 'Ann', 'Brazil', 30, 1990), (2, 'Bo', 'Rome', 40, 1980), (3, 'Cy', 'Brazil', 25, 1995);
        INSERT INTO concert VALUES (1, 'A', 'pop', 1, 1), (2, 'B', 'rock', 0, 1), (3, 'C', 'pop', 1, 2);
        """
    )
    con.commit()
    con.close()
    return str(path)


def _examples(db):
    return [Example(id=f"e{i}", db_id="concert", question=q, gold_sql=s, db_path=db) for i, (q, s) in enumerate(GOLDS)]


def _renamed_db(db, schema, word_map, tmp_path):
    """A copy of the database with every table and column renamed by ``word_map``."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = tmp_path / "renamed.sqlite"
    src = sqlite3.connect(db)
    dst = sqlite3.connect(out)
    for t in schema.tables:
        cols = ", ".join(augment.rename_ident(c.name, word_map) for c in t.columns)
        dst.execute(f"CREATE TABLE {augment.rename_ident(t.name, word_map)} ({cols})")
        rows = src.execute(f"SELECT * FROM {t.name}").fetchall()
        dst.executemany(f"INSERT INTO {augment.rename_ident(t.name, word_map)} VALUES ({', '.join('?' * len(t.columns))})", rows)
    dst.commit()
    src.close()
    return dst


def test_fresh_words_deterministic_distinct_and_not_keywords():
    a = augment.fresh_words(500, seed=3)
    assert a == augment.fresh_words(500, seed=3)
    assert a != augment.fresh_words(500, seed=4)
    assert len(set(a)) == 500
    assert not set(a) & augment._reserved()
    assert all(re.fullmatch(r"[a-z]{4,}", w) for w in a)


def test_rename_sql_keeps_values_aliases_functions_and_layout(db):
    schema = introspect(db, sample_values=0)
    wm = {"singer": "tolvar", "name": "brimek", "country": "zafu", "concert": "pleko", "count": "nope",
          "birth": "gra", "year": "vum"}
    sql = "SELECT T1.name, count(*) FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id WHERE T1.country = 'singer' AND T1.birth_year > 3 GROUP BY T1.name"
    got = augment.rename_sql(sql, schema, wm)
    assert got == ("SELECT T1.brimek, count(*) FROM tolvar AS T1 JOIN pleko AS T2 ON T1.tolvar_id = T2.tolvar_id "
                   "WHERE T1.zafu = 'singer' AND T1.gra_vum > 3 GROUP BY T1.brimek")


def test_rename_question_plurals_split_words_capitals_and_protected_values():
    wm = {"singer": "tolvar", "birth": "gra", "year": "vum", "pop": "kes", "country": "zafu"}
    q = "Singers born in birth year 1990 whose country is pop, and the countries of singer X"
    got = augment.rename_question(q, wm, protected={"pop"})
    assert got == "Tolvars born in gra vum 1990 whose zafu is pop, and the zafus of tolvar X"


def test_renamed_example_is_consistent_and_executes(db, tmp_path):
    schema = introspect(db, sample_values=0)
    words = augment.identifier_words(schema)
    pool = augment.word_pool([schema], n_fresh=300, seed=1)
    rng = random.Random(0)
    for ex in _examples(db):
        new, new_schema = augment.rename_example(ex, schema, pool, rng)
        idents = {t.name for t in new_schema.tables} | {c.name for t in new_schema.tables for c in t.columns}
        from sqlcoach.schema.serialize import serialize

        text = serialize(new_schema, "compact")
        # every identifier of the renamed SQL is in the renamed schema text, and no old name is left
        from sqlglot.tokens import Tokenizer, TokenType

        for tok in Tokenizer(dialect="sqlite").tokenize(new.gold_sql):
            if tok.token_type == TokenType.VAR and not re.fullmatch(r"T\d", tok.text) and tok.text not in ("count", "max", "min"):
                assert tok.text in idents and re.search(rf"\b{tok.text}\b", text), (tok.text, new.gold_sql)
        old_words = {w for w in words if w != "id"}
        sql_words = set(re.findall(r"[a-z]+", re.sub(r"'[^']*'", "", new.gold_sql)))
        assert not (sql_words & old_words) - {"count", "max", "min", "desc", "limit"}
        # values are kept verbatim
        assert re.findall(r"'[^']*'", new.gold_sql) == re.findall(r"'[^']*'", ex.gold_sql)
        # question words that name the schema are renamed (except values such as 'pop')
        q_words = {w.lower() for w in re.findall(r"[A-Za-z]+", new.question)}
        left = (q_words & old_words) - augment.literal_words(ex.gold_sql)
        assert not left, (left, new.question)
        # the renamed gold runs on a renamed copy of the database and gives the same rows
        con = _renamed_db(db, schema, _word_map_of(schema, new_schema), tmp_path / ex.id)
        orig = sqlite3.connect(db)
        assert sorted(con.execute(new.gold_sql).fetchall()) == sorted(orig.execute(ex.gold_sql).fetchall())
        con.close()
        orig.close()


def _word_map_of(schema, new_schema):
    wm = {}
    for t, nt in zip(schema.tables, new_schema.tables):
        for a, b in zip([t.name] + [c.name for c in t.columns], [nt.name] + [c.name for c in nt.columns]):
            wm.update(dict(zip(a.split("_"), b.split("_"))))
    return wm


def test_renamed_rows_deterministic_and_copies(db):
    exs = _examples(db)
    a, sk = augment.renamed_rows(exs, prompt=PromptSettings(schema_sample_values=0), copies=2, seed=5)
    b, _ = augment.renamed_rows(exs, prompt=PromptSettings(schema_sample_values=0), copies=2, seed=5)
    c, _ = augment.renamed_rows(exs, prompt=PromptSettings(schema_sample_values=0), copies=2, seed=6)
    assert not sk
    assert len(a) == 2 * len(exs)
    assert a == b and a != c
    assert a[0] != a[1]  # two copies of one example differ
    assert "singer" not in a[0]["prompt"][-1]["content"] and "singer" not in a[0]["completion"][0]["content"]


def test_build_training_rows_interleaves(db, tmp_path):
    from sqlcoach.config import SFTRunConfig
    from sqlcoach.train.sft import build_training_rows

    exs = _examples(db)
    cfg = SFTRunConfig(model="m", data_path="d", schema_sample_values=0, rename_copies=1)
    rows, sk = build_training_rows(exs, cfg)
    assert not sk and len(rows) == 2 * len(exs)
    assert "FROM singer" in rows[0]["completion"][0]["content"]
    assert "singer" not in rows[1]["completion"][0]["content"]
    only, _ = build_training_rows(exs, SFTRunConfig(model="m", data_path="d", rename_copies=1, rename_keep_original=False))
    assert len(only) == len(exs)


def test_config_rejects_bad_rename_settings():
    from sqlcoach.errors import ConfigError
    from sqlcoach.config import SFTRunConfig

    with pytest.raises(ConfigError, match="rename_copies"):
        SFTRunConfig(model="m", data_path="d", rename_copies=-1)
    with pytest.raises(ConfigError, match="rename_keep_original"):
        SFTRunConfig(model="m", data_path="d", rename_keep_original=False)


def test_pool_without_fresh_words_uses_only_training_schema_words(db):
    schema = introspect(db, sample_values=0)
    pool = augment.word_pool([schema], n_fresh=0)
    assert set(pool) <= set(augment.identifier_words(schema)) - {"id"}
    rows, _ = augment.renamed_rows(_examples(db), prompt=PromptSettings(template="minimal", schema_sample_values=0), fresh=False, seed=2)
    words = set(augment.identifier_words(schema))
    for r in rows:
        names = re.findall(r"\b([a-z]+)(?:_id)?\b", r["prompt"][-1]["content"].split("\nQuestion:")[0])
        assert set(names) <= words | {"id"}, names
