"""Spider hardness (easy / medium / hard / extra), computed from the gold SQL alone.

Reimplements the official rule (test-suite-sql-eval ``Evaluator.eval_hardness``) on the structure
of ``sqlcoach.sql.parse.spider_struct``; no tables.json is needed because only counts matter.

    component1 = WHERE? + GROUP BY? + ORDER BY? + LIMIT? + (FROM units - 1)
                 + #OR + #LIKE            (OR/LIKE counted over JOIN-ON, WHERE and HAVING)
    component2 = nested queries that are values of JOIN-ON/WHERE/HAVING conditions
                 + INTERSECT/UNION/EXCEPT (a FROM subquery is NOT counted here, only as a unit)
    others     = (#aggregates > 1) + (#SELECT items > 1) + (#WHERE conditions > 1)
                 + (#GROUP BY columns > 1)

All counts are over the top-level query. ``hardness`` reads them from the tokens when the query is
plain SQL (``sqlcoach.sql.hardness_scan``: no parser, the same counts) and parses it otherwise, so
labelling a Spider gold file needs no sqlglot at all. The official aggregate count has quirks that are kept
because the reference verdicts depend on them: SELECT items count their own aggregate
(``max(a) - min(a)`` counts none), WHERE conditions count when negated (``NOT IN``/``NOT LIKE``:
the official tests the condition's first field, which is its NOT flag), GROUP BY and ORDER BY count
aggregated columns, and HAVING counts its AND/OR connectors plus its negated conditions.
"""

from __future__ import annotations

from typing import Any

from sqlcoach.sql.hardness_scan import scan_counts


def component_counts(sql: str) -> dict[str, int] | None:
    """{"component1", "component2", "others", "aggregates"} for ``sql`` from its parse
    (``parse.spider_struct``); None if unparsable."""
    from sqlcoach.sql.parse import spider_struct  # sqlglot: imported only when a query needs it

    struct = spider_struct(sql)
    if struct is None:
        return None
    return counts_of(struct)


def counts_of(struct: dict[str, Any]) -> dict[str, int]:
    """The hardness counts of one parsed structure (see module docstring)."""
    parts = (struct["from"]["conds"], struct["where"], struct["having"])
    connectors = [token for part in parts for token in part[1::2]]
    units = [unit for part in parts for unit in part[::2]]
    component1 = sum(
        1 for key in ("where", "groupBy", "orderBy") if len(struct[key]) > 0
    ) + (struct["limit"] is not None)
    if struct["from"]["table_units"]:
        component1 += len(struct["from"]["table_units"]) - 1
    component1 += sum(1 for token in connectors if token == "or")
    component1 += sum(1 for unit in units if unit[1] == "like")

    component2 = len(nested_queries(struct))

    aggregates = sum(1 for agg, _ in struct["select"][1] if agg != "none")
    aggregates += sum(1 for unit in struct["where"][::2] if unit[0])  # official quirk: NOT flag
    aggregates += sum(1 for col in struct["groupBy"] if col[0] != "none")
    if struct["orderBy"]:
        for _, col1, col2 in struct["orderBy"][1]:
            aggregates += sum(1 for col in (col1, col2) if col is not None and col[0] != "none")
    having = struct["having"]
    aggregates += len(having[1::2]) + sum(1 for unit in having[::2] if unit[0])  # official quirk

    others = (
        (aggregates > 1)
        + (len(struct["select"][1]) > 1)
        + (len(struct["where"]) > 1)
        + (len(struct["groupBy"]) > 1)
    )
    return {
        "component1": int(component1),
        "component2": component2,
        "others": int(others),
        "aggregates": aggregates,
    }


def nested_queries(struct: dict[str, Any]) -> list[dict[str, Any]]:
    """Queries nested as condition values (JOIN-ON, WHERE, HAVING) plus the set-operation
    operands, in the official ``get_nestedSQL`` order."""
    nested = []
    units = struct["from"]["conds"][::2] + struct["where"][::2] + struct["having"][::2]
    for unit in units:
        for value in (unit[3], unit[4]):
            if isinstance(value, dict):
                nested.append(value)
    for op in ("intersect", "except", "union"):
        if struct[op] is not None:
            nested.append(struct[op])
    return nested


def level(component1: int, component2: int, others: int) -> str:
    """The official decision table from the three counts."""
    if component1 <= 1 and others == 0 and component2 == 0:
        return "easy"
    if (others <= 2 and component1 <= 1 and component2 == 0) or (
        component1 <= 2 and others < 2 and component2 == 0
    ):
        return "medium"
    if (
        (others > 2 and component1 <= 2 and component2 == 0)
        or (2 < component1 <= 3 and others <= 2 and component2 == 0)
        or (component1 <= 1 and others == 0 and component2 <= 1)
    ):
        return "hard"
    return "extra"


def hardness(sql: str) -> str | None:
    """"easy" | "medium" | "hard" | "extra" for ``sql`` (normally the gold); None if unparsable.
    Plain SQL is counted from its tokens (``hardness_scan``), anything else from its parse."""
    counts = scan_counts(sql) or component_counts(sql)
    if counts is None:
        return None
    return level(counts["component1"], counts["component2"], counts["others"])
