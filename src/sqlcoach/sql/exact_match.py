"""Spider exact match (EM): the official component-wise set match, reimplemented on sqlglot.

``exact_match(pred, gold, db)`` is True when every component of the prediction matches the gold's
(the official "exact set match without values"). How it is decided, in order:

1. Both queries become the official structure (``sqlcoach.sql.parse.spider_struct``), column ids
   resolved against ``db`` (a ``SpiderDbSchema`` from tables.json; without it, columns are resolved
   from the FROM clause alone and foreign keys are not merged).
2. ``NORMALIZERS`` run on each structure, in order (each ``f(struct, db) -> struct``, pure):
   ``drop_values`` (every condition value that is not a subquery becomes None, recursively through
   WHERE subqueries and set operations, not FROM subqueries, as the official ``rebuild_sql_val``),
   ``merge_foreign_keys`` (a column linked by a foreign key is replaced by its group's
   representative when its table is in the top-level FROM: ``T2.singer_id`` equals
   ``T1.singer_id`` across an FK pair; applied to the top level and its set operations with the
   top level's tables, as the official ``rebuild_sql_col``), ``drop_distinct`` (DISTINCT flags
   ignored in SELECT and in columns, same scope).
3. ``COMPONENTS`` compare them, each ``f(pred, gold) -> bool``: select, select(no AGG), where,
   where(no OP), group(no Having), group, order, and/or, IUEN, keywords (see each function).
   Lists are compared as multisets where the official does so, as ordered lists where it does.
4. When the gold has FROM units, the sorted FROM units must be equal (tables, and FROM subqueries
   compared with their values).

A prediction that does not parse is compared with an empty query (EM False). A gold that does not
parse gives False for every component (the official scorer crashes on it instead).

LIMIT values are ignored (only LIMIT presence counts, in ``order`` and ``keywords``), as is the
direction of a query without ORDER BY; DISTINCT is ignored except inside WHERE/HAVING subqueries;
ASC/DESC is one direction per ORDER BY (the last one written explicitly, default ASC).

Deliberate differences from the official scorer (its parser's limits, not rules of the metric);
each makes sqlcoach say "match" or "no match" on SQL the official cannot read at all (it scores
such a prediction as an empty query, EM 0):

* Valid SQL the official parser rejects is parsed here: comma joins (``FROM a, b``), ``LEFT/INNER
  JOIN``, ``IN (1, 2)`` value lists, table aliases without ``AS``, SELECT aliases
  (``count(*) AS n ... ORDER BY n`` keeps ``n`` as an unresolved column), parenthesised
  conditions, ``IS NOT NULL``, ``NOT x = 1``, ``EXISTS``, ``UNION ALL`` (read as UNION), and
  expressions in SELECT such as ``max(a) - min(a)`` or function calls (kept as their text).
* Operator precedence: sqlglot reads ``a AND (b OR c)`` with its parentheses; the flattened
  condition list is the same as the official's only for unparenthesised conditions.
* The official tokenizer turns every single quote into a double quote before pairing quotes, so a
  value such as ``'O''Brien'`` breaks its parse; sqlglot reads it.
* A column the schema does not have gets an id from its text instead of failing the parse.
* The official reads column names from the SQLite file and foreign keys from tables.json; here both
  come from tables.json (identical for the Spider dev databases).

On the six spider-reference files (972 predictions each) this agrees with the official verdicts on
every example, hardness too, and none of the differences above is exercised there
(benchmarks/em_agreement.py prints the figures). Cost: about 0.4-0.5 ms per (hardness + EM) pair
with cold caches on one CPU core, two thirds of it sqlglot's parse; parses and structures are
cached, and sqlglot's optimizer is never used.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

from sqlcoach.sql.parse import normalize_sql, spider_struct
from sqlcoach.sql.tables import SpiderDbSchema

Struct = dict[str, Any]
Normalizer = Callable[[Struct, "SpiderDbSchema | None"], Struct]
Component = Callable[[Struct, Struct], bool]

EMPTY_STRUCT: Struct = {
    "select": (False, []),
    "from": {"table_units": [], "conds": []},
    "where": [],
    "groupBy": [],
    "having": [],
    "orderBy": [],
    "limit": None,
    "intersect": None,
    "union": None,
    "except": None,
}
_SET_OPS = ("intersect", "union", "except")


# --- normalizers -----------------------------------------------------------------------------


def drop_values(struct: Struct | None, db: SpiderDbSchema | None = None) -> Struct | None:
    """Condition values become None unless they are subqueries (which are processed in turn)."""
    if struct is None:
        return None
    out = dict(struct)
    # The official reads LIMIT's value as 1 whatever is written (its tokens are strings, and it
    # only keeps an int), so the value never matters, not even inside subqueries.
    out["limit"] = None if struct["limit"] is None else 1
    units = [(kind, _limit_presence(u) if kind == "sql" else u) for kind, u in struct["from"]["table_units"]]
    out["from"] = {"table_units": units, "conds": _drop_cond_values(struct["from"]["conds"])}
    out["where"] = _drop_cond_values(struct["where"])
    out["having"] = _drop_cond_values(struct["having"])
    for op in _SET_OPS:
        out[op] = drop_values(struct[op], db)
    return out


def _limit_presence(struct: Struct) -> Struct:
    # A FROM subquery keeps its values (official) but its LIMIT, too, is read as 1.
    out = dict(struct)
    out["limit"] = None if struct["limit"] is None else 1
    out["from"] = {
        "table_units": [(k, _limit_presence(u) if k == "sql" else u) for k, u in struct["from"]["table_units"]],
        "conds": [_cond_limits(u) if i % 2 == 0 else u for i, u in enumerate(struct["from"]["conds"])],
    }
    for key in ("where", "having"):
        out[key] = [_cond_limits(u) if i % 2 == 0 else u for i, u in enumerate(struct[key])]
    for op in _SET_OPS:
        if struct[op] is not None:
            out[op] = _limit_presence(struct[op])
    return out


def _cond_limits(unit: tuple) -> tuple:
    vals = [_limit_presence(v) if isinstance(v, dict) else v for v in unit[3:5]]
    return (*unit[:3], *vals)


def _drop_cond_values(condition: list[Any]) -> list[Any]:
    res = []
    for i, unit in enumerate(condition):
        if i % 2:
            res.append(unit)
            continue
        not_op, op, val_unit, val1, val2 = unit
        val1 = drop_values(val1) if isinstance(val1, dict) else None
        val2 = drop_values(val2) if isinstance(val2, dict) else None
        res.append((not_op, op, val_unit, val1, val2))
    return res


def merge_foreign_keys(struct: Struct | None, db: SpiderDbSchema | None = None) -> Struct | None:
    """Replace FK-linked columns of top-level FROM tables by their FK group's representative."""
    if struct is None or db is None or not db.foreign_key_map:
        return struct
    tables = {unit[1][2:-2] for unit in struct["from"]["table_units"] if unit[0] == "table_unit"}
    fk_tables = _fk_column_tables(db)
    kmap = {cid: rep for cid, rep in db.foreign_key_map.items() if fk_tables.get(cid) in tables}
    return _map_columns(struct, lambda col: (col[0], kmap.get(col[1], col[1]), col[2]))


@lru_cache(maxsize=256)
def _fk_column_tables(db: SpiderDbSchema) -> dict[str, str]:
    """{column id: its table} for the FK-linked columns of ``db`` that are qualified column ids
    (what merge_foreign_keys may replace), computed once per schema instead of once per query."""
    columns = set(db.column_ids)
    return {cid: cid[2 : cid.index(".")] for cid in db.foreign_key_map if cid in columns and "." in cid}


def drop_distinct(struct: Struct | None, db: SpiderDbSchema | None = None) -> Struct | None:
    """DISTINCT ignored in SELECT and in every column of the top level and its set operations."""
    if struct is None:
        return None
    out = _map_columns(struct, lambda col: (col[0], col[1], None))
    return _with_select_distinct(out)


def _with_select_distinct(struct: Struct) -> Struct:
    out = dict(struct)
    out["select"] = (None, struct["select"][1])
    for op in _SET_OPS:
        if struct[op] is not None:
            out[op] = _with_select_distinct(struct[op])
    return out


def _map_columns(struct: Struct, f: Callable[[tuple], tuple]) -> Struct:
    # Scope of the official rebuild_sql_col: SELECT, FROM (conds), WHERE, GROUP BY, ORDER BY, HAVING
    # and set operations; subqueries nested in conditions or FROM are left as they are.
    def col(c):
        return None if c is None else f(c)

    def val(v):
        return None if v is None else (v[0], col(v[1]), col(v[2]))

    def cond(condition):
        return [u if i % 2 else (u[0], u[1], val(u[2]), u[3], u[4]) for i, u in enumerate(condition)]

    out = dict(struct)
    out["select"] = (struct["select"][0], [(agg, val(v)) for agg, v in struct["select"][1]])
    out["from"] = {"table_units": struct["from"]["table_units"], "conds": cond(struct["from"]["conds"])}
    out["where"] = cond(struct["where"])
    out["having"] = cond(struct["having"])
    out["groupBy"] = [col(c) for c in struct["groupBy"]]
    if struct["orderBy"]:
        out["orderBy"] = (struct["orderBy"][0], [val(v) for v in struct["orderBy"][1]])
    for op in _SET_OPS:
        if struct[op] is not None:
            out[op] = _map_columns(struct[op], f)
    return out


NORMALIZERS: tuple[Normalizer, ...] = (drop_values, merge_foreign_keys, drop_distinct)


# --- components ------------------------------------------------------------------------------


def _multiset_equal(pred: list[Any], gold: list[Any]) -> bool:
    # The official counts pred items found in (and removed from) the gold list, and requires that
    # count to equal both lengths: multiset equality, with == on nested structures.
    if len(pred) != len(gold):
        return False
    remaining = list(gold)
    for item in pred:
        if item in remaining:
            remaining.remove(item)
        else:
            return False
    return True


def select_match(pred: Struct, gold: Struct) -> bool:
    """SELECT items (aggregate + expression) as a multiset."""
    return _multiset_equal(pred["select"][1], gold["select"][1])


def select_no_agg_match(pred: Struct, gold: Struct) -> bool:
    """SELECT expressions without their aggregates, as a multiset."""
    return _multiset_equal([u[1] for u in pred["select"][1]], [u[1] for u in gold["select"][1]])


def where_match(pred: Struct, gold: Struct) -> bool:
    """WHERE conditions (NOT flag, operator, expression, subquery values) as a multiset."""
    return _multiset_equal(pred["where"][::2], gold["where"][::2])


def where_no_op_match(pred: Struct, gold: Struct) -> bool:
    """WHERE left-hand expressions alone, as a multiset."""
    return _multiset_equal([u[2] for u in pred["where"][::2]], [u[2] for u in gold["where"][::2]])


def group_no_having_match(pred: Struct, gold: Struct) -> bool:
    """GROUP BY column names as a multiset; the table part is ignored (as the official does)."""

    def names(struct: Struct) -> list[str]:
        return [c[1].split(".")[1] if "." in c[1] else c[1] for c in struct["groupBy"]]

    return _multiset_equal(names(pred), names(gold))


def group_match(pred: Struct, gold: Struct) -> bool:
    """GROUP BY columns in order plus HAVING, when either query groups."""
    pred_has, gold_has = bool(pred["groupBy"]), bool(gold["groupBy"])
    if pred_has != gold_has:
        return False
    if not gold_has:
        return True
    return [c[1] for c in pred["groupBy"]] == [c[1] for c in gold["groupBy"]] and pred["having"] == gold["having"]


def order_match(pred: Struct, gold: Struct) -> bool:
    """ORDER BY (one direction, expressions in order) and LIMIT presence, when either orders."""
    pred_has, gold_has = bool(pred["orderBy"]), bool(gold["orderBy"])
    if pred_has != gold_has:
        return False
    if not gold_has:
        return True
    return pred["orderBy"] == gold["orderBy"] and (pred["limit"] is None) == (gold["limit"] is None)


def and_or_match(pred: Struct, gold: Struct) -> bool:
    """The set of WHERE connectors ("and", "or") is the same."""
    return set(pred["where"][1::2]) == set(gold["where"][1::2])


def iuen_match(pred: Struct, gold: Struct) -> bool:
    """INTERSECT / UNION / EXCEPT operands present alike and each exactly matching."""
    for op in ("intersect", "except", "union"):
        p, g = pred[op], gold[op]
        if (p is None) != (g is None):
            return False
        if p is not None and not structs_match(p, g):
            return False
    return True


def keywords(struct: Struct) -> set[str]:
    """The official keyword set: where, group, having, order + its direction, limit, set
    operations, and or / not / in / like used in JOIN-ON, WHERE or HAVING conditions."""
    res = set()
    for key, word in (("where", "where"), ("groupBy", "group"), ("having", "having")):
        if struct[key]:
            res.add(word)
    if struct["orderBy"]:
        res.add(struct["orderBy"][0])
        res.add("order")
    if struct["limit"] is not None:
        res.add("limit")
    for op in _SET_OPS:
        if struct[op] is not None:
            res.add(op)
    parts = (struct["from"]["conds"], struct["where"], struct["having"])
    if any(token == "or" for part in parts for token in part[1::2]):
        res.add("or")
    units = [unit for part in parts for unit in part[::2]]
    if any(unit[0] for unit in units):
        res.add("not")
    if any(unit[1] == "in" for unit in units):
        res.add("in")
    if any(unit[1] == "like" for unit in units):
        res.add("like")
    return res


def keywords_match(pred: Struct, gold: Struct) -> bool:
    """The keyword sets are equal."""
    return keywords(pred) == keywords(gold)


COMPONENTS: tuple[tuple[str, Component], ...] = (
    ("select", select_match),
    ("select(no AGG)", select_no_agg_match),
    ("where", where_match),
    ("where(no OP)", where_no_op_match),
    ("group(no Having)", group_no_having_match),
    ("group", group_match),
    ("order", order_match),
    ("and/or", and_or_match),
    ("IUEN", iuen_match),
    ("keywords", keywords_match),
)


def _table_key(unit: tuple[str, Any]) -> tuple[str, str]:
    return unit[0], unit[1] if isinstance(unit[1], str) else repr(unit[1])


def from_match(pred: Struct, gold: Struct) -> bool:
    """FROM units (tables; subqueries with their values) equal as sorted lists, when the gold has any."""
    gold_units = gold["from"]["table_units"]
    if not gold_units:
        return True
    return sorted(gold_units, key=_table_key) == sorted(pred["from"]["table_units"], key=_table_key)


def structs_match(pred: Struct, gold: Struct, components: tuple[tuple[str, Component], ...] = COMPONENTS) -> bool:
    """Exact match of two already-normalised structures: every component, then the FROM units."""
    return all(f(pred, gold) for _, f in components) and from_match(pred, gold)


# --- entry points ----------------------------------------------------------------------------


@lru_cache(maxsize=8192)
def _normalized(text: str, db: SpiderDbSchema | None, normalizers: tuple[Normalizer, ...]) -> Struct | None:
    struct = spider_struct(text, db)
    if struct is None:
        return None
    for f in normalizers:
        struct = f(struct, db)
    return struct


def normalized_struct(
    sql: str, db: SpiderDbSchema | None = None, normalizers: tuple[Normalizer, ...] = NORMALIZERS
) -> Struct | None:
    """The structure EM compares (parsed, then every normalizer applied); None if unparsable.
    Cached per (sql, db, normalizers): treat it as read-only."""
    return _normalized(normalize_sql(sql), db, tuple(normalizers))


def em_components(
    pred: str,
    gold: str,
    db: SpiderDbSchema | None = None,
    *,
    normalizers: tuple[Normalizer, ...] = NORMALIZERS,
    components: tuple[tuple[str, Component], ...] = COMPONENTS,
) -> dict[str, bool]:
    """Per-component verdicts ({name: bool}, in ``components`` order, then "from" and "parsed").

    "parsed" says whether the prediction parsed; an unparsable prediction is compared with an empty
    query. When the gold does not parse every entry is False. Never raises on bad SQL.
    """
    names = [name for name, _ in components] + ["from", "parsed"]
    g = normalized_struct(gold, db, normalizers)
    if g is None:
        return dict.fromkeys(names, False)
    p = normalized_struct(pred, db, normalizers)
    parsed = p is not None
    if p is None:
        p = EMPTY_STRUCT
    out = {name: bool(f(p, g)) for name, f in components}
    out["from"] = from_match(p, g)
    out["parsed"] = parsed
    return out


def exact_match(
    pred: str,
    gold: str,
    db: SpiderDbSchema | None = None,
    *,
    normalizers: tuple[Normalizer, ...] = NORMALIZERS,
    components: tuple[tuple[str, Component], ...] = COMPONENTS,
) -> bool:
    """True when ``pred`` exactly set-matches ``gold`` (official Spider EM rules; see module
    docstring). False when either does not parse. Never raises on bad SQL.

    ``normalizers`` and ``components`` replace the default pipelines; ``components`` apply to the
    top-level query, while set-operation operands (inside ``iuen_match``) use ``COMPONENTS``.
    """
    g = normalized_struct(gold, db, normalizers)
    p = normalized_struct(pred, db, normalizers)
    if g is None or p is None:
        return False
    return structs_match(p, g, components)
