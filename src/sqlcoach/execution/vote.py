"""Self-consistency: execute every sampled SQL and vote by result set (Wang et al., 2023).

Rules (documented because they decide the score):

* samples whose SQL ran without error are grouped by result: a sample joins the first group whose
  *first member's* rows are the same result (``sqlcoach.execution.compare.same_result``, the one
  comparer of the project, row order ignored: two samples that differ only by ORDER BY vote
  together);
* the largest group wins; a tie goes to the group whose first member came first in sample order
  (the first sample is the greedy/highest-likelihood one when the caller puts it first);
* the winner's SQL is its group's first member;
* when no sample ran (all empty, unparsable, failing or timed out), the answer is the most frequent
  non-empty SQL string (ties: the earliest), and ``""`` when every sample is empty.

The result set decides, not the SQL text: different SQL that returns the same rows votes together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Vote:
    """``chosen``: index of the winning sample (``-1`` when every sample is empty).
    ``group_of[i]``: group id of sample i (``-1`` when it did not run). ``sizes[g]``: size of group g.
    ``fallback``: True when no sample ran and the string-frequency rule decided."""

    chosen: int
    sql: str
    group_of: tuple[int, ...]
    sizes: tuple[int, ...]
    fallback: bool


def vote(
    sqls: Sequence[str],
    results: Sequence[Any],
    *,
    same: Callable[[Any, Any], bool] | None = None,
) -> Vote:
    """Vote among ``sqls`` given their execution ``results`` (objects with ``.rows`` and ``.error``;
    ``None`` for a sample that was not run, e.g. an empty SQL). ``same(rows_a, rows_b)`` decides
    "same result"; the default is the project's comparer in Spider mode with order ignored."""
    if len(sqls) != len(results):  # internal invariant: callers pass one result per sampled SQL
        raise ValueError("sqls and results must have the same length")
    if same is None:
        from sqlcoach.execution.compare import same_result

        def same(a: Any, b: Any) -> bool:
            return same_result(a, b, mode="spider", order_matters=False)

    reps: list[int] = []  # first member (sample index) of each group
    sizes: list[int] = []
    group_of: list[int] = []
    for i, (sql, res) in enumerate(zip(sqls, results)):
        if not sql or res is None or getattr(res, "error", None) is not None or res.rows is None:
            group_of.append(-1)
            continue
        for g, rep in enumerate(reps):
            if same(res.rows, results[rep].rows):
                sizes[g] += 1
                group_of.append(g)
                break
        else:
            reps.append(i)
            sizes.append(1)
            group_of.append(len(reps) - 1)
    if reps:
        # max() keeps the first of equal keys, and groups are numbered in order of first member.
        best = max(range(len(reps)), key=lambda g: sizes[g])
        chosen = reps[best]
        return Vote(chosen, sqls[chosen], tuple(group_of), tuple(sizes), False)
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for i, sql in enumerate(sqls):
        if sql:
            counts[sql] = counts.get(sql, 0) + 1
            first.setdefault(sql, i)
    if not counts:
        return Vote(-1, "", tuple(group_of), (), True)
    top = max(counts, key=lambda s: (counts[s], -first[s]))
    return Vote(first[top], top, tuple(group_of), (), True)
