"""Text rewrites the execution scorer applies before running SQL, as the test-suite scorer does.

* ``postprocess``: the official ``postprocess`` (``> =`` -> ``>=``, ``< =`` -> ``<=``,
  ``! =`` -> ``!=``), applied to prediction and gold before anything else.
* ``strip_distinct``: the official default mode removes every DISTINCT keyword (SELECT DISTINCT and
  ``count(DISTINCT x)`` alike) from both queries; ``--keep_distinct`` skips this.
* ``has_order_by``: the official decides "row order matters" by ``'order by' in gold.lower()``,
  i.e. anywhere in the text, subqueries and string values included; reproduced (with whitespace
  collapsed first, so ``ORDER  BY`` counts too).
* ``plug_values``: the ``--plug_value`` option: every way of putting the gold's literal values into
  the prediction's value slots. Differences from the official (which re-tokenises both queries with
  sqlparse): slots and values are the literals of the sqlglot parse (number and string literals,
  LIMIT counts included, Spider's double-quoted strings where a value is expected), so the
  official's quirk of rewriting the substring "value" inside identifiers is not reproduced; the
  candidates are capped (``MAX_PLUG_CANDIDATES``) where the official enumerates all of them.
* ``literal_values`` and ``statement_type`` for rewards and reports.

All functions take hostile input: they never raise on bad SQL and never execute anything.
"""

from __future__ import annotations

import itertools
import re

from sqlglot import exp

from sqlcoach.sql.lexical import has_order_by, postprocess, strip_distinct  # noqa: F401  (re-exported)
from sqlcoach.sql.parse import is_string_like, normalize_sql, parse_sql, unwrap

#: Upper bound on the candidates ``plug_values`` returns (the product grows as values ** slots).
MAX_PLUG_CANDIDATES = 1000

# Predicates whose non-left operands are value positions (where "abc" means the string abc).
_VALUE_PARENTS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Like, exp.Glob, exp.In, exp.Between, exp.Is)


def statement_type(sql: str) -> str:
    """"select" | "insert" | "update" | "delete" | "other" | "unparsable" (empty text too).

    A WITH ... SELECT, a set operation and a VALUES list count as "select" (they only read).
    """
    tree, _ = parse_sql(sql)
    if tree is None:
        return "unparsable"
    node = unwrap(tree)
    if isinstance(node, exp.Insert):
        return "insert"
    if isinstance(node, exp.Update):
        return "update"
    if isinstance(node, exp.Delete):
        return "delete"
    if isinstance(node, (exp.Select, exp.SetOperation, exp.Values)):
        return "select"
    return "other"


def _value_nodes(tree: exp.Expression) -> list[exp.Expression]:
    """Literal values of a tree in textual order: number and string literals, NULL excluded, and
    Spider's double-quoted strings where a value is expected."""
    found = []
    for node in tree.walk():
        if isinstance(node, exp.Literal):
            found.append(node)
        elif (
            isinstance(node, exp.Column)
            and is_string_like(node)
            and isinstance(node.parent, _VALUE_PARENTS)
            and node.arg_key != "this"
        ):
            found.append(node)
    return sorted(found, key=_span_start)


def _span(node: exp.Expression) -> tuple[int, int] | None:
    meta = (node.this if isinstance(node, exp.Column) else node).meta
    if "start" in meta and "end" in meta:
        return meta["start"], meta["end"] + 1
    return None


def _span_start(node: exp.Expression) -> int:
    span = _span(node)
    return span[0] if span else -1


def _python_value(node: exp.Expression) -> str | int | float:
    if is_string_like(node):
        return node.name
    text = node.name
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def literal_values(sql: str) -> list[str | int | float]:
    """The literal values of ``sql`` in textual order (str for strings, int/float for numbers),
    including LIMIT counts and Spider's double-quoted strings in value positions; [] if unparsable."""
    tree, _ = parse_sql(sql)
    if tree is None:
        return []
    return [_python_value(n) for n in _value_nodes(tree)]


def _render(node: exp.Expression) -> str:
    value = _python_value(node)
    if isinstance(value, str) and is_string_like(node):
        # Single quotes always: a double-quoted word may resolve to a column in SQLite.
        return "'" + value.replace("'", "''") + "'"
    return str(node.name)


def plug_values(pred: str, gold: str, max_candidates: int = MAX_PLUG_CANDIDATES) -> list[str]:
    """Every way to fill the prediction's value slots with the gold's literal values.

    A slot is one literal of ``pred`` (see ``literal_values``); each may take any distinct gold
    value (strings rendered single-quoted), so there are ``len(values) ** len(slots)``
    combinations, enumerated in ``itertools.product`` order (first slot slowest) and cut at
    ``max_candidates``. Candidates are built from ``normalize_sql(pred)`` with only the slot text
    replaced; duplicates and the unchanged prediction are left out (the caller tries ``pred``
    itself first, as the test-suite scorer does). [] when either query does not parse, or when
    the prediction has no slot or the gold no value. A negative number's minus sign is not part of
    its slot.
    """
    if max_candidates <= 0:
        return []
    text = normalize_sql(pred)
    pred_tree, _ = parse_sql(text)
    gold_tree, _ = parse_sql(gold)
    if pred_tree is None or gold_tree is None:
        return []
    spans = [s for s in (_span(n) for n in _value_nodes(pred_tree)) if s is not None]
    values: list[str] = []
    for node in _value_nodes(gold_tree):
        rendered = _render(node)
        if rendered not in values:
            values.append(rendered)
    if not spans or not values:
        return []
    out: list[str] = []
    seen = {text}
    for combo in itertools.product(values, repeat=len(spans)):
        pieces, pos = [], 0
        for (start, end), value in zip(spans, combo):
            pieces.append(text[pos:start])
            pieces.append(value)
            pos = end
        pieces.append(text[pos:])
        candidate = "".join(pieces)
        if candidate not in seen:
            seen.add(candidate)
            out.append(candidate)
            if len(out) >= max_candidates:
                break
    return out
