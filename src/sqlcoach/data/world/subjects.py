"""The demo world's subjects: table specs, value pools, and rows generated from them.

``SUBJECTS`` maps a db_id to its tables; ``make_db(db_id, specs, seed)`` turns one into rows with
foreign-key integrity (deterministic in db_id and seed), ``write_sqlite`` writes them, and
``tables_entry`` describes them in Spider's tables.json format.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
class TableSpec:
    name: str
    label: tuple[str, str] | None  # (column name, value kind: person | title | place)
    columns: tuple[tuple[str, Any], ...]
    parents: tuple[str, ...] = ()
    rows: tuple[int, int] = (20, 40)


def _t(name, label, columns, parents=(), rows=(20, 40)) -> TableSpec:
    return TableSpec(name, label, tuple(columns), tuple(parents), rows)


_PERSON = ("name", "person")
_TITLE = ("title", "title")
_PLACE = ("name", "place")
_CHILD = (60, 150)

SUBJECTS: dict[str, tuple[TableSpec, ...]] = {
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
TRAIN_DB_IDS: tuple[str, ...] = tuple(d for d in SUBJECTS if d not in DEV_DB_IDS)


# ---------------------------------------------------------------------------------------------
# Databases in memory: rows generated from a spec, with foreign-key integrity.
# ---------------------------------------------------------------------------------------------


@dataclass
class WorldColumn:
    name: str
    kind: str  # "pk" | "label" | "cat" | "num" | "fk"
    unique: bool = False
    ref: str | None = None  # parent table, for "fk"

    @property
    def sql_type(self) -> str:
        return "TEXT" if self.kind in ("label", "cat") else "INTEGER"


@dataclass
class WorldTable:
    name: str
    columns: list[WorldColumn]
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

    def col(self, kind: str) -> list[WorldColumn]:
        return [c for c in self.columns if c.kind == kind]

    def values(self, column: str) -> list[Any]:
        i = [c.name for c in self.columns].index(column)
        return [r[i] for r in self.rows]

    @property
    def plural(self) -> str:
        return plural(self.name)


@dataclass
class WorldDb:
    db_id: str
    tables: list[WorldTable]

    def table(self, name: str) -> WorldTable:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(name)

    def links(self) -> list[tuple[WorldTable, WorldTable, str]]:
        """(parent, child, fk column) for every foreign key, in schema order."""
        out = []
        for child in self.tables:
            for c in child.col("fk"):
                out.append((self.table(c.ref), child, c.name))
        return out


def plural(word: str) -> str:
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


def make_db(db_id: str, specs: Sequence[TableSpec], seed: int) -> WorldDb:
    """Generate the rows of one subject. Deterministic in (db_id, seed)."""
    rng = random.Random(f"sqlcoach-world:{seed}:{db_id}")
    tables: list[WorldTable] = []
    by_name: dict[str, WorldTable] = {}
    for spec in specs:
        cols = [WorldColumn(f"{spec.name}_id", "pk", unique=True)]
        if spec.label:
            cols.append(WorldColumn(spec.label[0], "label", unique=True))
        for raw, kind in spec.columns:
            cols.append(WorldColumn(raw.rstrip("!"), "num" if isinstance(kind[0], int) else "cat", unique=raw.endswith("!")))
        for parent in spec.parents:
            cols.append(WorldColumn(f"{parent}_id", "fk", ref=parent))
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
        table = WorldTable(spec.name, cols, [tuple(r) for r in zip(*columns_data)])
        tables.append(table)
        by_name[spec.name] = table
    return WorldDb(db_id, tables)


def write_sqlite(db: WorldDb, path: Path) -> None:
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


def tables_entry(db: WorldDb) -> dict[str, Any]:
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
