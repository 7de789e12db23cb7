"""Parse SQL with sqlglot, and turn a parse into the Spider scorer's component structure.

Two layers:

* ``parse_sql`` / ``normalize_sql`` / ``top_select`` / ``set_operation_parts``: sqlglot (dialect
  ``sqlite``) with Spider's textual quirks handled. ``parse_sql`` never raises and caches its trees
  (callers must treat a returned tree as read-only: copy it before transforming it).
* ``spider_struct``: a parse re-expressed as the dict the official Spider scorer
  (test-suite-sql-eval, ``process_sql.get_sql``) builds, so that hardness and exact match can apply
  the official rules to the same shape. Keys: ``select`` = (distinct, [(agg, val_unit)]),
  ``from`` = {"table_units": [(kind, "__table__" | struct)], "conds": condition}, ``where``,
  ``having`` = condition, ``groupBy`` = [col_unit], ``orderBy`` = [] | (direction, [val_unit]),
  ``limit`` = int | None, ``intersect`` / ``union`` / ``except`` = struct | None (right-nested, as
  the official parser reads ``A UNION B UNION C``). A condition is [cond_unit, "and"|"or",
  cond_unit, ...]; a cond_unit is (not_op, op, val_unit, val1, val2); a val_unit is
  (unit_op, col_unit, col_unit | None); a col_unit is (agg, "__table.column__", distinct).
  Operators are kept as their names ("count", "like", "-", ...), not the official's list indices:
  equality between structures is the same either way.

Spider quirks handled: double-quoted strings (``"abc"``, Spider's gold writes string values that
way; sqlglot reads them as quoted identifiers, and they are treated as values wherever a value is
expected), ``! =`` / ``> =`` / ``< =`` split operators, trailing ``;``, ``count(*)``,
``AS T1`` aliases, ``JOIN ... ON``, ``NOT IN`` / ``NOT LIKE`` / ``BETWEEN`` / ``!=`` / ``<>``.

Where the official parser cannot read valid SQL (comma joins, ``IN (1, 2)`` lists, ``LEFT JOIN``,
select aliases, expressions that are not columns), ``spider_struct`` still returns a structure:
such SQL gets a sensible structure here instead of a parse failure (see exact_match.py).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import sqlglot
from sqlglot import exp

if TYPE_CHECKING:
    from sqlcoach.sql.tables import SpiderDbSchema

# The lexemes normalize_sql reads: a quoted region (kept as written) or a comment (dropped: once
# newlines are collapsed a "--" comment would swallow the rest of the query), found in Python;
# between them, split operators such as "> =" and whitespace runs, rewritten by re.sub alone.
_QUOTED_OR_COMMENT = re.compile(
    r"""('(?:[^']|'')*'?|"(?:[^"]|"")*"?|`[^`]*`?|\[[^\]]*\]?)|(--[^\n]*|/\*[\s\S]*?(?:\*/|$))"""
)
_SPLIT_OP = re.compile(r"([!<>])\s+=")
_WS_RUN = re.compile(r"\s+")

AGGREGATES: dict[type, str] = {
    exp.Max: "max",
    exp.Min: "min",
    exp.Count: "count",
    exp.Sum: "sum",
    exp.Avg: "avg",
}
_ARITH: dict[type, str] = {exp.Sub: "-", exp.Add: "+", exp.Mul: "*", exp.Div: "/"}
_COMPARE: dict[type, str] = {
    exp.EQ: "=",
    exp.GT: ">",
    exp.LT: "<",
    exp.GTE: ">=",
    exp.LTE: "<=",
    exp.NEQ: "!=",
    exp.Like: "like",
    exp.Is: "is",
    exp.Glob: "glob",
}
_SET_OPS: dict[type, str] = {exp.Intersect: "intersect", exp.Union: "union", exp.Except: "except"}


def normalize_sql(sql: str) -> str:
    """Whitespace collapsed, ``! =``/``> =``/``< =`` joined (as the official postprocess does),
    ``--`` and ``/* */`` comments removed, trailing semicolons and surrounding space removed; text inside quotes ('...', "...", `...`,
    [...]) is left exactly as written, so string values keep their spaces. Idempotent; never
    raises. Cached by text: hardness and exact match normalise the same gold several times."""
    return _normalize_cached(sql or "")


@lru_cache(maxsize=16384)
def _normalize_cached(sql: str) -> str:
    text = _normalize_pass(sql)
    if "--" in text or "/*" in text or "  " in text:
        # a removed comment leaves whitespace on both sides: one more pass collapses it
        text = _normalize_pass(text)
    text = text.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text


def _normalize_pass(text: str) -> str:
    """One left-to-right pass: quoted regions kept, comments -> one space, split
    operators joined, whitespace runs -> one space. Only quoted regions and comments go through
    Python; the stretches between them are rewritten by two C-level substitutions, which give
    the same text as the single scan because a split operator or a whitespace run never contains
    the first character of a quote or a comment."""
    out: list[str] = []
    pos = 0
    for match in _QUOTED_OR_COMMENT.finditer(text):
        if match.start() > pos:
            out.append(_WS_RUN.sub(" ", _SPLIT_OP.sub(r"\1=", text[pos : match.start()])))
        out.append(match.group(1) if match.group(1) is not None else " ")
        pos = match.end()
    if pos < len(text):
        out.append(_WS_RUN.sub(" ", _SPLIT_OP.sub(r"\1=", text[pos:])))
    return "".join(out)


def parse_sql(sql: str) -> tuple[exp.Expression | None, str | None]:
    """(tree, None) when ``sql`` parses as exactly one statement, else (None, message).

    A bare expression (``selec``, ``1 + 1``) is refused: sqlglot accepts it, SQLite would not.

    Never raises. Trees are cached by text and shared: do not mutate them (``tree.copy()`` first).
    """
    return _parse_cached(normalize_sql(sql))


def pretty_sql(sql: str) -> str:
    """``sql`` laid out by sqlglot for reading (SQLite dialect, one clause per line), from the tree
    ``parse_sql`` gives; the text as written when it does not parse as one statement. For display
    only: sqlglot may respell keywords and quoting. Never raises."""
    tree, _ = parse_sql(sql)
    if not isinstance(tree, exp.Query):  # unparsed, or something SQLite would not run as a query
        return sql
    try:
        return tree.sql(dialect="sqlite", pretty=True)
    except Exception:  # noqa: BLE001  (sqlglot's generator on an odd tree: show the text as written)
        return sql


@lru_cache(maxsize=8192)
def _parse_cached(text: str) -> tuple[exp.Expression | None, str | None]:
    if not text:
        return None, "empty SQL"
    try:
        trees = [t for t in sqlglot.parse(text, dialect="sqlite") if t is not None]
    except Exception as err:  # sqlglot raises ParseError/TokenError and, on junk, others
        return None, f"{type(err).__name__}: {err}".splitlines()[0][:500]
    if len(trees) != 1:
        return None, f"expected one statement, found {len(trees)}"
    tree = trees[0]
    if isinstance(tree, exp.Condition) and not isinstance(tree, exp.Query):
        # sqlglot accepts a bare expression ("selec", "1 + 1"); SQLite would not run it.
        return None, f"not a statement: a bare {type(tree).__name__.lower()} expression"
    return tree, None


def unwrap(node: exp.Expression | None) -> exp.Expression | None:
    """``node`` without surrounding parentheses / subquery wrappers (``(SELECT ...)`` -> Select)."""
    while isinstance(node, (exp.Paren, exp.Subquery)) and node.this is not None:
        node = node.this
    return node


def set_operation_parts(tree: exp.Expression) -> tuple[list[exp.Expression], list[str]]:
    """Flatten ``A op B op C`` into ([A, B, C], [op, op]) in textual order.

    ``op`` is "union" / "intersect" / "except". A tree without set operations gives ([tree], []).
    """
    node = unwrap(tree)
    if not isinstance(node, exp.SetOperation):
        return [node], []
    left_parts, left_ops = set_operation_parts(node.this)
    right_parts, right_ops = set_operation_parts(node.expression)
    return left_parts + right_parts, left_ops + [_SET_OPS[type(node)]] + right_ops


def top_select(tree: exp.Expression | None) -> exp.Select | None:
    """The first (leftmost) SELECT of the statement, or None when it has none."""
    if tree is None:
        return None
    first = set_operation_parts(tree)[0][0]
    return first if isinstance(first, exp.Select) else None


def is_string_like(node: exp.Expression) -> bool:
    """True for a string literal, or a double-quoted name with no table (Spider's ``"abc"``)."""
    if isinstance(node, exp.Literal):
        return bool(node.is_string)
    if isinstance(node, exp.Column) and not node.table:
        ident = node.this
        return isinstance(ident, exp.Identifier) and bool(ident.quoted)
    return False


# --- the official structure ------------------------------------------------------------------


class _Ctx:
    """What column resolution needs: the schema (optional) and the statement-wide alias map."""

    __slots__ = ("db", "aliases")

    def __init__(self, db: SpiderDbSchema | None, aliases: dict[str, str]):
        self.db = db
        self.aliases = aliases


def spider_struct(sql: str, db: SpiderDbSchema | None = None) -> dict[str, Any] | None:
    """The official scorer's structure for ``sql`` (see module docstring), or None if unparsable.

    With ``db``, column ids are resolved as the official parser does (alias -> table, an
    unqualified column -> the first FROM table that has it); without it, a column is qualified only
    when its query reads a single table. Never raises. Cached per (sql, db): treat the result as
    read-only.
    """
    return _struct_cached(normalize_sql(sql), db)


@lru_cache(maxsize=8192)
def _struct_cached(text: str, db: SpiderDbSchema | None) -> dict[str, Any] | None:
    tree, _ = _parse_cached(text)
    if tree is None:
        return None
    try:
        ctx = _Ctx(db, _alias_map(tree, db))
        return _query(tree, ctx)
    except _Unsupported:
        return None
    except Exception:  # hostile SQL (absurd nesting -> RecursionError, odd trees) has no structure
        return None


class _Unsupported(Exception):
    """The statement is not a query (INSERT, CREATE, ...): it has no Spider structure."""


def _alias_map(tree: exp.Expression, db: SpiderDbSchema | None) -> dict[str, str]:
    # The official parser keeps ONE alias map for the whole statement (later ``AS`` wins), then maps
    # every schema table to itself; reproduce that so that re-used aliases resolve the same way.
    found = []
    for table in tree.find_all(exp.Table):
        alias = table.alias
        if alias:
            ident = table.args["alias"].this
            start = ident.meta.get("start", 0) if isinstance(ident, exp.Identifier) else 0
            found.append((start, alias.lower(), table.name.lower()))
    aliases = {alias: name for _, alias, name in sorted(found)}
    if db is not None:
        for name in db.table_names:
            aliases[name] = name
    return aliases


def _query(node: exp.Expression, ctx: _Ctx) -> dict[str, Any]:
    node = unwrap(node)
    if isinstance(node, exp.SetOperation):
        parts, ops = set_operation_parts(node)
        # sqlglot hangs a trailing ORDER BY / LIMIT on the set operation; the official parser reads
        # it as part of the last SELECT (it parses the right-hand side recursively).
        carried = {k: node.args.get(k) for k in ("order", "limit")}
        structs = []
        for i, part in enumerate(parts):
            extra = carried if i == len(parts) - 1 else {}
            structs.append(_select(part, ctx, extra))
        for i in range(len(ops) - 1, -1, -1):
            structs[i][ops[i]] = structs[i + 1]
        return structs[0]
    return _select(node, ctx, {})


def _select(node: exp.Expression, ctx: _Ctx, extra: dict[str, Any]) -> dict[str, Any]:
    node = unwrap(node)
    if isinstance(node, exp.SetOperation):  # a parenthesised set operation used as one operand
        return _query(node, ctx)
    if not isinstance(node, exp.Select):
        raise _Unsupported(type(node).__name__)
    table_units: list[tuple[str, Any]] = []
    conds: list[Any] = []
    default_tables: list[str] = []
    sources = []
    from_ = node.args.get("from_") or node.args.get("from")
    if from_ is not None:
        sources.append((from_.this, None))
    for join in node.args.get("joins") or []:
        sources.append((join.this, join.args.get("on")))
    for source, on in sources:
        inner = unwrap(source)
        if isinstance(inner, (exp.Select, exp.SetOperation)):
            table_units.append(("sql", _query(inner, ctx)))
        elif isinstance(source, exp.Table):
            name = source.name.lower()
            table_units.append(("table_unit", f"__{name}__"))
            default_tables.append(name)
        else:
            table_units.append(("table_unit", f"__{source.sql(dialect='sqlite').lower()}__"))
        if on is not None:
            if conds:
                conds.append("and")
            conds.extend(_condition(on, ctx, default_tables))
    tables = tuple(default_tables)

    distinct = node.args.get("distinct") is not None
    select = [_select_item(e, ctx, tables) for e in node.expressions]
    where = node.args.get("where")
    group = node.args.get("group")
    having = node.args.get("having")
    order = node.args.get("order") or extra.get("order")
    limit = node.args.get("limit") or extra.get("limit")

    order_by: Any = []
    if order is not None and order.expressions:
        direction = "asc"
        units = []
        for ordered in order.expressions:
            units.append(_val_unit(ordered.this, ctx, tables))
            # The official keeps ONE direction per ORDER BY: the last one written explicitly.
            desc = ordered.args.get("desc")
            if desc is True:
                direction = "desc"
            elif desc is False:
                direction = "asc"
        order_by = (direction, units)

    limit_value = None
    if limit is not None:
        value = limit.args.get("expression") or limit.this
        try:
            limit_value = int(value.name) if isinstance(value, exp.Literal) else 1
        except (TypeError, ValueError):
            limit_value = 1

    return {
        "select": (distinct, select),
        "from": {"table_units": table_units, "conds": conds},
        "where": _condition(where.this, ctx, tables) if where is not None else [],
        "groupBy": [_col_unit(e, ctx, tables) for e in group.expressions] if group is not None else [],
        "having": _condition(having.this, ctx, tables) if having is not None else [],
        "orderBy": order_by,
        "limit": limit_value,
        "intersect": None,
        "union": None,
        "except": None,
    }


def _select_item(node: exp.Expression, ctx: _Ctx, tables: tuple[str, ...]) -> tuple[str, Any]:
    if isinstance(node, exp.Alias):
        node = node.this
    node = _strip_paren(node)
    agg = AGGREGATES.get(type(node))
    if agg is not None:
        # SELECT keeps the aggregate outside the val_unit: count(*) -> ("count", (none, col, None))
        return agg, _val_unit(node.this, ctx, tables)
    return "none", _val_unit(node, ctx, tables)


def _strip_paren(node: exp.Expression) -> exp.Expression:
    while isinstance(node, exp.Paren) and node.this is not None:
        node = node.this
    return node


def _val_unit(node: exp.Expression, ctx: _Ctx, tables: tuple[str, ...]) -> tuple[str, Any, Any]:
    node = _strip_paren(node)
    op = _ARITH.get(type(node))
    if op is not None:
        return op, _col_unit(node.this, ctx, tables), _col_unit(node.expression, ctx, tables)
    return "none", _col_unit(node, ctx, tables), None


def _col_unit(node: exp.Expression, ctx: _Ctx, tables: tuple[str, ...]) -> tuple[str, str, bool]:
    node = _strip_paren(node)
    agg = AGGREGATES.get(type(node))
    if agg is not None:
        inner = _strip_paren(node.this) if node.this is not None else exp.Star()
        if isinstance(inner, exp.Distinct):
            return agg, _col_id(_first(inner), ctx, tables), True
        return agg, _col_id(inner, ctx, tables), False
    if isinstance(node, exp.Distinct):
        return "none", _col_id(_first(node), ctx, tables), True
    return "none", _col_id(node, ctx, tables), False


def _first(distinct: exp.Distinct) -> exp.Expression:
    exprs = distinct.expressions
    return exprs[0] if exprs else exp.Star()


def _col_id(node: exp.Expression, ctx: _Ctx, tables: tuple[str, ...]) -> str:
    node = _strip_paren(node)
    if isinstance(node, exp.Star) or (isinstance(node, exp.Column) and isinstance(node.this, exp.Star)):
        return "__all__"
    if isinstance(node, exp.Column):
        name = node.name.lower()
        if node.table:
            alias = node.table.lower()
            return f"__{ctx.aliases.get(alias, alias)}.{name}__"
        if ctx.db is not None:
            for table in tables:
                if name in ctx.db.columns.get(table, ()):
                    return f"__{table}.{name}__"
            return f"__{name}__"
        if len(tables) == 1:
            return f"__{tables[0]}.{name}__"
        return f"__{name}__"
    # Not a column (a function call, a literal): the official parser fails here; keep the text.
    return f"__expr:{node.sql(dialect='sqlite').lower()}__"


def _condition(node: exp.Expression, ctx: _Ctx, tables: tuple[str, ...]) -> list[Any]:
    # The official parser reads conditions left to right without precedence; an in-order walk of
    # sqlglot's AND/OR tree gives the same flat list.
    node = _strip_paren(node)
    if isinstance(node, exp.And):
        return _condition(node.this, ctx, tables) + ["and"] + _condition(node.expression, ctx, tables)
    if isinstance(node, exp.Or):
        return _condition(node.this, ctx, tables) + ["or"] + _condition(node.expression, ctx, tables)
    return [_cond_unit(node, ctx, tables)]


def _cond_unit(node: exp.Expression, ctx: _Ctx, tables: tuple[str, ...]) -> tuple[Any, ...]:
    not_op = False
    node = _strip_paren(node)
    if isinstance(node, exp.Not):
        not_op = True
        node = _strip_paren(node.this)
    if node.args.get("negate"):  # sqlglot writes NOT LIKE as Like(negate=True)
        not_op = not not_op
    if isinstance(node, exp.Between):
        return (
            not_op,
            "between",
            _val_unit(node.this, ctx, tables),
            _value(node.args.get("low"), ctx, tables),
            _value(node.args.get("high"), ctx, tables),
        )
    if isinstance(node, exp.In):
        query = node.args.get("query")
        if query is not None:
            val1: Any = _query(query, ctx)
        else:
            val1 = tuple(_value(e, ctx, tables) for e in node.expressions)
        return not_op, "in", _val_unit(node.this, ctx, tables), val1, None
    if isinstance(node, exp.Exists):
        return not_op, "exists", ("none", None, None), _query(node.this, ctx), None
    op = _COMPARE.get(type(node))
    if op is not None:
        return not_op, op, _val_unit(node.this, ctx, tables), _value(node.expression, ctx, tables), None
    # A bare expression used as a condition (``WHERE flag``): no operator.
    return not_op, "none", _val_unit(node, ctx, tables), None, None


def _value(node: exp.Expression | None, ctx: _Ctx, tables: tuple[str, ...]) -> Any:
    if node is None:
        return None
    inner = unwrap(node)
    if isinstance(inner, (exp.Select, exp.SetOperation)):
        return _query(inner, ctx)
    inner = _strip_paren(node)
    if is_string_like(inner):
        return '"' + inner.name + '"'
    if isinstance(inner, exp.Literal):
        try:
            return float(inner.name)
        except ValueError:
            return inner.name
    if isinstance(inner, exp.Null):
        return "null"
    if isinstance(inner, (exp.Column, exp.Star)) or type(inner) in AGGREGATES:
        return _col_unit(inner, ctx, tables)
    return inner.sql(dialect="sqlite").lower()
