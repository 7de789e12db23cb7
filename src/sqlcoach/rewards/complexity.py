"""``complexity``: is the SQL about as complex as the question needs?

Complexity of a statement is a weighted count of the nodes of its sqlglot tree (parsed by
``sqlcoach.sql.parse.parse_sql``), one weight per kind of node (``COMPLEXITY_WEIGHTS``):

=========================================  ======
node                                       weight
=========================================  ======
SELECT (every one, subqueries included)    1.0
INSERT / UPDATE / DELETE                   1.0
JOIN                                       1.0
UNION / INTERSECT / EXCEPT                 1.0
GROUP BY                                   1.0
CASE, window function, CTE (WITH x AS)     1.0
HAVING                                     0.5
ORDER BY                                   0.5
predicate (=, <, >, LIKE, IN, BETWEEN,     0.5
IS, EXISTS, ... in WHERE, ON, HAVING)
aggregate function (COUNT, SUM, AVG, ...)  0.5
LIMIT, DISTINCT                            0.25
=========================================  ======

So ``SELECT name FROM singer`` is 1.0, ``SELECT count(*) FROM singer WHERE age > 20`` is 2.0, and
a two-table join with GROUP BY and ORDER BY is about 4.5.

Reward (weight ``w``, default 0.6):

* with a gold: ``exp(-0.5·(ln r)^2)·w`` where ``r = complexity(pred) / complexity(gold)`` clamped
  to [0.001, 1000]: 1·w at equal complexity, 0.79·w at twice or half, 0.38·w at four times.
* without a gold (column absent or empty for that example): 0.4·w when the complexity lies in
  [1.5, 8.0] (neither a bare projection nor a sprawling query), else 0.1·w.
* no SQL, or SQL sqlglot cannot parse: 0. A gold that cannot be parsed: ``None``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

from sqlglot import exp

from sqlcoach.rewards.base import Reward
from sqlcoach.rewards.common import completion_sql
from sqlcoach.sql.parse import parse_sql

#: (node class, weight); a node counts once, with the weight of the first class it is an instance of.
COMPLEXITY_WEIGHTS: tuple[tuple[type, float], ...] = (
    (exp.Select, 1.0),
    (exp.Insert, 1.0),
    (exp.Update, 1.0),
    (exp.Delete, 1.0),
    (exp.Join, 1.0),
    (exp.SetOperation, 1.0),
    (exp.Group, 1.0),
    (exp.Case, 1.0),
    (exp.Window, 1.0),
    (exp.CTE, 1.0),
    (exp.Having, 0.5),
    (exp.Order, 0.5),
    (exp.Predicate, 0.5),
    (exp.AggFunc, 0.5),
    (exp.Limit, 0.25),
    (exp.Distinct, 0.25),
)

RATIO_MIN, RATIO_MAX = 0.001, 1000.0
NO_GOLD_RANGE = (1.5, 8.0)


def tree_complexity(tree: exp.Expression) -> float:
    """Weighted node count of a parsed statement (weights in ``COMPLEXITY_WEIGHTS``); >= 0."""
    total = 0.0
    for node in tree.walk():
        for cls, weight in COMPLEXITY_WEIGHTS:
            if isinstance(node, cls):
                total += weight
                break
    return total


@lru_cache(maxsize=1 << 15)
def sql_complexity(sql: str) -> float | None:
    """Complexity of ``sql`` (see the module docstring), or ``None`` when it is empty or does not parse."""
    if not sql or not sql.strip():
        return None
    tree, error = parse_sql(sql)
    if tree is None or error:
        return None
    return tree_complexity(tree)


def complexity_score(pred: float, gold: float | None) -> float:
    """The unweighted complexity reward: log-normal closeness to ``gold``, or the no-gold band."""
    if gold is None:
        low, high = NO_GOLD_RANGE
        return 0.4 if low <= pred <= high else 0.1
    # A zero count (e.g. a bare VALUES) would make the ratio undefined; the clamp bounds it.
    ratio = (pred / gold) if gold > 0 else (RATIO_MAX if pred > 0 else 1.0)
    ratio = min(RATIO_MAX, max(RATIO_MIN, ratio))
    return math.exp(-0.5 * math.log(ratio) ** 2)


class ComplexityReward(Reward):
    """``complexity`` reward; see the module docstring for the count and the formula."""

    default_name = "complexity"
    needs_gold = False

    def __init__(self, weight: float = 0.6, *, gold_column: str = "gold_sql", name: str = "complexity"):
        super().__init__(weight, name=name)
        self.gold_column = gold_column

    def score(self, completions: list[Any], columns: dict[str, Any]) -> list[float | None]:
        """One reward per completion; ``None`` where a gold is given but does not parse."""
        n = len(completions)
        golds = self.column(columns, self.gold_column, n, required=False)
        out: list[float | None] = []
        for completion, gold, names in zip(completions, golds, self.names(columns, n)):
            gold_c = None
            if gold is not None and str(gold).strip():
                gold_c = sql_complexity(str(gold))
                if gold_c is None:
                    out.append(None)
                    continue
            pred_c = sql_complexity(completion_sql(completion, names))
            if pred_c is None:
                out.append(0.0)
                continue
            out.append(self.weight * complexity_score(pred_c, gold_c))
        return out
