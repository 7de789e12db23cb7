"""The offline demo world: small SQLite databases and template questions, generated from a seed.

No weights or datasets can be downloaded on these machines (nor, often, on a user's fresh one), so
sqlcoach ships a generated text-to-SQL benchmark that a tiny model can learn on CPU in minutes::

    sqlcoach world build OUT --seed 0          # or build_world("OUT", seed=0)

writes Spider's layout: ``OUT/train.json``, ``OUT/dev.json``, ``OUT/tables.json``,
``OUT/database/<db_id>/<db_id>.sqlite``, ``OUT/train_gold.sql``, ``OUT/dev_gold.sql``
(``SQL<TAB>db_id`` lines) and ``OUT/world.json`` (version, seed, statistics).

What the world guarantees
-------------------------
* **Deterministic.** The same seed (and the same ``n_train``/``n_dev``) gives byte-identical JSON
  files and identical table contents; every random choice comes from ``random.Random`` seeded with
  a string derived from the seed and the database name, and nothing iterates a ``set``.
* **Dev databases are never seen in training.** The split is by subject (``DEV_DB_IDS``), fixed
  so that runs with different seeds stay comparable.
* **Every gold runs and answers.** Each query is executed on its database while the world is
  built; a query that fails, returns no row or only NULLs is dropped and another is drawn. A gold
  with ``ORDER BY`` orders by a column whose values are unique in its table, or its ordering keys
  are checked to hold no ties within the rows that matter (so ``LIMIT 1`` has one right answer).
  Averages are taken over INTEGER columns only, so their value does not depend on row order.
* **Learnable by copying.** Table and column names are short English words that the question
  repeats verbatim (tables as regular plurals: ``singer`` -> "singers"), values in a question are
  copied literally into the SQL, and each SQL pattern has several paraphrases, so that a model a
  few million parameters large can learn the mapping and apply it to unseen schemas.
* **Spider's four hardness levels.** Templates cover filters (=, >, <, >=, <=, LIKE, BETWEEN, OR),
  joins over foreign keys, aggregates, GROUP BY / HAVING, ORDER BY / LIMIT, nested queries
  (IN / NOT IN, compare to an average) and INTERSECT / UNION / EXCEPT. Each record carries the
  ``hardness`` that ``sqlcoach.sql.hardness.hardness`` assigns (``None`` when that module is not
  installed), the same value as ``difficulty`` (for RL curricula), and ``answer_kind``
  (``number``: one numeric cell; ``ordered``: the gold has ORDER BY; ``list``: anything else).

Re-running into an existing folder: a folder that holds a world (``world.json``) or is empty is
replaced; the new world is built complete in a hidden folder beside it and only then renamed into
place (the old one is renamed away first and deleted after), so a failed or interrupted build never
leaves a half-written world under OUT. Any other non-empty folder is refused unless ``force=True``,
so that a typo cannot wipe a user's directory.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlcoach.errors import DataError

#: Bumped whenever the generator changes its output for a given seed.
WORLD_VERSION = 1
DEFAULT_N_TRAIN = 4000
DEFAULT_N_DEV = 600

# ---------------------------------------------------------------------------------------------
# Value pools. Short, distinct words so that a value in a question is one or two tokens.
# ---------------------------------------------------------------------------------------------

_FIRST = (
    "Anna", "Ben", "Clara", "David", "Elena", "Felix", "Grace", "Hugo", "Iris", "Jack",
    "Karl", "Laura", "Marco", "Nina", "Oscar", "Paula", "Quinn", "Rosa", "Sam", "Tara",
    "Ulla", "Victor", "Wendy", "Xavier", "Yara", "Zoe", "Alan", "Bella", "Chris", "Dora",
)
_LAST = (
    "Smith", "Brown", "Garcia", "Muller", "Rossi", "Dubois", "Silva", "Kim", "Sato", "Novak",
    "Jensen", "Moreau", "Costa", "Fischer", "Lopez", "Weber", "Berg", "Ward", "Hill", "Stone",
    "Young", "King", "Lee", "Park", "Reed",
)
_ADJ = (
    "Silent", "Golden", "Hidden", "Broken", "Bright", "Dark", "Lost", "Wild", "Blue", "Red",
    "Quiet", "Frozen", "Little", "Secret", "Last", "First", "Green", "Iron", "Silver", "Empty",
)
_NOUN = (
    "River", "Garden", "Storm", "Dream", "Road", "Moon", "City", "Forest", "Song", "Light",
    "Heart", "Island", "Winter", "Summer", "Tower", "Ocean", "Star", "Mountain", "Shadow", "Fire",
)
_PLACE_A = ("North", "South", "East", "West", "Royal", "Grand", "Central", "Old", "New", "Lake")
_PLACE_B = ("Park", "Hall", "Arena", "Center", "House", "Point", "Gate", "Bay")

_COUNTRY = ("France", "Germany", "Italy", "Spain", "Japan", "Brazil", "Canada", "Mexico")
_CITY = ("Paris", "Berlin", "Rome", "Madrid", "Tokyo", "Lisbon", "Oslo", "Dublin", "Vienna")


# ---------------------------------------------------------------------------------------------
# Subjects. A table is (name, label, columns, parents, rows). ``label`` names the table's unique
# text column ("name" or "title") and how its values are made; a column is (name, spec) where spec
# is a tuple of words (categorical TEXT) or an (lo, hi) pair (INTEGER; a trailing "!" on the name
# means its values are unique in the table, so ORDER BY on it has no ties). Parents become
# ``<parent>_id`` foreign-key columns. Parents are listed before their children.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TableSpec:
    name: str
    label: tuple[str, str] | None  # (column name, value kind: person | title | place)
    columns: tuple[tuple[str, Any], ...]
    parents: tuple[str, ...] = ()
    rows: tuple[int, int] = (20, 40)


def _t(name, label, columns, parents=(), rows=(20, 40)) -> _TableSpec:
    return _TableSpec(name, label, tuple(columns), tuple(parents), rows)


_PERSON = ("name", "person")
_TITLE = ("title", "title")
_PLACE = ("name", "place")
_CHILD = (60, 150)

_DOMAINS: dict[str, tuple[_TableSpec, ...]] = {
    "concert": (
        _t("singer", _PERSON, [
            ("country", _COUNTRY),
            ("genre", ("pop", "rock", "jazz", "folk", "soul")),
            ("age!", (18, 80)),
        ]),
        _t("stadium", _PLACE, [("city", _CITY), ("capacity!", (2000, 90000))], rows=(12, 30)),
        _t("concert", _TITLE, [
            ("year", (2010, 2023)),
            ("tickets!", (100, 50000)),
        ], ("singer", "stadium"), _CHILD),
    ),
    "library": (
        _t("author", _PERSON, [("country", _COUNTRY), ("born!", (1900, 2000))]),
        _t("book", _TITLE, [
            ("genre", ("novel", "poetry", "history", "science", "drama")),
            ("pages!", (80, 900)),
            ("year", (1950, 2020)),
        ], ("author",), _CHILD),
        _t("member", _PERSON, [("city", _CITY), ("age!", (16, 90))], rows=(20, 50)),
        _t("loan", None, [
            ("days!", (1, 400)),
            ("status", ("open", "closed", "late")),
        ], ("book", "member"), _CHILD),
    ),
    "school": (
        _t("teacher", _PERSON, [
            ("subject", ("math", "physics", "art", "music", "biology")),
            ("salary!", (30000, 90000)),
        ]),
        _t("student", _PERSON, [
            ("city", _CITY),
            ("grade", (1, 12)),
            ("age!", (6, 99)),
        ], rows=(30, 60)),
        _t("course", _TITLE, [("credits", (1, 6)), ("room!", (100, 599))], ("teacher",), (20, 40)),
        _t("enrollment", None, [
            ("score!", (0, 1000)),
            ("term", ("spring", "summer", "fall")),
        ], ("student", "course"), _CHILD),
    ),
    "shop": (
        _t("customer", _PERSON, [("city", _CITY), ("age!", (18, 90))], rows=(25, 50)),
        _t("product", _TITLE, [
            ("category", ("food", "toys", "books", "tools", "garden")),
            ("price!", (1, 999)),
            ("stock", (0, 300)),
        ], rows=(25, 50)),
        _t("purchase", None, [
            ("quantity", (1, 20)),
            ("total!", (5, 20000)),
        ], ("customer", "product"), _CHILD),
    ),
    "hospital": (
        _t("doctor", _PERSON, [
            ("specialty", ("surgery", "cardiology", "pediatrics", "neurology", "oncology")),
            ("experience!", (1, 45)),
        ]),
        _t("patient", _PERSON, [
            ("city", _CITY),
            ("gender", ("female", "male")),
            ("age!", (1, 99)),
        ], rows=(30, 60)),
        _t("visit", None, [
            ("cost!", (20, 5000)),
            ("year", (2015, 2023)),
        ], ("doctor", "patient"), _CHILD),
    ),
    "airline": (
        _t("pilot", _PERSON, [("country", _COUNTRY), ("age!", (25, 65))]),
        _t("airplane", _PLACE, [
            ("maker", ("Airbus", "Boeing", "Embraer", "Bombardier")),
            ("seats!", (50, 600)),
        ], rows=(12, 30)),
        _t("flight", None, [
            ("distance!", (100, 15000)),
            ("price", (50, 2000)),
            ("origin", _CITY),
        ], ("pilot", "airplane"), _CHILD),
    ),
    "football": (
        _t("team", _PLACE, [("city", _CITY), ("founded!", (1880, 2010))], rows=(12, 30)),
        _t("player", _PERSON, [
            ("position", ("goalkeeper", "defender", "midfielder", "forward")),
            ("age", (16, 45)),
            ("goals!", (0, 900)),
        ], ("team",), (40, 120)),
        _t("game", None, [
            ("year", (2015, 2023)),
            ("attendance!", (500, 90000)),
        ], ("team",), _CHILD),
    ),
    "cinema": (
        _t("director", _PERSON, [("country", _COUNTRY), ("born!", (1930, 1995))]),
        _t("movie", _TITLE, [
            ("genre", ("comedy", "drama", "horror", "action", "romance")),
            ("year", (1980, 2023)),
            ("budget!", (1, 400)),
        ], ("director",), _CHILD),
        _t("actor", _PERSON, [("country", _COUNTRY), ("age!", (18, 90))], rows=(25, 50)),
        _t("role", None, [
            ("fee!", (1000, 900000)),
            ("lead", ("yes", "no")),
        ], ("movie", "actor"), _CHILD),
    ),
    "museum": (
        _t("museum", _PLACE, [("city", _CITY), ("founded!", (1750, 2015))], rows=(12, 30)),
        _t("artist", _PERSON, [("country", _COUNTRY), ("born!", (1800, 1990))]),
        _t("artwork", _TITLE, [
            ("style", ("modern", "baroque", "cubist", "abstract", "classic")),
            ("year", (1850, 2020)),
            ("price!", (1, 5000)),
        ], ("museum", "artist"), _CHILD),
    ),
    "restaurant": (
        _t("restaurant", _PLACE, [
            ("city", _CITY),
            ("cuisine", ("italian", "french", "thai", "mexican", "indian")),
            ("rating!", (10, 100)),
        ], rows=(12, 30)),
        _t("chef", _PERSON, [
            ("country", _COUNTRY),
            ("salary!", (20000, 120000)),
        ], ("restaurant",), (25, 60)),
        _t("dish", _TITLE, [
            ("price!", (3, 300)),
            ("calories", (50, 1500)),
            ("course", ("starter", "main", "dessert")),
        ], ("restaurant",), _CHILD),
    ),
    "zoo": (
        _t("zoo", _PLACE, [("city", _CITY), ("area!", (5, 900))], rows=(12, 30)),
        _t("keeper", _PERSON, [
            ("age!", (18, 70)),
            ("shift", ("day", "night")),
        ], ("zoo",), (20, 45)),
        _t("animal", _PERSON, [
            ("species", ("lion", "tiger", "zebra", "panda", "eagle", "wolf")),
            ("weight!", (1, 3000)),
            ("age", (1, 40)),
        ], ("zoo", "keeper"), _CHILD),
    ),
    "company": (
        _t("department", _PLACE, [("floor", (1, 9)), ("budget!", (10000, 990000))], rows=(10, 24)),
        _t("employee", _PERSON, [
            ("city", _CITY),
            ("age", (18, 70)),
            ("salary!", (20000, 150000)),
        ], ("department",), (40, 120)),
        _t("project", _TITLE, [
            ("status", ("planned", "active", "done")),
            ("cost!", (1000, 500000)),
        ], ("department",), (20, 60)),
    ),
    "cars": (
        _t("maker", _PLACE, [("country", _COUNTRY), ("founded!", (1880, 2015))], rows=(12, 30)),
        _t("dealer", _PERSON, [("city", _CITY), ("rating!", (1, 100))]),
        _t("car", _TITLE, [
            ("color", ("black", "white", "red", "blue", "silver")),
            ("price!", (5000, 150000)),
            ("year", (2005, 2023)),
        ], ("maker", "dealer"), _CHILD),
    ),
    "farm": (
        _t("farm", _PLACE, [
            ("region", ("north", "south", "east", "west")),
            ("area!", (10, 5000)),
        ], rows=(12, 30)),
        _t("farmer", _PERSON, [("age!", (18, 90)), ("country", _COUNTRY)], ("farm",), (25, 60)),
        _t("crop", _TITLE, [
            ("kind", ("wheat", "corn", "rice", "barley", "soy")),
            ("yield!", (100, 9999)),
        ], ("farm",), _CHILD),
    ),
    "hotel": (
        _t("hotel", _PLACE, [
            ("city", _CITY),
            ("stars", (1, 5)),
            ("rooms!", (10, 900)),
        ], rows=(12, 30)),
        _t("guest", _PERSON, [("country", _COUNTRY), ("age!", (18, 95))], rows=(25, 60)),
        _t("booking", None, [
            ("nights", (1, 21)),
            ("price!", (40, 9000)),
        ], ("hotel", "guest"), _CHILD),
    ),
    "bank": (
        _t("branch", _PLACE, [("city", _CITY), ("staff!", (3, 300))], rows=(12, 30)),
        _t("client", _PERSON, [("city", _CITY), ("age!", (18, 99))], rows=(25, 60)),
        _t("account", None, [
            ("kind", ("saving", "checking", "business")),
            ("balance!", (0, 999999)),
        ], ("branch", "client"), _CHILD),
    ),
    "music": (
        _t("band", _PLACE, [("country", _COUNTRY), ("formed!", (1960, 2020))], rows=(12, 30)),
        _t("album", _TITLE, [
            ("genre", ("pop", "rock", "jazz", "metal", "blues")),
            ("year", (1965, 2023)),
            ("sales!", (1000, 990000)),
        ], ("band",), (30, 70)),
        _t("song", _TITLE, [("length!", (60, 900)), ("rating", (1, 10))], ("album",), _CHILD),
    ),
    "shipping": (
        _t("port", _PLACE, [("country", _COUNTRY), ("depth!", (5, 60))], rows=(12, 30)),
        _t("ship", _TITLE, [
            ("flag", _COUNTRY),
            ("tonnage!", (500, 200000)),
            ("built", (1970, 2023)),
        ], ("port",), (30, 70)),
        _t("voyage", None, [
            ("days!", (1, 400)),
            ("cargo", ("grain", "oil", "coal", "cars", "steel")),
        ], ("ship", "port"), _CHILD),
    ),
    "theater": (
        _t("theater", _PLACE, [("city", _CITY), ("seats!", (80, 3000))], rows=(12, 30)),
        _t("play", _TITLE, [
            ("genre", ("comedy", "tragedy", "musical", "opera")),
            ("year", (1990, 2023)),
            ("length!", (45, 240)),
        ], ("theater",), (30, 70)),
        _t("ticket", None, [
            ("price!", (5, 500)),
            ("section", ("stalls", "circle", "balcony")),
        ], ("play",), _CHILD),
    ),
    "space": (
        _t("planet", _TITLE, [("moons", (0, 9)), ("mass!", (1, 999))], rows=(12, 30)),
        _t("astronaut", _PERSON, [("country", _COUNTRY), ("age!", (25, 65))]),
        _t("mission", _TITLE, [
            ("year", (1990, 2030)),
            ("budget!", (10, 9000)),
            ("outcome", ("success", "failure", "partial")),
        ], ("planet", "astronaut"), (40, 100)),
    ),
    "garden": (
        _t("garden", _PLACE, [("city", _CITY), ("area!", (1, 900))], rows=(12, 30)),
        _t("gardener", _PERSON, [("age!", (16, 80)), ("country", _COUNTRY)], ("garden",), (20, 50)),
        _t("plant", _TITLE, [
            ("kind", ("rose", "tulip", "fern", "cactus", "orchid")),
            ("height!", (1, 900)),
            ("age", (1, 30)),
        ], ("garden",), _CHILD),
    ),
    "gym": (
        _t("trainer", _PERSON, [
            ("age!", (20, 65)),
            ("sport", ("yoga", "boxing", "running", "cycling")),
        ]),
        _t("client", _PERSON, [("city", _CITY), ("age!", (16, 90))], rows=(25, 60)),
        _t("session", None, [
            ("minutes!", (10, 600)),
            ("level", ("easy", "medium", "hard")),
        ], ("trainer", "client"), _CHILD),
    ),
    "election": (
        # Tables are named for regular plurals ("faction", not "party") because the question says
        # "factions" and a model must map that back to the table name it sees in the schema.
        _t("faction", _PLACE, [
            ("founded!", (1850, 2020)),
            ("ideology", ("left", "right", "center", "green")),
        ], rows=(10, 24)),
        _t("candidate", _PERSON, [
            ("city", _CITY),
            ("age", (21, 90)),
            ("votes!", (10, 90000)),
        ], ("faction",), (40, 100)),
        _t("event", None, [
            ("crowd!", (50, 90000)),
            ("year", (2008, 2024)),
        ], ("candidate",), _CHILD),
    ),
}

#: Subjects held out for the dev split: their databases never appear in train.json.
DEV_DB_IDS: tuple[str, ...] = ("museum", "hotel", "zoo", "gym", "election")
#: Subjects of the train split, in build order.
TRAIN_DB_IDS: tuple[str, ...] = tuple(d for d in _DOMAINS if d not in DEV_DB_IDS)


# ---------------------------------------------------------------------------------------------
# Databases in memory: rows generated from a spec, with foreign-key integrity.
# ---------------------------------------------------------------------------------------------


@dataclass
class _Col:
    name: str
    kind: str  # "pk" | "label" | "cat" | "num" | "fk"
    unique: bool = False
    ref: str | None = None  # parent table, for "fk"

    @property
    def sql_type(self) -> str:
        return "TEXT" if self.kind in ("label", "cat") else "INTEGER"


@dataclass
class _Table:
    name: str
    columns: list[_Col]
    rows: list[tuple] = field(default_factory=list)

    @property
    def pk(self) -> str:
        return self.columns[0].name

    @property
    def label(self) -> str | None:
        for c in self.columns:
            if c.kind == "label":
                return c.name
        return None

    def col(self, kind: str) -> list[_Col]:
        return [c for c in self.columns if c.kind == kind]

    def values(self, column: str) -> list[Any]:
        i = [c.name for c in self.columns].index(column)
        return [r[i] for r in self.rows]

    @property
    def plural(self) -> str:
        return _plural(self.name)


@dataclass
class _Db:
    db_id: str
    tables: list[_Table]

    def table(self, name: str) -> _Table:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(name)

    def links(self) -> list[tuple[_Table, _Table, str]]:
        """(parent, child, fk column) for every foreign key, in schema order."""
        out = []
        for child in self.tables:
            for c in child.col("fk"):
                out.append((self.table(c.ref), child, c.name))
        return out


def _plural(word: str) -> str:
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in ("a", "e", "i", "o", "u"):
        return word[:-1] + "ies"
    return word + "s"


def _label_values(rng: random.Random, kind: str, n: int) -> list[str]:
    if kind == "person":
        pool = [f"{a} {b}" for a in _FIRST for b in _LAST]
    elif kind == "title":
        pool = [f"{a} {b}" for a in _ADJ for b in _NOUN]
    else:
        pool = [f"{a} {b}" for a in _PLACE_A for b in _PLACE_B]
    return rng.sample(pool, min(n, len(pool)))


def _make_db(db_id: str, specs: Sequence[_TableSpec], seed: int) -> _Db:
    """Generate the rows of one subject. Deterministic in (db_id, seed)."""
    rng = random.Random(f"sqlcoach-world:{seed}:{db_id}")
    tables: list[_Table] = []
    by_name: dict[str, _Table] = {}
    for spec in specs:
        cols = [_Col(f"{spec.name}_id", "pk", unique=True)]
        if spec.label:
            cols.append(_Col(spec.label[0], "label", unique=True))
        for raw, kind in spec.columns:
            cols.append(_Col(raw.rstrip("!"), "num" if isinstance(kind[0], int) else "cat", unique=raw.endswith("!")))
        for parent in spec.parents:
            cols.append(_Col(f"{parent}_id", "fk", ref=parent))
        n = rng.randint(*spec.rows)
        columns_data: list[list[Any]] = [list(range(1, n + 1))]
        if spec.label:
            labels = _label_values(rng, spec.label[1], n)
            n = len(labels)
            columns_data[0] = list(range(1, n + 1))
            columns_data.append(labels)
        for raw, kind in spec.columns:
            if isinstance(kind[0], int):
                lo, hi = kind
                if raw.endswith("!"):
                    if hi - lo + 1 < n:  # a spec error, caught by the unit tests for every seed
                        raise ValueError(f"{db_id}.{spec.name}.{raw}: {n} unique values from {lo}..{hi}")
                    columns_data.append(rng.sample(range(lo, hi + 1), n))
                else:
                    columns_data.append([rng.randint(lo, hi) for _ in range(n)])
            else:
                # Skewed weights so that groups have different sizes (fewer ties in "the most").
                weights = [rng.uniform(0.3, 3.0) for _ in kind]
                columns_data.append(rng.choices(kind, weights=weights, k=n))
        for parent in spec.parents:
            pids = [r[0] for r in by_name[parent].rows]
            # About a fifth of the parents get no child, so NOT IN / EXCEPT questions have answers;
            # skewed weights make "the parent with the most children" usually unique.
            active = rng.sample(pids, max(2, round(len(pids) * 0.8)))
            weights = [rng.uniform(0.2, 4.0) for _ in active]
            columns_data.append(rng.choices(active, weights=weights, k=n))
        table = _Table(spec.name, cols, [tuple(r) for r in zip(*columns_data)])
        tables.append(table)
        by_name[spec.name] = table
    return _Db(db_id, tables)


def _write_sqlite(db: _Db, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    try:
        # The file is written into a temporary folder that is discarded on any failure, so there is
        # nothing for a journal or fsync to protect; skipping them makes the build several times faster.
        con.execute("PRAGMA journal_mode = OFF")
        con.execute("PRAGMA synchronous = OFF")
        for t in db.tables:
            defs = []
            for c in t.columns:
                d = f"{c.name} {c.sql_type}"
                if c.kind == "pk":
                    d += " PRIMARY KEY"
                defs.append(d)
            for c in t.col("fk"):
                defs.append(f"FOREIGN KEY ({c.name}) REFERENCES {c.ref}({c.ref}_id)")
            con.execute(f"CREATE TABLE {t.name} (\n  " + ",\n  ".join(defs) + "\n)")
            marks = ", ".join("?" for _ in t.columns)
            con.executemany(f"INSERT INTO {t.name} VALUES ({marks})", t.rows)
        con.commit()
    finally:
        con.close()


def _tables_entry(db: _Db) -> dict[str, Any]:
    """Spider's tables.json record: column 0 is (-1, '*'); indexes count across all tables."""
    column_names = [[-1, "*"]]
    column_names_original = [[-1, "*"]]
    column_types = ["text"]
    primary_keys = []
    index: dict[tuple[str, str], int] = {}
    for ti, t in enumerate(db.tables):
        for c in t.columns:
            index[(t.name, c.name)] = len(column_names)
            column_names.append([ti, c.name.replace("_", " ")])
            column_names_original.append([ti, c.name])
            column_types.append("text" if c.sql_type == "TEXT" else "number")
            if c.kind == "pk":
                primary_keys.append(index[(t.name, c.name)])
    foreign_keys = [
        [index[(child.name, fk)], index[(parent.name, parent.pk)]] for parent, child, fk in db.links()
    ]
    return {
        "column_names": column_names,
        "column_names_original": column_names_original,
        "column_types": column_types,
        "db_id": db.db_id,
        "foreign_keys": foreign_keys,
        "primary_keys": primary_keys,
        "table_names": [t.name.replace("_", " ") for t in db.tables],
        "table_names_original": [t.name for t in db.tables],
    }


# ---------------------------------------------------------------------------------------------
# Question templates. Each takes (rng, db) and returns a _Draft, or None when the database has
# no slot for it. The SQL is written in Spider's style (upper-case keywords, T1/T2 aliases with
# the parent table always T1). Wording is drawn from several paraphrases per pattern.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Draft:
    question: str
    sql: str
    # SQL returning the ordering keys of the gold's rows, in order, for a gold whose ORDER BY key
    # may tie; ``key_rows`` says how many leading keys must be pairwise distinct (0 = all).
    key_sql: str | None = None
    key_rows: int = 0


_GT = ("greater than", "more than", "above", "over", "higher than")
_LT = ("less than", "below", "under", "lower than", "smaller than")
_HIGH = ("highest", "largest", "greatest", "biggest")
_LOW = ("lowest", "smallest", "least")
_AGG_WORDS = {
    "avg": ("average", "mean"),
    "max": ("maximum", "highest", "largest"),
    "min": ("minimum", "lowest", "smallest"),
    "sum": ("total", "sum of the"),
}


def _q(value: Any) -> str:
    """A literal as SQL: numbers bare, text single-quoted (values never contain quotes)."""
    return str(value) if isinstance(value, int) else "'" + str(value).replace("'", "''") + "'"


def _pick(rng: random.Random, items: Sequence[Any]) -> Any:
    return items[rng.randrange(len(items))] if items else None


def _filter_cols(t: _Table) -> list[_Col]:
    """Columns usable in `col = value`: categorical text, and integers with few distinct values."""
    out = list(t.col("cat"))
    for c in t.col("num"):
        if not c.unique and len(set(t.values(c.name))) <= 12:
            out.append(c)
    return out


def _num_cols(t: _Table, unique: bool | None = None) -> list[_Col]:
    return [c for c in t.col("num") if unique is None or c.unique == unique]


def _threshold(rng: random.Random, t: _Table, col: str) -> int:
    """A value of ``col`` between its 20th and 80th percentile, so both sides are non-empty."""
    vals = sorted(t.values(col))
    return vals[rng.randint(len(vals) // 5, (len(vals) * 4) // 5 - 1)] if len(vals) >= 5 else vals[0]


def _cmp(rng: random.Random) -> tuple[str, str]:
    op = _pick(rng, (">", "<", ">", "<", ">=", "<="))
    word = {
        ">": _pick(rng, _GT),
        "<": _pick(rng, _LT),
        ">=": "at least",
        "<=": "at most",
    }[op]
    return op, word


#: Integer columns that hold a year: their max/min make sense, their sum or average does not.
_YEAR_LIKE = frozenset({"year", "born", "founded", "formed", "built"})


def _agg(rng: random.Random, col: _Col) -> str:
    return _pick(rng, ("max", "min") if col.name in _YEAR_LIKE else ("avg", "max", "min", "sum"))


def _value(rng: random.Random, t: _Table, col: str) -> Any:
    return _pick(rng, t.values(col))


def _one_table(rng: random.Random, db: _Db, need: Callable[[_Table], bool]) -> _Table | None:
    return _pick(rng, [t for t in db.tables if need(t)])


def _link(rng: random.Random, db: _Db, need: Callable[[_Table, _Table], bool] = lambda p, c: True):
    return _pick(rng, [(p, c, fk) for p, c, fk in db.links() if need(p, c)])


def _has_label(t: _Table) -> bool:
    return t.label is not None


# --- easy -------------------------------------------------------------------------------------


def _t_count_all(rng, db):
    t = _pick(rng, db.tables)
    q = _pick(rng, (
        "How many {p} are there?",
        "Count the number of {p}.",
        "What is the total number of {p}?",
        "How many {p} do we have?",
        "Find the number of {p}.",
    ))
    return _Draft(q.format(p=t.plural), f"SELECT count(*) FROM {t.name}")


def _t_list_col(rng, db):
    t = _pick(rng, db.tables)
    c = _pick(rng, [c for c in t.columns if c.kind in ("label", "cat", "num")])
    q = _pick(rng, (
        "List the {c} of all {p}.",
        "What is the {c} of each {s}?",
        "Show the {c} of every {s}.",
        "Give the {c} of all {p}.",
    ))
    return _Draft(q.format(c=c.name, p=t.plural, s=t.name), f"SELECT {c.name} FROM {t.name}")


def _t_filter_eq(rng, db):
    t = _one_table(rng, db, lambda t: _has_label(t) and _filter_cols(t))
    if t is None:
        return None
    c = _pick(rng, _filter_cols(t))
    v = _value(rng, t, c.name)
    q = _pick(rng, (
        "What are the {n}s of {p} whose {c} is {v}?",
        "List the {n} of the {p} with {c} {v}.",
        "Which {p} have {c} {v}? Give their {n}.",
        "Show the {n} of all {p} where {c} is {v}.",
        "Find the {n} of {p} whose {c} equals {v}.",
    ))
    return _Draft(q.format(n=t.label, p=t.plural, c=c.name, v=v), f"SELECT {t.label} FROM {t.name} WHERE {c.name} = {_q(v)}")


def _t_count_eq(rng, db):
    t = _one_table(rng, db, lambda t: _filter_cols(t))
    if t is None:
        return None
    c = _pick(rng, _filter_cols(t))
    v = _value(rng, t, c.name)
    q = _pick(rng, (
        "How many {p} have {c} {v}?",
        "Count the {p} whose {c} is {v}.",
        "What is the number of {p} with {c} {v}?",
        "How many {p} are there with {c} equal to {v}?",
    ))
    return _Draft(q.format(p=t.plural, c=c.name, v=v), f"SELECT count(*) FROM {t.name} WHERE {c.name} = {_q(v)}")


def _t_filter_cmp(rng, db):
    t = _one_table(rng, db, lambda t: _has_label(t) and _num_cols(t))
    if t is None:
        return None
    c = _pick(rng, _num_cols(t))
    k = _threshold(rng, t, c.name)
    op, word = _cmp(rng)
    q = _pick(rng, (
        "Which {p} have {c} {w} {k}? Give their {n}.",
        "List the {n} of {p} whose {c} is {w} {k}.",
        "Find the {n} of all {p} with {c} {w} {k}.",
        "What are the {n}s of the {p} with {c} {w} {k}?",
    ))
    return _Draft(q.format(p=t.plural, c=c.name, w=word, k=k, n=t.label),
                  f"SELECT {t.label} FROM {t.name} WHERE {c.name} {op} {k}")


def _t_agg(rng, db):
    t = _one_table(rng, db, lambda t: _num_cols(t))
    if t is None:
        return None
    c = _pick(rng, _num_cols(t))
    f = _agg(rng, c)
    q = _pick(rng, (
        "What is the {a} {c} of all {p}?",
        "Find the {a} {c} of the {p}.",
        "Give the {a} {c} over all {p}.",
    ))
    return _Draft(q.format(a=_pick(rng, _AGG_WORDS[f]), c=c.name, p=t.plural), f"SELECT {f}({c.name}) FROM {t.name}")


def _t_agg_filter(rng, db):
    t = _one_table(rng, db, lambda t: _num_cols(t) and _filter_cols(t))
    if t is None:
        return None
    c = _pick(rng, _num_cols(t))
    fc = _pick(rng, [x for x in _filter_cols(t) if x.name != c.name])
    if fc is None:
        return None
    v = _value(rng, t, fc.name)
    f = _agg(rng, c)
    q = _pick(rng, (
        "What is the {a} {c} of {p} whose {fc} is {v}?",
        "Find the {a} {c} of the {p} with {fc} {v}.",
        "For {p} with {fc} {v}, what is the {a} {c}?",
    ))
    return _Draft(q.format(a=_pick(rng, _AGG_WORDS[f]), c=c.name, p=t.plural, fc=fc.name, v=v),
                  f"SELECT {f}({c.name}) FROM {t.name} WHERE {fc.name} = {_q(v)}")


def _t_distinct(rng, db):
    t = _one_table(rng, db, lambda t: t.col("cat"))
    if t is None:
        return None
    c = _pick(rng, t.col("cat"))
    q = _pick(rng, (
        "What are the distinct {c} values of {p}?",
        "List the different {c} of the {p}.",
        "Show all distinct {c} of {p}.",
        "Which {c} values appear among the {p}?",
    ))
    return _Draft(q.format(c=c.name, p=t.plural), f"SELECT DISTINCT {c.name} FROM {t.name}")


def _t_count_distinct(rng, db):
    t = _one_table(rng, db, lambda t: t.col("cat"))
    if t is None:
        return None
    c = _pick(rng, t.col("cat"))
    q = _pick(rng, (
        "How many different {c} values do the {p} have?",
        "Count the distinct {c} of {p}.",
        "How many distinct {c} are there among the {p}?",
    ))
    return _Draft(q.format(c=c.name, p=t.plural), f"SELECT count(DISTINCT {c.name}) FROM {t.name}")


def _t_order_all(rng, db):
    t = _one_table(rng, db, lambda t: _has_label(t) and _num_cols(t, True))
    if t is None:
        return None
    c = _pick(rng, _num_cols(t, True))
    desc = rng.random() < 0.5
    if desc:
        q = _pick(rng, (
            "List the {n} of all {p} in descending order of {c}.",
            "Show the {n} of the {p}, ordered by {c} from highest to lowest.",
            "Sort the {p} by {c} in descending order and give their {n}.",
        ))
    else:
        q = _pick(rng, (
            "List the {n} of all {p} in ascending order of {c}.",
            "Show the {n} of the {p}, ordered by {c}.",
            "Sort the {p} by {c} from lowest to highest and give their {n}.",
        ))
    return _Draft(q.format(n=t.label, p=t.plural, c=c.name),
                  f"SELECT {t.label} FROM {t.name} ORDER BY {c.name}" + (" DESC" if desc else ""))


def _t_between(rng, db):
    t = _one_table(rng, db, lambda t: _has_label(t) and _num_cols(t))
    if t is None:
        return None
    c = _pick(rng, _num_cols(t))
    a, b = sorted((_threshold(rng, t, c.name), _threshold(rng, t, c.name)))
    q = _pick(rng, (
        "Which {p} have {c} between {a} and {b}? Give their {n}.",
        "List the {n} of {p} whose {c} is between {a} and {b}.",
        "Find the {n} of {p} with {c} from {a} to {b}.",
    ))
    return _Draft(q.format(p=t.plural, c=c.name, a=a, b=b, n=t.label),
                  f"SELECT {t.label} FROM {t.name} WHERE {c.name} BETWEEN {a} AND {b}")


def _t_having_count(rng, db):
    t = _one_table(rng, db, lambda t: t.col("cat"))
    if t is None:
        return None
    c = _pick(rng, t.col("cat"))
    counts = sorted({t.values(c.name).count(v) for v in t.values(c.name)})
    k = _pick(rng, counts[:-1]) if len(counts) > 1 else None
    if k is None:
        return None
    q = _pick(rng, (
        "Which {c} values have more than {k} {p}?",
        "List the {c} values shared by more than {k} {p}.",
        "Find each {c} with more than {k} {p}.",
    ))
    return _Draft(q.format(c=c.name, k=k, p=t.plural), f"SELECT {c.name} FROM {t.name} GROUP BY {c.name} HAVING count(*) > {k}")


# --- medium -----------------------------------------------------------------------------------


def _t_two_cols_filter(rng, db):
    t = _one_table(rng, db, lambda t: _has_label(t) and _num_cols(t) and _filter_cols(t))
    if t is None:
        return None
    x = _pick(rng, _num_cols(t))
    fc = _pick(rng, [c for c in _filter_cols(t) if c.name != x.name])
    if fc is None:
        return None
    v = _value(rng, t, fc.name)
    q = _pick(rng, (
        "What are the {n} and {x} of {p} whose {fc} is {v}?",
        "Show the {n} and {x} of the {p} with {fc} {v}.",
        "For {p} with {fc} {v}, list their {n} and {x}.",
    ))
    return _Draft(q.format(n=t.label, x=x.name, p=t.plural, fc=fc.name, v=v),
                  f"SELECT {t.label}, {x.name} FROM {t.name} WHERE {fc.name} = {_q(v)}")


def _t_group_count(rng, db):
    t = _one_table(rng, db, lambda t: t.col("cat"))
    if t is None:
        return None
    c = _pick(rng, t.col("cat"))
    q = _pick(rng, (
        "How many {p} are there for each {c}?",
        "Count the {p} for each {c}.",
        "Show each {c} and the number of {p} with it.",
        "For each {c}, how many {p} are there?",
    ))
    return _Draft(q.format(p=t.plural, c=c.name), f"SELECT {c.name}, count(*) FROM {t.name} GROUP BY {c.name}")


def _t_group_agg(rng, db):
    t = _one_table(rng, db, lambda t: t.col("cat") and _num_cols(t))
    if t is None:
        return None
    c = _pick(rng, t.col("cat"))
    x = _pick(rng, _num_cols(t))
    f = _agg(rng, x)
    q = _pick(rng, (
        "What is the {a} {x} of {p} for each {c}?",
        "For each {c}, find the {a} {x} of the {p}.",
        "Show each {c} together with the {a} {x} of its {p}.",
    ))
    return _Draft(q.format(a=_pick(rng, _AGG_WORDS[f]), x=x.name, p=t.plural, c=c.name),
                  f"SELECT {c.name}, {f}({x.name}) FROM {t.name} GROUP BY {c.name}")


def _t_top(rng, db):
    t = _one_table(rng, db, lambda t: _has_label(t) and _num_cols(t, True))
    if t is None:
        return None
    c = _pick(rng, _num_cols(t, True))
    desc = rng.random() < 0.6
    sup = _pick(rng, _HIGH if desc else _LOW)
    k = _pick(rng, (1, 1, 1, 3, 5))
    if k == 1:
        q = _pick(rng, (
            "Which {s} has the {sup} {c}? Give its {n}.",
            "What is the {n} of the {s} with the {sup} {c}?",
            "Find the {n} of the {s} whose {c} is the {sup}.",
        ))
    else:
        q = _pick(rng, (
            "List the {n} of the {k} {p} with the {sup} {c}.",
            "What are the {n}s of the top {k} {p} by {sup} {c}?",
            "Show the {n} of the {k} {p} that have the {sup} {c}.",
        ))
    return _Draft(q.format(s=t.name, sup=sup, c=c.name, n=t.label, k=k, p=t.plural),
                  f"SELECT {t.label} FROM {t.name} ORDER BY {c.name}" + (" DESC" if desc else "") + f" LIMIT {k}")


def _t_and_filter(rng, db):
    t = _one_table(rng, db, lambda t: _has_label(t) and _num_cols(t) and _filter_cols(t))
    if t is None:
        return None
    fc = _pick(rng, _filter_cols(t))
    x = _pick(rng, [c for c in _num_cols(t) if c.name != fc.name])
    if x is None:
        return None
    v = _value(rng, t, fc.name)
    k = _threshold(rng, t, x.name)
    op, word = _cmp(rng)
    q = _pick(rng, (
        "Which {p} have {fc} {v} and {x} {w} {k}? Give their {n}.",
        "List the {n} of {p} whose {fc} is {v} and whose {x} is {w} {k}.",
        "Find the {n} of the {p} with {fc} {v} and {x} {w} {k}.",
    ))
    return _Draft(q.format(p=t.plural, fc=fc.name, v=v, x=x.name, w=word, k=k, n=t.label),
                  f"SELECT {t.label} FROM {t.name} WHERE {fc.name} = {_q(v)} AND {x.name} {op} {k}")


def _t_or_filter(rng, db):
    t = _one_table(rng, db, lambda t: _has_label(t) and t.col("cat"))
    if t is None:
        return None
    c = _pick(rng, t.col("cat"))
    vals = sorted(set(t.values(c.name)))
    if len(vals) < 2:
        return None
    v1, v2 = rng.sample(vals, 2)
    q = _pick(rng, (
        "Which {p} have {c} {a} or {b}? Give their {n}.",
        "List the {n} of {p} whose {c} is {a} or {b}.",
        "Find the {n} of the {p} with {c} either {a} or {b}.",
    ))
    return _Draft(q.format(p=t.plural, c=c.name, a=v1, b=v2, n=t.label),
                  f"SELECT {t.label} FROM {t.name} WHERE {c.name} = {_q(v1)} OR {c.name} = {_q(v2)}")


def _t_like(rng, db):
    t = _one_table(rng, db, _has_label)
    if t is None:
        return None
    word = _pick(rng, _value(rng, t, t.label).split())
    q = _pick(rng, (
        "Which {p} have {w} in their {n}?",
        "List the {n} of {p} whose {n} contains {w}.",
        "Find all {p} with {w} in the {n}. Give the {n}.",
    ))
    return _Draft(q.format(p=t.plural, w=word, n=t.label), f"SELECT {t.label} FROM {t.name} WHERE {t.label} LIKE '%{word}%'")


def _t_maxmin(rng, db):
    t = _one_table(rng, db, lambda t: _num_cols(t))
    if t is None:
        return None
    c = _pick(rng, _num_cols(t))
    q = _pick(rng, (
        "What are the maximum and minimum {c} of all {p}?",
        "Find the highest and the lowest {c} of the {p}.",
        "Show the largest and smallest {c} among {p}.",
    ))
    return _Draft(q.format(c=c.name, p=t.plural), f"SELECT max({c.name}), min({c.name}) FROM {t.name}")


def _join(p: _Table, c: _Table, fk: str) -> str:
    return f"FROM {p.name} AS T1 JOIN {c.name} AS T2 ON T1.{p.pk} = T2.{fk}"


def _t_join_filter(rng, db):
    link = _link(rng, db, lambda p, c: _has_label(p) and _filter_cols(c))
    if link is None:
        return None
    p, c, fk = link
    fc = _pick(rng, _filter_cols(c))
    v = _value(rng, c, fc.name)
    q = _pick(rng, (
        "Which {pp} have a {cs} with {fc} {v}? Give their {n}.",
        "List the distinct {n} of {pp} that have {cp} whose {fc} is {v}.",
        "Find the {n} of the {pp} with at least one {cs} with {fc} {v}.",
    ))
    return _Draft(q.format(pp=p.plural, cs=c.name, cp=c.plural, fc=fc.name, v=v, n=p.label),
                  f"SELECT DISTINCT T1.{p.label} {_join(p, c, fk)} WHERE T2.{fc.name} = {_q(v)}")


def _t_join_pair(rng, db):
    link = _link(rng, db, lambda p, c: _has_label(p) and (_has_label(c) or _num_cols(c)))
    if link is None:
        return None
    p, c, fk = link
    cc = c.label or _pick(rng, _num_cols(c)).name
    q = _pick(rng, (
        "Show the {cc} of each {cs} together with the {n} of its {ps}.",
        "For every {cs}, list its {cc} and the {n} of the {ps}.",
        "List the {cc} of all {cp} and the {n} of their {ps}.",
    ))
    return _Draft(q.format(cc=cc, cs=c.name, cp=c.plural, n=p.label, ps=p.name),
                  f"SELECT T2.{cc}, T1.{p.label} {_join(p, c, fk)}")


def _t_join_group_count(rng, db):
    link = _link(rng, db, lambda p, c: _has_label(p))
    if link is None:
        return None
    p, c, fk = link
    q = _pick(rng, (
        "How many {cp} does each {ps} have? Show the {n} and the count.",
        "For each {ps}, give its {n} and the number of {cp}.",
        "List the {n} of every {ps} with at least one {cs}, and how many {cp} it has.",
    ))
    return _Draft(q.format(cp=c.plural, cs=c.name, ps=p.name, n=p.label),
                  f"SELECT T1.{p.label}, count(*) {_join(p, c, fk)} GROUP BY T1.{p.pk}")


def _t_join_having(rng, db):
    link = _link(rng, db, lambda p, c: _has_label(p))
    if link is None:
        return None
    p, c, fk = link
    fks = c.values(fk)
    counts = sorted({fks.count(x) for x in fks})
    k = _pick(rng, counts[1:]) if len(counts) > 1 else None
    if k is None:
        return None
    q = _pick(rng, (
        "Which {pp} have at least {k} {cp}? Give their {n}.",
        "List the {n} of {pp} with {k} or more {cp}.",
        "Find the {n} of every {ps} that has at least {k} {cp}.",
    ))
    return _Draft(q.format(pp=p.plural, ps=p.name, k=k, cp=c.plural, n=p.label),
                  f"SELECT T1.{p.label} {_join(p, c, fk)} GROUP BY T1.{p.pk} HAVING count(*) >= {k}")


def _t_join_agg_filter(rng, db):
    link = _link(rng, db, lambda p, c: _filter_cols(p) and _num_cols(c))
    if link is None:
        return None
    p, c, fk = link
    fc = _pick(rng, _filter_cols(p))
    v = _value(rng, p, fc.name)
    x = _pick(rng, _num_cols(c))
    f = _agg(rng, x)
    q = _pick(rng, (
        "What is the {a} {x} of {cp} whose {ps} has {fc} {v}?",
        "Find the {a} {x} of the {cp} of {pp} with {fc} {v}.",
        "For {cp} of a {ps} whose {fc} is {v}, what is the {a} {x}?",
    ))
    return _Draft(q.format(a=_pick(rng, _AGG_WORDS[f]), x=x.name, cp=c.plural, ps=p.name, pp=p.plural, fc=fc.name, v=v),
                  f"SELECT {f}(T2.{x.name}) {_join(p, c, fk)} WHERE T1.{fc.name} = {_q(v)}")


def _t_join_by_name(rng, db):
    link = _link(rng, db, lambda p, c: _has_label(p) and [x for x in c.columns if x.kind in ("label", "cat", "num")])
    if link is None:
        return None
    p, c, fk = link
    col = _pick(rng, [x for x in c.columns if x.kind in ("label", "cat", "num")])
    name = _pick(rng, sorted(set(p.values(p.label)) & {p.values(p.label)[p.values(p.pk).index(i)] for i in c.values(fk)}))
    q = _pick(rng, (
        "What is the {col} of the {cp} of the {ps} whose {n} is {name}?",
        "List the {col} of all {cp} whose {ps} has {n} {name}.",
        "Show the {col} of the {cp} that belong to the {ps} with {n} {name}.",
    ))
    return _Draft(q.format(col=col.name, cp=c.plural, ps=p.name, name=name, n=p.label),
                  f"SELECT T2.{col.name} {_join(p, c, fk)} WHERE T1.{p.label} = {_q(name)}")


def _t_filter_order(rng, db):
    t = _one_table(rng, db, lambda t: _has_label(t) and _num_cols(t, True) and _filter_cols(t))
    if t is None:
        return None
    fc = _pick(rng, _filter_cols(t))
    x = _pick(rng, _num_cols(t, True))
    v = _value(rng, t, fc.name)
    desc = rng.random() < 0.5
    order = "in descending order of" if desc else "in ascending order of"
    q = _pick(rng, (
        "List the {n} of {p} whose {fc} is {v}, {o} {x}.",
        "Show the {n} of the {p} with {fc} {v} {o} {x}.",
    ))
    return _Draft(q.format(n=t.label, p=t.plural, fc=fc.name, v=v, o=order, x=x.name),
                  f"SELECT {t.label} FROM {t.name} WHERE {fc.name} = {_q(v)} ORDER BY {x.name}" + (" DESC" if desc else ""))


# --- hard -------------------------------------------------------------------------------------


def _t_above_avg(rng, db):
    t = _one_table(rng, db, lambda t: _has_label(t) and _num_cols(t))
    if t is None:
        return None
    x = _pick(rng, _num_cols(t))
    above = rng.random() < 0.6
    word = _pick(rng, ("above", "greater than", "higher than") if above else ("below", "less than", "lower than"))
    q = _pick(rng, (
        "Which {p} have {x} {w} the average {x}? Give their {n}.",
        "List the {n} of {p} whose {x} is {w} the average {x} of all {p}.",
        "Find the {n} of the {p} with {x} {w} average.",
    ))
    return _Draft(q.format(p=t.plural, x=x.name, w=word, n=t.label),
                  f"SELECT {t.label} FROM {t.name} WHERE {x.name} {'>' if above else '<'} (SELECT avg({x.name}) FROM {t.name})")


def _t_not_in(rng, db):
    link = _link(rng, db, lambda p, c: _has_label(p))
    if link is None:
        return None
    p, c, fk = link
    q = _pick(rng, (
        "Which {pp} have no {cp}? Give their {n}.",
        "List the {n} of {pp} that do not have any {cs}.",
        "Find the {n} of every {ps} without {cp}.",
    ))
    return _Draft(q.format(pp=p.plural, ps=p.name, cp=c.plural, cs=c.name, n=p.label),
                  f"SELECT {p.label} FROM {p.name} WHERE {p.pk} NOT IN (SELECT {fk} FROM {c.name})")


def _t_count_not_in(rng, db):
    link = _link(rng, db)
    if link is None:
        return None
    p, c, fk = link
    q = _pick(rng, (
        "How many {pp} have no {cp}?",
        "Count the {pp} that do not have any {cs}.",
        "What is the number of {pp} without {cp}?",
    ))
    return _Draft(q.format(pp=p.plural, cp=c.plural, cs=c.name),
                  f"SELECT count(*) FROM {p.name} WHERE {p.pk} NOT IN (SELECT {fk} FROM {c.name})")


def _t_in_sub(rng, db):
    link = _link(rng, db, lambda p, c: _has_label(p) and _num_cols(c))
    if link is None:
        return None
    p, c, fk = link
    x = _pick(rng, _num_cols(c))
    k = _threshold(rng, c, x.name)
    op, word = _cmp(rng)
    q = _pick(rng, (
        "Which {pp} have some {cs} with {x} {w} {k}? Give their {n}.",
        "List the {n} of {pp} that have a {cs} whose {x} is {w} {k}.",
        "Find the {n} of every {ps} with at least one {cs} with {x} {w} {k}.",
    ))
    return _Draft(q.format(pp=p.plural, ps=p.name, cs=c.name, x=x.name, w=word, k=k, n=p.label),
                  f"SELECT {p.label} FROM {p.name} WHERE {p.pk} IN (SELECT {fk} FROM {c.name} WHERE {x.name} {op} {k})")


def _t_intersect_cat(rng, db):
    t = _one_table(rng, db, lambda t: t.col("cat") and _num_cols(t))
    if t is None:
        return None
    c = _pick(rng, t.col("cat"))
    x = _pick(rng, _num_cols(t))
    k1, k2 = _threshold(rng, t, x.name), _threshold(rng, t, x.name)
    q = _pick(rng, (
        "Which {c} values have both {p} with {x} above {a} and {p} with {x} below {b}?",
        "Find the {c} that has some {s} with {x} greater than {a} and also some {s} with {x} less than {b}.",
        "List each {c} shared by {p} whose {x} is above {a} and {p} whose {x} is below {b}.",
    ))
    return _Draft(q.format(c=c.name, p=t.plural, s=t.name, x=x.name, a=k1, b=k2),
                  f"SELECT {c.name} FROM {t.name} WHERE {x.name} > {k1} INTERSECT SELECT {c.name} FROM {t.name} WHERE {x.name} < {k2}")


def _t_union(rng, db):
    t = _one_table(rng, db, lambda t: _has_label(t) and _num_cols(t) and _filter_cols(t))
    if t is None:
        return None
    fc = _pick(rng, _filter_cols(t))
    x = _pick(rng, [c for c in _num_cols(t) if c.name != fc.name])
    if x is None:
        return None
    v = _value(rng, t, fc.name)
    k = _threshold(rng, t, x.name)
    q = _pick(rng, (
        "List the {n} of {p} whose {fc} is {v}, together with the {n} of {p} whose {x} is above {k}.",
        "Find the {n} of all {p} that either have {fc} {v} or have {x} greater than {k}. Use a union.",
        "Show the union of the {n} of {p} with {fc} {v} and the {n} of {p} with {x} above {k}.",
    ))
    return _Draft(q.format(n=t.label, p=t.plural, fc=fc.name, v=v, x=x.name, k=k),
                  f"SELECT {t.label} FROM {t.name} WHERE {fc.name} = {_q(v)} UNION SELECT {t.label} FROM {t.name} WHERE {x.name} > {k}")


def _t_except_cat(rng, db):
    t = _one_table(rng, db, lambda t: t.col("cat") and _num_cols(t))
    if t is None:
        return None
    c = _pick(rng, t.col("cat"))
    x = _pick(rng, _num_cols(t))
    k = _threshold(rng, t, x.name)
    q = _pick(rng, (
        "Which {c} values have no {p} with {x} above {k}?",
        "List the {c} values of {p}, except those that have some {s} with {x} greater than {k}.",
        "Find each {c} for which no {s} has {x} above {k}.",
    ))
    return _Draft(q.format(c=c.name, p=t.plural, s=t.name, x=x.name, k=k),
                  f"SELECT {c.name} FROM {t.name} EXCEPT SELECT {c.name} FROM {t.name} WHERE {x.name} > {k}")


def _t_group_top(rng, db):
    t = _one_table(rng, db, lambda t: t.col("cat"))
    if t is None:
        return None
    c = _pick(rng, t.col("cat"))
    most = rng.random() < 0.7
    word = _pick(rng, ("the most", "the largest number of") if most else ("the fewest", "the smallest number of"))
    d = " DESC" if most else ""
    q = _pick(rng, (
        "Which {c} has {w} {p}?",
        "Find the {c} with {w} {p}.",
        "What is the {c} shared by {w} {p}?",
    ))
    return _Draft(q.format(c=c.name, w=word, p=t.plural),
                  f"SELECT {c.name} FROM {t.name} GROUP BY {c.name} ORDER BY count(*){d} LIMIT 1",
                  key_sql=f"SELECT count(*) FROM {t.name} GROUP BY {c.name} ORDER BY count(*){d} LIMIT 2", key_rows=2)


def _t_join_filter_order(rng, db):
    link = _link(rng, db, lambda p, c: _filter_cols(p) and (_has_label(c) or c.col("cat")) and _num_cols(c, True))
    if link is None:
        return None
    p, c, fk = link
    fc = _pick(rng, _filter_cols(p))
    v = _value(rng, p, fc.name)
    show = c.label or _pick(rng, c.col("cat")).name
    x = _pick(rng, _num_cols(c, True))
    desc = rng.random() < 0.5
    order = "in descending order of" if desc else "in ascending order of"
    q = _pick(rng, (
        "List the {show} of {cp} whose {ps} has {fc} {v}, {o} {x}.",
        "Show the {show} of all {cp} of {pp} with {fc} {v}, {o} {x}.",
    ))
    return _Draft(q.format(show=show, cp=c.plural, ps=p.name, pp=p.plural, fc=fc.name, v=v, o=order, x=x.name),
                  f"SELECT T2.{show} {_join(p, c, fk)} WHERE T1.{fc.name} = {_q(v)} ORDER BY T2.{x.name}" + (" DESC" if desc else ""))


def _t_except_join(rng, db):
    link = _link(rng, db, lambda p, c: _has_label(p) and _filter_cols(c))
    if link is None:
        return None
    p, c, fk = link
    fc = _pick(rng, _filter_cols(c))
    v = _value(rng, c, fc.name)
    q = _pick(rng, (
        "Which {pp} have no {cs} with {fc} {v}? Give their {n}.",
        "List the {n} of {pp} except those that have a {cs} whose {fc} is {v}.",
        "Find the {n} of {pp} that do not have any {cp} with {fc} {v}.",
    ))
    return _Draft(q.format(pp=p.plural, cs=c.name, cp=c.plural, fc=fc.name, v=v, n=p.label),
                  f"SELECT {p.label} FROM {p.name} EXCEPT SELECT T1.{p.label} {_join(p, c, fk)} WHERE T2.{fc.name} = {_q(v)}")


def _t_top_filter(rng, db):
    t = _one_table(rng, db, lambda t: _has_label(t) and _num_cols(t, True) and _filter_cols(t))
    if t is None:
        return None
    fc = _pick(rng, _filter_cols(t))
    x = _pick(rng, _num_cols(t, True))
    v = _value(rng, t, fc.name)
    desc = rng.random() < 0.6
    sup = _pick(rng, _HIGH if desc else _LOW)
    q = _pick(rng, (
        "Among {p} with {fc} {v}, which one has the {sup} {x}? Give its {n}.",
        "What is the {n} of the {s} with the {sup} {x} among those whose {fc} is {v}?",
        "Find the {n} of the {s} whose {fc} is {v} and whose {x} is the {sup}.",
    ))
    return _Draft(q.format(p=t.plural, s=t.name, fc=fc.name, v=v, sup=sup, x=x.name, n=t.label),
                  f"SELECT {t.label} FROM {t.name} WHERE {fc.name} = {_q(v)} ORDER BY {x.name}" + (" DESC" if desc else "") + " LIMIT 1")


# --- extra ------------------------------------------------------------------------------------


def _t_join_group_top(rng, db):
    link = _link(rng, db, lambda p, c: _has_label(p))
    if link is None:
        return None
    p, c, fk = link
    q = _pick(rng, (
        "Which {ps} has the most {cp}? Give its {n}.",
        "What is the {n} of the {ps} with the largest number of {cp}?",
        "Find the {n} of the {ps} that has the most {cp}.",
    ))
    return _Draft(q.format(ps=p.name, cp=c.plural, n=p.label),
                  f"SELECT T1.{p.label} {_join(p, c, fk)} GROUP BY T1.{p.pk} ORDER BY count(*) DESC LIMIT 1",
                  key_sql=f"SELECT count(*) {_join(p, c, fk)} GROUP BY T1.{p.pk} ORDER BY count(*) DESC LIMIT 2", key_rows=2)


def _t_join_sum_top(rng, db):
    link = _link(rng, db, lambda p, c: _has_label(p) and [x for x in _num_cols(c) if x.name not in _YEAR_LIKE])
    if link is None:
        return None
    p, c, fk = link
    x = _pick(rng, [x for x in _num_cols(c) if x.name not in _YEAR_LIKE])
    q = _pick(rng, (
        "Which {ps} has the highest total {x} over its {cp}? Give its {n}.",
        "What is the {n} of the {ps} whose {cp} have the largest total {x}?",
        "Find the {n} of the {ps} with the greatest sum of {x} of its {cp}.",
    ))
    return _Draft(q.format(ps=p.name, cp=c.plural, x=x.name, n=p.label),
                  f"SELECT T1.{p.label} {_join(p, c, fk)} GROUP BY T1.{p.pk} ORDER BY sum(T2.{x.name}) DESC LIMIT 1",
                  key_sql=f"SELECT sum(T2.{x.name}) {_join(p, c, fk)} GROUP BY T1.{p.pk} ORDER BY sum(T2.{x.name}) DESC LIMIT 2",
                  key_rows=2)


def _t_intersect_join(rng, db):
    link = _link(rng, db, lambda p, c: _has_label(p) and c.col("cat"))
    if link is None:
        return None
    p, c, fk = link
    fc = _pick(rng, c.col("cat"))
    vals = sorted(set(c.values(fc.name)))
    if len(vals) < 2:
        return None
    v1, v2 = rng.sample(vals, 2)
    q = _pick(rng, (
        "Which {pp} have both a {cs} with {fc} {a} and a {cs} with {fc} {b}? Give their {n}.",
        "List the {n} of {pp} that have {cp} with {fc} {a} and also {cp} with {fc} {b}.",
        "Find the {n} of every {ps} with some {cs} whose {fc} is {a} and some whose {fc} is {b}.",
    ))
    sub = f"SELECT T1.{p.label} {_join(p, c, fk)} WHERE T2.{fc.name} = "
    return _Draft(q.format(pp=p.plural, ps=p.name, cs=c.name, cp=c.plural, fc=fc.name, a=v1, b=v2, n=p.label),
                  f"{sub}{_q(v1)} INTERSECT {sub}{_q(v2)}")


def _t_above_avg_order(rng, db):
    t = _one_table(rng, db, lambda t: _has_label(t) and _num_cols(t, True))
    if t is None:
        return None
    x = _pick(rng, _num_cols(t, True))
    desc = rng.random() < 0.5
    q = _pick(rng, (
        "List the {n} of {p} whose {x} is above the average {x}, {o} {x}.",
        "Which {p} have {x} greater than the average? Give their {n} {o} {x}.",
    ))
    return _Draft(q.format(n=t.label, p=t.plural, x=x.name, o="in descending order of" if desc else "in ascending order of"),
                  f"SELECT {t.label} FROM {t.name} WHERE {x.name} > (SELECT avg({x.name}) FROM {t.name}) ORDER BY {x.name}"
                  + (" DESC" if desc else ""))


def _t_eq_above_avg(rng, db):
    t = _one_table(rng, db, lambda t: _has_label(t) and _num_cols(t) and _filter_cols(t))
    if t is None:
        return None
    fc = _pick(rng, _filter_cols(t))
    x = _pick(rng, [c for c in _num_cols(t) if c.name != fc.name])
    if x is None:
        return None
    v = _value(rng, t, fc.name)
    q = _pick(rng, (
        "Which {p} have {fc} {v} and {x} above the average {x} of all {p}? Give their {n}.",
        "List the {n} of {p} whose {fc} is {v} and whose {x} is greater than the average {x}.",
    ))
    return _Draft(q.format(p=t.plural, fc=fc.name, v=v, x=x.name, n=t.label),
                  f"SELECT {t.label} FROM {t.name} WHERE {fc.name} = {_q(v)} AND {x.name} > (SELECT avg({x.name}) FROM {t.name})")


def _t_not_in_filter(rng, db):
    link = _link(rng, db, lambda p, c: _has_label(p) and _filter_cols(p))
    if link is None:
        return None
    p, c, fk = link
    fc = _pick(rng, _filter_cols(p))
    v = _value(rng, p, fc.name)
    q = _pick(rng, (
        "Which {pp} with {fc} {v} have no {cp}? Give their {n}.",
        "List the {n} of {pp} whose {fc} is {v} and that do not have any {cs}.",
    ))
    return _Draft(q.format(pp=p.plural, fc=fc.name, v=v, cp=c.plural, cs=c.name, n=p.label),
                  f"SELECT {p.label} FROM {p.name} WHERE {fc.name} = {_q(v)} AND {p.pk} NOT IN (SELECT {fk} FROM {c.name})")


def _t_join_where_group_top(rng, db):
    link = _link(rng, db, lambda p, c: _has_label(p) and _filter_cols(c))
    if link is None:
        return None
    p, c, fk = link
    fc = _pick(rng, _filter_cols(c))
    v = _value(rng, c, fc.name)
    q = _pick(rng, (
        "Which {ps} has the most {cp} with {fc} {v}? Give its {n}.",
        "Find the {n} of the {ps} with the largest number of {cp} whose {fc} is {v}.",
    ))
    body = f"{_join(p, c, fk)} WHERE T2.{fc.name} = {_q(v)} GROUP BY T1.{p.pk} ORDER BY count(*) DESC"
    return _Draft(q.format(ps=p.name, cp=c.plural, fc=fc.name, v=v, n=p.label),
                  f"SELECT T1.{p.label} {body} LIMIT 1", key_sql=f"SELECT count(*) {body} LIMIT 2", key_rows=2)


def _t_group_having_order(rng, db):
    t = _one_table(rng, db, lambda t: t.col("cat"))
    if t is None:
        return None
    c = _pick(rng, t.col("cat"))
    counts = sorted({t.values(c.name).count(v) for v in t.values(c.name)})
    k = _pick(rng, counts[:-1]) if len(counts) > 1 else None
    if k is None:
        return None
    q = _pick(rng, (
        "For each {c} with more than {k} {p}, show the {c} and the number of {p}, from the most to the fewest.",
        "List the {c} values that have more than {k} {p} with their counts, in descending order of the count.",
    ))
    body = f"FROM {t.name} GROUP BY {c.name} HAVING count(*) > {k} ORDER BY count(*) DESC"
    return _Draft(q.format(c=c.name, k=k, p=t.plural), f"SELECT {c.name}, count(*) {body}",
                  key_sql=f"SELECT count(*) {body}", key_rows=0)


#: (template, intended Spider level, weight). The level only steers sampling; the hardness written
#: to the records is the one sqlcoach.sql.hardness computes.
_TEMPLATES: tuple[tuple[Callable[[random.Random, _Db], _Draft | None], str, float], ...] = (
    (_t_count_all, "easy", 0.6),
    (_t_list_col, "easy", 0.5),
    (_t_filter_eq, "easy", 1.2),
    (_t_count_eq, "easy", 1.0),
    (_t_filter_cmp, "easy", 1.2),
    (_t_agg, "easy", 1.0),
    (_t_agg_filter, "easy", 0.8),
    (_t_distinct, "easy", 0.5),
    (_t_count_distinct, "easy", 0.4),
    (_t_order_all, "easy", 0.8),
    (_t_between, "easy", 0.6),
    (_t_having_count, "easy", 0.6),

    (_t_two_cols_filter, "medium", 1.0),
    (_t_group_count, "medium", 1.0),
    (_t_group_agg, "medium", 0.8),
    (_t_top, "medium", 1.2),
    (_t_and_filter, "medium", 1.0),
    (_t_or_filter, "medium", 0.7),
    (_t_like, "medium", 0.7),
    (_t_maxmin, "medium", 0.5),
    (_t_join_filter, "medium", 1.2),
    (_t_join_pair, "medium", 0.8),
    (_t_join_group_count, "medium", 0.8),
    (_t_join_having, "medium", 0.8),
    (_t_join_agg_filter, "medium", 0.8),
    (_t_join_by_name, "medium", 0.8),
    (_t_filter_order, "medium", 0.8),

    (_t_above_avg, "hard", 1.0),
    (_t_not_in, "hard", 1.0),
    (_t_count_not_in, "hard", 0.6),
    (_t_in_sub, "hard", 0.8),
    (_t_intersect_cat, "hard", 0.6),
    (_t_union, "hard", 0.6),
    (_t_except_cat, "hard", 0.6),
    (_t_group_top, "hard", 0.8),
    (_t_join_filter_order, "hard", 0.8),
    (_t_except_join, "hard", 0.7),
    (_t_top_filter, "hard", 0.8),

    (_t_join_group_top, "extra", 1.0),
    (_t_join_sum_top, "extra", 0.7),
    (_t_intersect_join, "extra", 0.8),
    (_t_above_avg_order, "extra", 0.7),
    (_t_eq_above_avg, "extra", 0.8),
    (_t_not_in_filter, "extra", 0.8),
    (_t_join_where_group_top, "extra", 0.8),
    (_t_group_having_order, "extra", 0.5),
)
#: Share of questions drawn per intended level (close to Spider dev's 24/43/17/17 %).
_LEVEL_SHARE = {"easy": 0.25, "medium": 0.40, "hard": 0.18, "extra": 0.17}


# ---------------------------------------------------------------------------------------------
# Checking golds, tokens, hardness.
# ---------------------------------------------------------------------------------------------


def _run(con: sqlite3.Connection, sql: str) -> list[tuple] | None:
    try:
        return con.execute(sql).fetchall()
    except sqlite3.Error:
        return None


def _accept(con: sqlite3.Connection, d: _Draft) -> list[tuple] | None:
    """The gold's rows when it runs, answers with some non-NULL value, and has no ordering tie."""
    rows = _run(con, d.sql)
    if not rows or all(v is None for r in rows for v in r) or len(rows) > 300:
        return None
    if d.key_sql is not None:
        keys = _run(con, d.key_sql)
        if keys is None:
            return None
        keys = [r[0] for r in keys]
        head = keys if d.key_rows == 0 else keys[: d.key_rows]
        if len(set(head)) != len(head):
            return None
    return rows


_QUESTION_TOK = re.compile(r"\w+|[^\w\s]")
_SQL_TOK = re.compile(r"'(?:[^']|'')*'|\d+(?:\.\d+)?|[A-Za-z_][\w]*(?:\.[\w*]+)?|!=|>=|<=|<>|\S")


def _query_toks(sql: str) -> list[str]:
    return _SQL_TOK.findall(sql)


def _query_toks_no_value(sql: str) -> list[str]:
    out = []
    for tok in _query_toks(sql):
        if tok.startswith("'") or re.fullmatch(r"\d+(?:\.\d+)?", tok):
            out.append("value")
        else:
            out.append(tok.lower())
    return out


def _hardness_fn() -> Callable[[str], str] | None:
    """sqlcoach's Spider hardness function, when that module is installed in this checkout."""
    try:
        from sqlcoach.sql.hardness import hardness
    except ImportError:
        return None
    return hardness


def _safe_hardness(fn: Callable[[str], str] | None, sql: str) -> str | None:
    if fn is None:
        return None
    try:
        level = fn(sql)
    except Exception:  # noqa: BLE001 - another module's failure must not stop the build
        return None
    return level if isinstance(level, str) else None


_SHAPE_WORDS = frozenset(
    "select from where join as on and or not in like between group by having order limit desc asc "
    "distinct intersect union except count avg max min sum".split()
)


def _shape(sql: str) -> str:
    """The SQL with names and literals blanked: ``SELECT c FROM c WHERE c = 'v' LIMIT 1``.

    Spider's hardness counts clauses, joins, conditions, aggregates and nesting, none of which
    depends on which table, column or value is named; two golds with one shape share one level.
    """
    out = []
    for tok in _query_toks(sql):
        if tok.startswith("'"):
            out.append("'v'")
        elif tok[0].isdigit():
            out.append("1")
        elif tok[0].isalpha() or tok[0] == "_":
            out.append(tok.upper() if tok.lower() in _SHAPE_WORDS else "c")
        else:
            out.append(tok)
    return " ".join(out)


class _CachedHardness:
    """``hardness(sql)`` computed once per SQL shape: parsing every gold with sqlglot was most of
    the build time, and the world has a few hundred shapes for thousands of golds. A unit test
    checks that every record's level equals the uncached function's."""

    def __init__(self, fn: Callable[[str], str] | None):
        self.fn = fn
        self.cache: dict[str, str | None] = {}

    def __call__(self, sql: str) -> str | None:
        key = _shape(sql)
        if key not in self.cache:
            self.cache[key] = _safe_hardness(self.fn, sql)
        return self.cache[key]


def _answer_kind(sql: str, rows: list[tuple]) -> str:
    if " ORDER BY " in sql and not sql.endswith(" LIMIT 1"):
        return "ordered"
    if len(rows) == 1 and len(rows[0]) == 1 and isinstance(rows[0][0], (int, float)):
        return "number"
    return "list"


# ---------------------------------------------------------------------------------------------
# Building.
# ---------------------------------------------------------------------------------------------


def _questions_for(db: _Db, con: sqlite3.Connection, n: int, seed: int, max_same_sql: int,
                   hardness: Callable[[str], str | None]) -> list[dict[str, Any]]:
    """``n`` distinct questions over ``db`` (fewer only when the templates run out of slots)."""
    rng = random.Random(f"sqlcoach-world-q:{seed}:{db.db_id}")
    levels = list(_LEVEL_SHARE)
    by_level = {lv: [(f, w) for f, level, w in _TEMPLATES if level == lv] for lv in levels}
    seen_q: set[str] = set()
    sql_uses: dict[str, int] = {}
    out: list[dict[str, Any]] = []
    attempts = 0
    while len(out) < n and attempts < n * 40:
        attempts += 1
        level = rng.choices(levels, weights=[_LEVEL_SHARE[lv] for lv in levels])[0]
        funcs, weights = zip(*by_level[level])
        make = rng.choices(funcs, weights=weights)[0]
        d = make(rng, db)
        if d is None or d.question in seen_q or sql_uses.get(d.sql, 0) >= max_same_sql:
            continue
        rows = _accept(con, d)
        if rows is None:
            continue
        seen_q.add(d.question)
        sql_uses[d.sql] = sql_uses.get(d.sql, 0) + 1
        level_found = hardness(d.sql)
        out.append({
            "db_id": db.db_id,
            "question": d.question,
            "question_toks": _QUESTION_TOK.findall(d.question),
            "query": d.sql,
            "query_toks": _query_toks(d.sql),
            "query_toks_no_value": _query_toks_no_value(d.sql),
            "hardness": level_found,
            "difficulty": level_found,
            "answer_kind": _answer_kind(d.sql, rows),
            "template": make.__name__.removeprefix("_t_"),
        })
    return out


def _split_counts(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _check_target(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise DataError("exists and is not a directory", str(out))
    if out.is_dir() and any(out.iterdir()) and not (out / "world.json").is_file() and not force:
        raise DataError("is a non-empty directory that holds no world (no world.json); "
                        "pass --force (force=True) to replace it", str(out))


def build_world(out_dir: str | os.PathLike, seed: int = 0, *, n_train: int | None = None,
                n_dev: int | None = None, progress: bool = True, force: bool = False) -> dict[str, Any]:
    """Generate the demo world into ``out_dir`` and return its statistics.

    Guarantees (see the module docstring): deterministic in (seed, n_train, n_dev); dev
    databases (``DEV_DB_IDS``) disjoint from train ones; every gold runs and returns a non-empty,
    tie-free result. ``n_train``/``n_dev`` default to 4000/600 questions, spread evenly over the
    split's databases. ``out_dir`` may be absent, empty or an earlier world: the new world is
    built complete beside it and then renamed into place. Another non-empty directory raises
    ``DataError`` unless ``force``.

    Returns ``{"version", "seed", "databases": {split: [db_id]}, "questions": {split: n},
    "requested": {split: n}, "hardness": {split: {level: n}}, "hardness_scored": bool,
    "templates": {name: n}, "tables": n, "rows": n, "seconds": s}``, also written to
    ``OUT/world.json`` without ``seconds`` so that the file is reproducible. Levels are counted
    as ``unscored`` when ``sqlcoach.sql.hardness`` is missing or cannot score a gold.
    """
    start = time.perf_counter()
    seed = int(seed)
    n_train = DEFAULT_N_TRAIN if n_train is None else int(n_train)
    n_dev = DEFAULT_N_DEV if n_dev is None else int(n_dev)
    if n_train < 0 or n_dev < 0:
        raise DataError(f"question counts must be >= 0 (n_train={n_train}, n_dev={n_dev})")
    out = Path(out_dir)
    _check_target(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.building-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    hardness_fn = _hardness_fn()
    hardness = _CachedHardness(hardness_fn)
    try:
        tables_json: list[dict[str, Any]] = []
        records: dict[str, list[dict[str, Any]]] = {"train": [], "dev": []}
        n_tables = n_rows = 0
        for split, ids, total, max_same in (("train", TRAIN_DB_IDS, n_train, 2), ("dev", DEV_DB_IDS, n_dev, 1)):
            for db_id, quota in zip(ids, _split_counts(total, len(ids))):
                db = _make_db(db_id, _DOMAINS[db_id], seed)
                path = tmp / "database" / db_id / f"{db_id}.sqlite"
                _write_sqlite(db, path)
                tables_json.append(_tables_entry(db))
                n_tables += len(db.tables)
                n_rows += sum(len(t.rows) for t in db.tables)
                con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
                try:
                    qs = _questions_for(db, con, quota, seed, max_same, hardness)
                finally:
                    con.close()
                records[split].extend(qs)
                if len(qs) < quota:
                    # Only when the templates run out of distinct questions for this database.
                    print(f"world: warning: {db_id}: {len(qs)} of {quota} questions", file=sys.stderr)
                if progress:
                    print(f"world: {split:5s} {db_id:12s} {len(db.tables)} tables "
                          f"{sum(len(t.rows) for t in db.tables):4d} rows {len(qs):4d} questions", file=sys.stderr)
        stats = _stats(seed, records, n_tables, n_rows, hardness_fn is not None)
        stats["requested"] = {"train": n_train, "dev": n_dev}
        _dump(tmp / "tables.json", tables_json)
        for split in ("train", "dev"):
            _dump(tmp / f"{split}.json", records[split])
            (tmp / f"{split}_gold.sql").write_text(
                "".join(f"{r['query']}\t{r['db_id']}\n" for r in records[split]), encoding="utf-8")
        _dump(tmp / "world.json", stats)
        _check_target(out, force)  # again: the folder may have changed while we built
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
            try:
                tmp.rename(out)
            except OSError:
                old.rename(out)  # put the previous world back rather than leave nothing
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return {**stats, "seconds": round(time.perf_counter() - start, 2)}


def _stats(seed: int, records: dict[str, list[dict[str, Any]]], n_tables: int, n_rows: int,
           scored: bool) -> dict[str, Any]:
    hardness: dict[str, dict[str, int]] = {}
    templates: dict[str, int] = {}
    for split, recs in records.items():
        counts: dict[str, int] = {"easy": 0, "medium": 0, "hard": 0, "extra": 0}
        for r in recs:
            key = r["hardness"] or "unscored"
            counts[key] = counts.get(key, 0) + 1
            templates[r["template"]] = templates.get(r["template"], 0) + 1
        hardness[split] = counts
    return {
        "version": WORLD_VERSION,
        "seed": seed,
        "databases": {"train": list(TRAIN_DB_IDS), "dev": list(DEV_DB_IDS)},
        "questions": {split: len(recs) for split, recs in records.items()},
        "hardness_scored": scored,
        "hardness": hardness,
        "templates": dict(sorted(templates.items())),
        "tables": n_tables,
        "rows": n_rows,
    }


def _dump(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def read_world(out_dir: str | os.PathLike) -> dict[str, Any]:
    """The statistics stored in ``OUT/world.json`` by ``build_world``.

    Raises DataError when the file is missing, is not JSON, or lacks the keys ``build_world``
    writes (so a caller can tell "no world here" from "an older world": compare ``version``).
    """
    path = Path(out_dir) / "world.json"
    if not path.is_file():
        raise DataError("no world here (world.json missing); run `sqlcoach world build`", str(path))
    try:
        stats = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"not valid JSON: {exc}", str(path)) from exc
    need = ("version", "seed", "databases", "questions", "hardness", "tables", "rows")
    if not isinstance(stats, dict) or any(k not in stats for k in need):
        raise DataError(f"not a world.json (expected keys: {', '.join(need)})", str(path))
    return stats


def format_stats(stats: dict[str, Any]) -> str:
    """The statistics table printed by ``sqlcoach world build``."""
    levels = ["easy", "medium", "hard", "extra"]
    extra_keys = sorted({k for h in stats["hardness"].values() for k in h} - set(levels))
    cols = levels + extra_keys
    lines = [f"sqlcoach world v{stats['version']}  seed {stats['seed']}  "
             f"{stats['tables']} tables  {stats['rows']} rows"]
    head = f"{'split':6s} {'dbs':>4s} {'questions':>9s} " + " ".join(f"{c:>8s}" for c in cols)
    lines += [head, "-" * len(head)]
    for split in ("train", "dev"):
        h = stats["hardness"][split]
        lines.append(f"{split:6s} {len(stats['databases'][split]):4d} {stats['questions'][split]:9d} "
                     + " ".join(f"{h.get(c, 0):8d}" for c in cols))
    for split in ("train", "dev"):
        lines.append(f"{split} databases: {', '.join(stats['databases'][split])}")
    if not stats.get("hardness_scored"):
        lines.append("hardness: sqlcoach.sql.hardness is not installed; records carry hardness=null")
    if "seconds" in stats:
        lines.append(f"built in {stats['seconds']:.1f} s")
    return "\n".join(lines)
