"""Spider hardness counts without a parser: a token scan for the plain SQL most golds are written in.

``sqlcoach.sql.hardness`` computes hardness from ``parse.spider_struct``, which needs sqlglot: its
import (~0.1 s of CPU) and its parse (~0.5 ms a query, pure Python) were most of the CPU of a
first ``sqlcoach evaluate --etype exec`` on Spider dev. Hardness needs only counts of the top-level
query (module docstring of ``hardness``), and for plain SQL those can be read off the tokens:
clauses at parenthesis depth 0, items split at depth-0 commas, conditions split at depth-0
AND/OR (parentheses around condition groups are flattened, as ``spider_struct`` flattens them).

``scan_counts(sql)`` returns the same ``{"component1", "component2", "others", "aggregates"}`` as
``hardness.component_counts`` or ``None``, and it returns ``None`` (the caller then parses) for
anything outside the plain subset it reads exactly: comments, CASE, CAST, outer joins, unary
minus, ``||`` / ``%``, a condition that is a negated parenthesised group, a unit with two
comparison operators, ORDER BY / LIMIT before a set operation, a query that does not start with
``SELECT ... FROM``, and every token it does not know. ``tests/unit/sql/test_hardness_scan.py``
checks it against the parser on every Spider train and dev gold (when ../shared is present) and
on the constructs listed above.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Sequence

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>'(?:[^']|'')*'|"(?:[^"]|"")*"|`[^`]*`)
    | (?P<num>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?![A-Za-z_]))
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.(?:[A-Za-z_][A-Za-z0-9_]*|\*))*)
    | (?P<op>[<>!]\s*=|<>|==|[=<>+\-*/(),;])
    )""",
    re.VERBOSE,
)

AGGREGATES = frozenset({"count", "sum", "avg", "min", "max"})
_COMPARE = frozenset({"=", "==", ">", "<", ">=", "<=", "!=", "<>", "like", "is", "glob"})
# Words that put a query outside the subset read here (the parser decides those queries): the
# SQLite dialect's keywords that sqlglot never reads as a name (a unit test recomputes that set
# from sqlglot and checks it is covered here), then constructs this scan does not read.
_SQLGLOT_RESERVED = frozenset({
    "alter", "and", "as", "between", "create", "cross", "distinct", "drop", "else", "except", "fetch", "for", "from",
    "glob", "grant", "having", "ilike", "inner", "insert", "intersect", "into", "join", "lateral", "like", "not",
    "notnull", "on", "or", "outer", "partitioned_by", "qualify", "regexp", "returning", "revoke", "rlike", "rollback",
    "select", "tablesample", "then", "uncache", "union", "using", "values", "when", "where", "with", "xor",
})
_REFUSE = frozenset({
    "case", "cast", "left", "right", "full", "outer", "cross", "natural", "using", "offset", "with",
    "values", "collate", "escape", "regexp", "match", "window", "over", "filter", "recursive",
    "insert", "update", "delete", "create", "drop", "alter", "replace", "pragma", "attach",
    "isnull", "notnull", "indexed", "current_date", "current_time", "current_timestamp",
})
_CLAUSES = ("from", "where", "group", "having", "order", "limit")
_SET_OPS = frozenset({"union", "intersect", "except"})


class _Refuse(Exception):
    """The query is outside the subset: the caller parses it."""


def _tokens(sql: str) -> list[str]:
    """Tokens of ``sql``: words lower-cased, every string or double-quoted name as one placeholder
    (``'`` or ``"``: only its place matters), every number as ``0``, operators without spaces."""
    text = sql.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    out: list[str] = []
    pos, end = 0, len(text)
    while pos < end:
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise _Refuse(f"unknown character {text[pos]!r}")
        pos = m.end()
        kind = m.lastgroup
        tok = m.group(kind)
        if kind == "name":
            tok = tok.lower()
            if tok in _REFUSE:
                raise _Refuse(tok)
            if "." in tok and any(part in _SQLGLOT_RESERVED or part in _REFUSE for part in tok.split(".")):
                raise _Refuse(tok)
        elif kind == "op":
            tok = re.sub(r"\s+", "", tok)
            if tok == ";":
                raise _Refuse("two statements")
        elif kind == "str":
            tok = "'" if tok[0] == "'" else tok[0]  # a value (or a quoted name): only its place matters
        else:
            tok = "0"
        out.append(tok)
    if not out:
        raise _Refuse("empty")
    return out


def _depths(toks: Sequence[str]) -> list[int]:
    """Parenthesis depth before each token; refuses unbalanced parentheses."""
    d, out = 0, []
    for t in toks:
        if t == ")":
            d -= 1
            if d < 0:
                raise _Refuse("unbalanced")
        out.append(d)
        if t == "(":
            d += 1
    if d != 0:
        raise _Refuse("unbalanced")
    return out


def _split(toks: list[str], seps: frozenset[str]) -> list[list[str]]:
    """``toks`` cut at depth-0 tokens in ``seps`` (the separators dropped)."""
    parts: list[list[str]] = [[]]
    for t, d in zip(toks, _depths(toks)):
        if d == 0 and t in seps:
            parts.append([])
        else:
            parts[-1].append(t)
    return parts


def _wrapped(toks: list[str]) -> bool:
    """True when ``toks`` is one parenthesised group ``( ... )``."""
    if len(toks) < 2 or toks[0] != "(" or toks[-1] != ")":
        return False
    depths = _depths(toks)
    return all(d > 0 for d in depths[1:-1])  # the last ")" is at depth 0 after closing


def _strip_parens(toks: list[str]) -> list[str]:
    while _wrapped(toks):
        toks = toks[1:-1]
    return toks


def _is_subquery(toks: list[str]) -> bool:
    """A parenthesised SELECT (``_value`` unwraps it to a nested query)."""
    if not _wrapped(toks):
        return False
    inner = _strip_parens(toks)
    return bool(inner) and inner[0] == "select"


def _is_aggregate(toks: list[str]) -> bool:
    """``agg( ... )`` as a whole (outer parentheses stripped), as ``_col_unit`` reads its aggregate."""
    toks = _strip_parens(toks)
    return len(toks) >= 3 and toks[0] in AGGREGATES and _wrapped(toks[1:])


def _check_expr(toks: list[str]) -> None:
    """Refuse anything but ``operand (+|-|*|/ operand)*``; an operand is a name, a number, a
    string, NULL, ``*``, ``name(args)`` (``DISTINCT`` allowed first), ``(expr)`` or ``(SELECT ...)``
    (which must itself scan). So a query accepted here is one the parser reads too."""
    if not toks:
        raise _Refuse("empty expression")
    i, n = 0, len(toks)
    while True:
        if i >= n:
            raise _Refuse("operand missing")
        t = toks[i]
        if t == "(":
            close = _close(toks, i)
            inner = toks[i + 1:close]
            if inner[:1] == ["select"]:
                _scan(inner)
            else:
                _check_expr(inner)
            i = close + 1
        elif _is_word(t) and toks[i + 1:i + 2] == ["("]:
            close = _close(toks, i + 1)
            args = toks[i + 2:close]
            if args[:1] == ["distinct"]:
                args = args[1:]
            if not args:
                raise _Refuse("call without arguments")
            if args != ["*"]:
                for a in _split(args, frozenset({","})):
                    _check_expr(a)
            i = close + 1
        elif _is_word(t) or t in ("0", "'", '"', "`", "*", "null"):
            i += 1
        else:
            raise _Refuse(f"operand {t!r}")
        if i == n:
            return
        if toks[i] not in ("+", "-", "*", "/"):
            raise _Refuse(f"operator {toks[i]!r}")
        i += 1


def _close(toks: list[str], at: int) -> int:
    """Index of the parenthesis closing the one at ``at``."""
    depth = 0
    for j in range(at, len(toks)):
        if toks[j] == "(":
            depth += 1
        elif toks[j] == ")":
            depth -= 1
            if depth == 0:
                return j
    raise _Refuse("unbalanced")


def _without_alias(toks: list[str]) -> list[str]:
    if len(toks) >= 3 and toks[-2] == "as":
        if not (_is_alias(toks[-1]) or toks[-1] in ('"', "`")):
            raise _Refuse("alias")
        return toks[:-2]
    if len(toks) >= 2 and _is_alias(toks[-1]) and (toks[-2] == ")" or _is_word(toks[-2]) or toks[-2] in ("'", "0", '"', "`")):
        return toks[:-1]  # a bare alias: `count(*) cnt`
    return toks


_KEYWORDS = frozenset({"select", "from", "where", "group", "by", "having", "order", "limit", "and", "or", "not", "in",
                       "like", "glob", "is", "between", "exists", "null", "as", "on", "join", "inner", "distinct",
                       "all", "asc", "desc", "union", "intersect", "except"})


def _is_word(t: str) -> bool:
    return (t[0].isalpha() or t[0] == "_") and t not in _KEYWORDS and t not in _SQLGLOT_RESERVED


def _is_alias(t: str) -> bool:
    return _is_word(t) and "." not in t


class _Cond:
    __slots__ = ("units", "connectors", "ors", "likes", "nots", "nested")

    def __init__(self) -> None:
        self.units = self.connectors = self.ors = self.likes = self.nots = self.nested = 0


def _condition(toks: list[str], acc: _Cond) -> None:
    """Add the condition ``toks`` to ``acc``: AND/OR at depth 0 (BETWEEN's AND excepted) cut it
    into units; a unit that is a parenthesised group without SELECT is flattened into its parts."""
    if not toks:
        raise _Refuse("empty condition")
    pieces: list[list[str]] = [[]]
    joins: list[str] = []
    pending_between = False
    for t, d in zip(toks, _depths(toks)):
        if d == 0 and t == "between":
            pending_between = True
        if d == 0 and t in ("and", "or"):
            if t == "and" and pending_between:
                pending_between = False
            else:
                joins.append(t)
                pieces.append([])
                continue
        pieces[-1].append(t)
    if pending_between:
        raise _Refuse("BETWEEN without AND")
    for i, piece in enumerate(pieces):
        if i > 0:
            acc.connectors += 1
            acc.ors += joins[i - 1] == "or"
        if _wrapped(piece) and not _is_subquery(piece):
            _condition(piece[1:-1], acc)
        else:
            _unit(piece, acc)


def _unit(toks: list[str], acc: _Cond) -> None:
    """One condition unit: its NOT flag, LIKE, and nested queries in value position."""
    if not toks:
        raise _Refuse("empty condition unit")
    acc.units += 1
    depths = _depths(toks)
    top = [(i, t) for i, (t, d) in enumerate(zip(toks, depths)) if d == 0]
    words = [t for _, t in top]
    nots = words.count("not")
    if nots > 1:
        raise _Refuse("double negation")
    if toks[0] == "not" and len(toks) > 1 and toks[1] == "(":
        raise _Refuse("negated group")
    acc.nots += nots
    if "exists" in words:
        i = next(i for i, t in top if t == "exists")
        if words.index("exists") != nots or toks[:i] != ["not"] * nots or not _is_subquery(toks[i + 1:]):
            raise _Refuse("EXISTS form")
        _scan(_strip_parens(toks[i + 1:]))
        acc.nested += 1
        return
    ops = [(i, t) for i, t in top if t in _COMPARE or t in ("in", "between")]
    if len(ops) > 1:
        raise _Refuse("two operators in one unit")
    if not ops:  # a bare expression as the condition, NOT allowed only in front
        _check_expr(toks[1:] if toks[0] == "not" else toks)
        return
    i, op = ops[0]
    left = toks[:i]
    if left and left[-1] == "not":
        if op not in ("in", "like", "between", "glob"):
            raise _Refuse("NOT before a comparison")
        left = left[:-1]
    if left and left[0] == "not":
        left = left[1:]
    _check_expr(left)
    right = toks[i + 1:]
    if op == "is":
        if right not in (["null"], ["not", "null"]):
            raise _Refuse("IS without NULL")
        right = ["null"]
    if right[:1] == ["not"]:
        raise _Refuse("NOT after the operator")
    if op == "like":
        acc.likes += 1
    if op == "between":
        values = _split(right, frozenset({"and"}))
        if len(values) != 2:
            raise _Refuse("BETWEEN form")
        for v in values:
            _check_expr(v)
            acc.nested += _is_subquery(v)
        return
    if op == "in":
        if not _wrapped(right):
            raise _Refuse("IN without parentheses")
        inner = right[1:-1]
        if inner[:1] == ["("]:
            raise _Refuse("IN ((...))")
        if inner[:1] == ["select"]:
            _scan(inner)
            acc.nested += 1
        elif inner:
            for v in _split(inner, frozenset({","})):
                _check_expr(v)
        return
    _check_expr(right)
    acc.nested += _is_subquery(right)


def _order_aggregates(item: list[str]) -> int:
    """Aggregates of one ORDER BY item's val_unit: the two sides of its top arithmetic operator
    (the rightmost depth-0 + or -, else * or /: the operator sqlglot puts at the root), or the item."""
    item = _strip_parens(item)
    depths = _depths(item)
    for ops in (("+", "-"), ("*", "/")):
        at = [i for i, (t, d) in enumerate(zip(item, depths)) if d == 0 and t in ops and i > 0]
        if at:
            i = at[-1]
            return _is_aggregate(item[:i]) + _is_aggregate(item[i + 1:])
    return int(_is_aggregate(item))


def _clauses(toks: list[str]) -> dict[str, list[str]]:
    """The top-level SELECT's clauses (tokens after each keyword), refusing any other shape."""
    if toks[0] != "select":
        raise _Refuse("not a SELECT")
    depths = _depths(toks)
    marks: list[tuple[int, str, int]] = []  # (start of the keyword, clause, first token after it)
    for i, (t, d) in enumerate(zip(toks, depths)):
        if d or t not in _CLAUSES:
            continue
        if t in ("group", "order"):
            if toks[i + 1:i + 2] != ["by"]:
                raise _Refuse(f"{t} without BY")
            marks.append((i, t, i + 2))
        else:
            marks.append((i, t, i + 1))
    names = [m[1] for m in marks]
    if names != sorted(names, key=_CLAUSES.index) or len(set(names)) != len(names) or "from" not in names:
        raise _Refuse("clause order")
    out = {"select": toks[1:marks[0][0]]}
    for k, (_, name, first) in enumerate(marks):
        stop = marks[k + 1][0] if k + 1 < len(marks) else len(toks)
        out[name] = toks[first:stop]
        if not out[name]:
            raise _Refuse(f"empty {name}")
    return out


def _from_units(toks: list[str], on: _Cond) -> int:
    """Table units of FROM (tables and subqueries, split at depth-0 commas and JOINs); the ON
    conditions go to ``on``."""
    units = 0
    depths = _depths(toks)
    cuts = [i for i, (t, d) in enumerate(zip(toks, depths)) if d == 0 and t in (",", "join")]
    starts = [0] + [i + 1 for i in cuts]
    ends = cuts + [len(toks)]
    for k, (s, e) in enumerate(zip(starts, ends)):
        part = toks[s:e]
        if part and part[-1] == "inner" and e < len(toks) and toks[e] == "join":
            part = part[:-1]
        if not part:
            raise _Refuse("empty table unit")
        units += 1
        pd = _depths(part)
        ons = [i for i, (t, d) in enumerate(zip(part, pd)) if d == 0 and t == "on"]
        if len(ons) > 1 or (ons and (k == 0 or toks[cuts[k - 1]] != "join")):
            raise _Refuse("ON that does not follow a JOIN")
        source = part[:ons[0]] if ons else part
        if source[0] == "(":
            close = next(i for i, d in enumerate(_depths(source)) if i > 0 and d == 0) if len(source) > 1 else 0
            # a parenthesised source: a subquery (a table unit of its own) plus an optional alias
            sub = source[:close + 1] if close else source
            if not _is_subquery(sub):
                raise _Refuse("parenthesised FROM source")
            _scan(_strip_parens(sub))
            rest = source[len(sub):]
        else:
            if not _is_word(source[0]) and source[0] not in ('"', "`"):
                raise _Refuse("table name")
            rest = source[1:]
        if rest[:1] == ["as"]:
            rest = rest[1:]
            if not rest:
                raise _Refuse("AS without an alias")
        if len(rest) > 1 or (rest and not _is_alias(rest[0])):
            raise _Refuse("table alias")
        if ons:
            if on.units:
                on.connectors += 1  # spider_struct joins the ON conditions with "and"
            _condition(part[ons[0] + 1:], on)
    return units


def _scan(toks: list[str]) -> dict[str, int]:
    depths = _depths(toks)
    set_at = [i for i, (t, d) in enumerate(zip(toks, depths)) if d == 0 and t in _SET_OPS]
    top = toks[:set_at[0]] if set_at else toks
    clauses = _clauses(top)
    if set_at and ("order" in clauses or "limit" in clauses):
        raise _Refuse("ORDER BY / LIMIT before a set operation")
    for k, at in enumerate(set_at):  # every further operand must scan as a query of its own
        part = toks[at + 1:set_at[k + 1] if k + 1 < len(set_at) else len(toks)]
        if part[:1] == ["all"]:
            part = part[1:]
        if not part or part[0] != "select":
            raise _Refuse("set operand")
        later = _clauses(part)
        if k + 1 < len(set_at) and ("order" in later or "limit" in later):
            raise _Refuse("ORDER BY / LIMIT inside a chain of set operations")
        _scan(part)

    select = clauses["select"]
    if select[:1] in (["distinct"], ["all"]):
        select = select[1:]
    items = _split(select, frozenset({","}))
    aggregates = 0
    for item in items:
        if not item:
            raise _Refuse("empty select item")
        item = _without_alias(item)
        _check_expr(item)
        aggregates += _is_aggregate(item)

    on = _Cond()
    table_units = _from_units(clauses["from"], on)
    where = _Cond()
    if "where" in clauses:
        _condition(clauses["where"], where)
    having = _Cond()
    if "having" in clauses:
        _condition(clauses["having"], having)
    group = _split(clauses["group"], frozenset({","})) if "group" in clauses else []
    for g in group:
        _check_expr(g)
        aggregates += _is_aggregate(g)
    if "order" in clauses:
        for item in _split(clauses["order"], frozenset({","})):
            if item and item[-1] in ("asc", "desc"):
                item = item[:-1]
            _check_expr(item)
            aggregates += _order_aggregates(item)
    if "limit" in clauses and clauses["limit"] != ["0"]:
        raise _Refuse("LIMIT that is not a number")

    component1 = sum(k in clauses for k in ("where", "group", "order", "limit")) + max(table_units - 1, 0)
    component1 += on.ors + where.ors + having.ors + on.likes + where.likes + having.likes
    component2 = on.nested + where.nested + having.nested + bool(set_at)
    aggregates += where.nots + having.connectors + having.nots
    others = (aggregates > 1) + (len(items) > 1) + (where.units > 1) + (len(group) > 1)
    return {"component1": component1, "component2": component2, "others": others, "aggregates": aggregates}


def scan_counts(sql: str) -> dict[str, int] | None:
    """Hardness counts of ``sql`` read from its tokens, or ``None`` when it is outside the plain
    subset (module docstring): the caller then parses it. Never raises."""
    counts = _scan_cached(sql or "")
    return None if counts is None else dict(counts)


@lru_cache(maxsize=16384)
def _scan_cached(sql: str) -> dict[str, int] | None:  # a gold file repeats its queries (Spider dev: 532 of 972)
    try:
        return _scan(_tokens(sql))
    except _Refuse:
        return None
    except (IndexError, StopIteration, ValueError):  # a malformed shape the checks above did not name
        return None
