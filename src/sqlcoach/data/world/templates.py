"""The demo world's question templates: one function per SQL pattern, several wordings each.

Each ``_t_*`` function takes ``(rng, db)`` and returns a ``Draft`` (question, gold SQL and, for a
gold whose ORDER BY key may tie, the SQL of its ordering keys), or ``None`` when the database has
no slot for it. ``TEMPLATES`` lists them with the Spider level each is written for and a sampling
weight; ``LEVEL_SHARE`` is the share of questions drawn per level.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlcoach.data.world.subjects import WorldColumn, WorldDb, WorldTable

# ---------------------------------------------------------------------------------------------
# Question templates. Each takes (rng, db) and returns a Draft, or None when the database has
# no slot for it. The SQL is written in Spider's style (upper-case keywords, T1/T2 aliases with
# the parent table always T1). Wording is drawn from several paraphrases per pattern.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Draft:
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


def _filter_cols(t: WorldTable) -> list[WorldColumn]:
    """Columns usable in `col = value`: categorical text, and integers with few distinct values."""
    out = list(t.col("cat"))
    for c in t.col("num"):
        if not c.unique and len(set(t.values(c.name))) <= 12:
            out.append(c)
    return out


def _num_cols(t: WorldTable, unique: bool | None = None) -> list[WorldColumn]:
    return [c for c in t.col("num") if unique is None or c.unique == unique]


def _threshold(rng: random.Random, t: WorldTable, col: str) -> int:
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


def _agg(rng: random.Random, col: WorldColumn) -> str:
    return _pick(rng, ("max", "min") if col.name in _YEAR_LIKE else ("avg", "max", "min", "sum"))


def _value(rng: random.Random, t: WorldTable, col: str) -> Any:
    return _pick(rng, t.values(col))


def _one_table(rng: random.Random, db: WorldDb, need: Callable[[WorldTable], bool]) -> WorldTable | None:
    return _pick(rng, [t for t in db.tables if need(t)])


def _link(rng: random.Random, db: WorldDb, need: Callable[[WorldTable, WorldTable], bool] = lambda p, c: True):
    return _pick(rng, [(p, c, fk) for p, c, fk in db.links() if need(p, c)])


def _has_label(t: WorldTable) -> bool:
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
    return Draft(q.format(p=t.plural), f"SELECT count(*) FROM {t.name}")


def _t_list_col(rng, db):
    t = _pick(rng, db.tables)
    c = _pick(rng, [c for c in t.columns if c.kind in ("label", "cat", "num")])
    q = _pick(rng, (
        "List the {c} of all {p}.",
        "What is the {c} of each {s}?",
        "Show the {c} of every {s}.",
        "Give the {c} of all {p}.",
    ))
    return Draft(q.format(c=c.name, p=t.plural, s=t.name), f"SELECT {c.name} FROM {t.name}")


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
    return Draft(q.format(n=t.label, p=t.plural, c=c.name, v=v), f"SELECT {t.label} FROM {t.name} WHERE {c.name} = {_q(v)}")


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
    return Draft(q.format(p=t.plural, c=c.name, v=v), f"SELECT count(*) FROM {t.name} WHERE {c.name} = {_q(v)}")


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
    return Draft(q.format(p=t.plural, c=c.name, w=word, k=k, n=t.label),
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
    return Draft(q.format(a=_pick(rng, _AGG_WORDS[f]), c=c.name, p=t.plural), f"SELECT {f}({c.name}) FROM {t.name}")


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
    return Draft(q.format(a=_pick(rng, _AGG_WORDS[f]), c=c.name, p=t.plural, fc=fc.name, v=v),
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
    return Draft(q.format(c=c.name, p=t.plural), f"SELECT DISTINCT {c.name} FROM {t.name}")


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
    return Draft(q.format(c=c.name, p=t.plural), f"SELECT count(DISTINCT {c.name}) FROM {t.name}")


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
    return Draft(q.format(n=t.label, p=t.plural, c=c.name),
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
    return Draft(q.format(p=t.plural, c=c.name, a=a, b=b, n=t.label),
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
    return Draft(q.format(c=c.name, k=k, p=t.plural), f"SELECT {c.name} FROM {t.name} GROUP BY {c.name} HAVING count(*) > {k}")


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
    return Draft(q.format(n=t.label, x=x.name, p=t.plural, fc=fc.name, v=v),
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
    return Draft(q.format(p=t.plural, c=c.name), f"SELECT {c.name}, count(*) FROM {t.name} GROUP BY {c.name}")


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
    return Draft(q.format(a=_pick(rng, _AGG_WORDS[f]), x=x.name, p=t.plural, c=c.name),
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
    return Draft(q.format(s=t.name, sup=sup, c=c.name, n=t.label, k=k, p=t.plural),
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
    return Draft(q.format(p=t.plural, fc=fc.name, v=v, x=x.name, w=word, k=k, n=t.label),
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
    return Draft(q.format(p=t.plural, c=c.name, a=v1, b=v2, n=t.label),
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
    return Draft(q.format(p=t.plural, w=word, n=t.label), f"SELECT {t.label} FROM {t.name} WHERE {t.label} LIKE '%{word}%'")


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
    return Draft(q.format(c=c.name, p=t.plural), f"SELECT max({c.name}), min({c.name}) FROM {t.name}")


def _join(p: WorldTable, c: WorldTable, fk: str) -> str:
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
    return Draft(q.format(pp=p.plural, cs=c.name, cp=c.plural, fc=fc.name, v=v, n=p.label),
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
    return Draft(q.format(cc=cc, cs=c.name, cp=c.plural, n=p.label, ps=p.name),
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
    return Draft(q.format(cp=c.plural, cs=c.name, ps=p.name, n=p.label),
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
    return Draft(q.format(pp=p.plural, ps=p.name, k=k, cp=c.plural, n=p.label),
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
    return Draft(q.format(a=_pick(rng, _AGG_WORDS[f]), x=x.name, cp=c.plural, ps=p.name, pp=p.plural, fc=fc.name, v=v),
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
    return Draft(q.format(col=col.name, cp=c.plural, ps=p.name, name=name, n=p.label),
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
    return Draft(q.format(n=t.label, p=t.plural, fc=fc.name, v=v, o=order, x=x.name),
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
    return Draft(q.format(p=t.plural, x=x.name, w=word, n=t.label),
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
    return Draft(q.format(pp=p.plural, ps=p.name, cp=c.plural, cs=c.name, n=p.label),
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
    return Draft(q.format(pp=p.plural, cp=c.plural, cs=c.name),
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
    return Draft(q.format(pp=p.plural, ps=p.name, cs=c.name, x=x.name, w=word, k=k, n=p.label),
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
    return Draft(q.format(c=c.name, p=t.plural, s=t.name, x=x.name, a=k1, b=k2),
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
    return Draft(q.format(n=t.label, p=t.plural, fc=fc.name, v=v, x=x.name, k=k),
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
    return Draft(q.format(c=c.name, p=t.plural, s=t.name, x=x.name, k=k),
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
    return Draft(q.format(c=c.name, w=word, p=t.plural),
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
    return Draft(q.format(show=show, cp=c.plural, ps=p.name, pp=p.plural, fc=fc.name, v=v, o=order, x=x.name),
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
    return Draft(q.format(pp=p.plural, cs=c.name, cp=c.plural, fc=fc.name, v=v, n=p.label),
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
    return Draft(q.format(p=t.plural, s=t.name, fc=fc.name, v=v, sup=sup, x=x.name, n=t.label),
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
    return Draft(q.format(ps=p.name, cp=c.plural, n=p.label),
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
    return Draft(q.format(ps=p.name, cp=c.plural, x=x.name, n=p.label),
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
    return Draft(q.format(pp=p.plural, ps=p.name, cs=c.name, cp=c.plural, fc=fc.name, a=v1, b=v2, n=p.label),
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
    return Draft(q.format(n=t.label, p=t.plural, x=x.name, o="in descending order of" if desc else "in ascending order of"),
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
    return Draft(q.format(p=t.plural, fc=fc.name, v=v, x=x.name, n=t.label),
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
    return Draft(q.format(pp=p.plural, fc=fc.name, v=v, cp=c.plural, cs=c.name, n=p.label),
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
    return Draft(q.format(ps=p.name, cp=c.plural, fc=fc.name, v=v, n=p.label),
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
    return Draft(q.format(c=c.name, k=k, p=t.plural), f"SELECT {c.name}, count(*) {body}",
                  key_sql=f"SELECT count(*) {body}", key_rows=0)


#: (template, intended Spider level, weight). The level only steers sampling; the hardness written
#: to the records is the one sqlcoach.sql.hardness computes.
TEMPLATES: tuple[tuple[Callable[[random.Random, WorldDb], Draft | None], str, float], ...] = (
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
LEVEL_SHARE = {"easy": 0.25, "medium": 0.40, "hard": 0.18, "extra": 0.17}
