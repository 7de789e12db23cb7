"""The ONE comparer of query results: metrics and rewards both call ``same_result``.

Two modes (see docs/comparison.md for a side-by-side table):

* ``"spider"``: the test-suite scorer's semantics (Zhong et al., 2020), reimplemented. Empty vs
  empty is equal; otherwise the row counts and column counts must match, rows are compared as a
  bag (multiset), and the predicted columns may appear in ANY order: the result is equal if some
  permutation of the predicted columns makes the bags equal (or, with ``order_matters``, the row
  sequences equal). Values compare with Python equality, so ``1 == 1.0``.
* ``"bird"``: BIRD's official rule, ``set(pred) == set(gold)``: column order matters, duplicates
  and row order do not.

What the caller does, not this module: deciding ``order_matters`` (the test-suite scorer uses
"the gold has ORDER BY"), stripping DISTINCT, and requiring a match on every database of a
test-suite folder.

Where we depart from the official test-suite code, on purpose: it prunes column permutations by
sampling 20 random rows and quick-rejects with a string-typed sort key; we prune with each
column's full multiset of values (deterministic, and sound: a permutation that makes the bags
equal must map every column onto one with the same multiset), which usually leaves exactly one
permutation to check, and when columns are identical, extend partial column assignments only
while the projected rows still agree. There is no separate per-row quick reject: the column
multisets reject faster. The answers are the same; ours does not depend on a random seed and
stays fast on wide results with many identical columns.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Sequence

from sqlcoach.errors import ConfigError

COMPARE_MODES: tuple[str, ...] = ("spider", "bird")

Row = Sequence[Any]


def same_result(
    pred_rows: Iterable[Row],
    gold_rows: Iterable[Row],
    *,
    mode: str = "spider",
    order_matters: bool = False,
) -> bool:
    """Whether the predicted rows denote the same result as the gold rows under ``mode``.

    Rows are sequences of values (tuples or lists). ``order_matters`` is used by ``"spider"``
    only (BIRD compares sets). Raises ConfigError (a ValueError) for an unknown mode. Pure and deterministic.
    """
    if mode == "bird":
        return _bird(pred_rows, gold_rows)
    if mode == "spider":
        return _spider(_tuples(pred_rows), _tuples(gold_rows), order_matters)
    raise ConfigError(f"unknown comparison mode {mode!r}; expected one of {', '.join(COMPARE_MODES)}")


def _tuples(rows: Iterable[Row]) -> list[tuple[Any, ...]]:
    return [r if type(r) is tuple else tuple(r) for r in rows]


def _bird(pred_rows: Iterable[Row], gold_rows: Iterable[Row]) -> bool:
    return set(_tuples(pred_rows)) == set(_tuples(gold_rows))


def _spider(pred: list[tuple[Any, ...]], gold: list[tuple[Any, ...]], order_matters: bool) -> bool:
    if not pred and not gold:
        return True
    if len(pred) != len(gold):
        return False
    ncols = len(gold[0])
    # Every row must have the same width; a ragged input cannot be a query result.
    if set(map(len, gold)) != {ncols} or set(map(len, pred)) != {ncols}:
        return False
    # Quick paths: identical (the common case for correct predictions), then same bag.
    if pred == gold:
        return True
    if not order_matters and Counter(pred) == Counter(gold):
        return True
    if ncols == 1:
        return False  # the only permutation (identity) was tried by the quick paths
    pred_cols = list(zip(*pred))  # [ncols][nrows]
    gold_cols = list(zip(*gold))
    pred_bags = [Counter(c) for c in pred_cols]
    gold_bags = [Counter(c) for c in gold_cols]
    # candidates[g] = predicted columns whose value multiset equals gold column g's: a valid
    # permutation can only map g onto one of these.
    candidates = [[p for p in range(ncols) if pred_bags[p] == gold_bags[g]] for g in range(ncols)]
    if any(not c for c in candidates):
        return False
    if all(len(c) == 1 for c in candidates):  # the usual case: one possible permutation
        perm = [c[0] for c in candidates]
        return len(set(perm)) == ncols and _rows_agree(pred_cols, perm, gold, order_matters)
    # Ambiguous (identical columns): search, the most constrained gold columns first.
    order = sorted(range(ncols), key=lambda g: len(candidates[g]))
    return _search(pred_cols, gold_cols, order, candidates, [], set(), order_matters)


def _rows_agree(
    pred_cols: list[tuple[Any, ...]], take: list[int], gold_rows: list[tuple[Any, ...]], order_matters: bool
) -> bool:
    """Whether the rows made of predicted columns ``take`` equal ``gold_rows`` (bag or sequence)."""
    rows = list(zip(*(pred_cols[p] for p in take)))
    return rows == gold_rows if order_matters else Counter(rows) == Counter(gold_rows)


def _search(
    pred_cols: list[tuple[Any, ...]],
    gold_cols: list[tuple[Any, ...]],
    order: list[int],
    candidates: list[list[int]],
    chosen: list[int],
    used: set[int],
    order_matters: bool,
) -> bool:
    """Depth-first search for a column mapping gold[order[k]] <- pred[chosen[k]].

    A partial mapping is kept only if the rows projected onto the columns assigned so far agree
    (as sequences when ``order_matters``, else as bags): a full mapping is the permutation sought.
    """
    depth = len(chosen)
    if depth == len(order):
        return True
    g = order[depth]
    gold_proj = list(zip(*(gold_cols[c] for c in order[: depth + 1])))
    for p in candidates[g]:
        if p in used:
            continue
        chosen.append(p)
        if _rows_agree(pred_cols, chosen, gold_proj, order_matters):
            used.add(p)
            if _search(pred_cols, gold_cols, order, candidates, chosen, used, order_matters):
                return True
            used.discard(p)
        chosen.pop()
    return False
