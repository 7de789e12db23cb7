"""Similarity to the gold SQL without running it: ``schema_linking`` and ``ngram`` (off by default).

Both are surface signals, easy to game on their own; they are meant as small shaping terms next
to the execution reward, and are not part of any preset.

* ``schema_linking``: Jaccard index of the schema items used by the predicted and the gold SQL,
  items being the table names and the column names (lower-cased, unqualified, ``*`` excluded)
  found in the sqlglot trees. 1.0 when both use none. Times ``weight`` (default 1.0).
* ``ngram``: mean over n = 1..4 of the F1 of clipped token n-gram counts between predicted and
  gold SQL (tokens: quoted literals, words, single punctuation marks; lower-cased), over the n
  for which both have at least one n-gram. Times ``weight`` (default 1.0).

No SQL or unparsable SQL (schema_linking) gives 0; a missing or unparsable gold gives ``None``.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from typing import Any, Sequence

from sqlglot import exp

from sqlcoach.rewards.base import Reward
from sqlcoach.rewards.common import completion_sql
from sqlcoach.sql.parse import parse_sql


@lru_cache(maxsize=1 << 15)
def schema_items(sql: str) -> frozenset[tuple[str, str]] | None:
    """``{("table", name), ("column", name)}`` used by ``sql``; ``None`` when it is empty or does not parse."""
    if not sql or not sql.strip():
        return None
    tree, error = parse_sql(sql)
    if tree is None or error:
        return None
    items: set[tuple[str, str]] = set()
    for node in tree.walk():
        if isinstance(node, exp.Table) and node.name:
            items.add(("table", node.name.lower()))
        elif isinstance(node, exp.Column) and node.name and node.name != "*":
            items.add(("column", node.name.lower()))
    return frozenset(items)


def jaccard(a: frozenset[Any] | set[Any], b: frozenset[Any] | set[Any]) -> float:
    """``|a ∩ b| / |a ∪ b|``, 1.0 when both are empty."""
    union = len(a | b)
    return 1.0 if union == 0 else len(a & b) / union


_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\w+|[^\s\w]")


def sql_tokens(sql: str) -> list[str]:
    """Lower-cased tokens of ``sql``: quoted literals whole, words, single punctuation marks."""
    return [t.lower() for t in _TOKEN.findall(sql)]


def ngram_f1(pred: Sequence[str], gold: Sequence[str], max_n: int = 4) -> float:
    """Mean over n = 1..max_n of the clipped n-gram F1 (n where both sides have an n-gram); in [0, 1]."""
    scores = []
    for n in range(1, max_n + 1):
        p = Counter(tuple(pred[i : i + n]) for i in range(len(pred) - n + 1))
        g = Counter(tuple(gold[i : i + n]) for i in range(len(gold) - n + 1))
        if not p or not g:
            continue
        overlap = sum((p & g).values())
        if overlap == 0:
            scores.append(0.0)
            continue
        precision, recall = overlap / sum(p.values()), overlap / sum(g.values())
        scores.append(2 * precision * recall / (precision + recall))
    return sum(scores) / len(scores) if scores else 0.0


class _GoldSimilarity(Reward):
    default_name = ""

    def __init__(self, weight: float = 1.0, *, gold_column: str = "gold_sql", name: str | None = None):
        super().__init__(weight, name=name)
        self.gold_column = gold_column

    def similarity(self, pred: str, gold: str) -> float | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def score(self, completions: list[Any], columns: dict[str, Any]) -> list[float | None]:
        """One reward in [0, weight] per completion, ``None`` where the gold is missing or unusable."""
        n = len(completions)
        golds = self.column(columns, self.gold_column, n)
        out: list[float | None] = []
        for completion, gold, names in zip(completions, golds, self.names(columns, n)):
            if gold is None or not str(gold).strip():
                out.append(None)
                continue
            sim = self.similarity(completion_sql(completion, names), str(gold))
            out.append(None if sim is None else self.weight * sim)
        return out


class SchemaLinkingReward(_GoldSimilarity):
    """``schema_linking``: Jaccard of the tables and columns used by prediction and gold."""

    default_name = "schema_linking"

    def similarity(self, pred: str, gold: str) -> float | None:
        gold_items = schema_items(gold)
        if gold_items is None:
            return None
        pred_items = schema_items(pred)
        return 0.0 if pred_items is None else jaccard(pred_items, gold_items)


class NgramReward(_GoldSimilarity):
    """``ngram``: token n-gram F1 (n = 1..4, averaged) between prediction and gold SQL."""

    default_name = "ngram"

    def similarity(self, pred: str, gold: str) -> float | None:
        gold_tokens = sql_tokens(gold)
        if not gold_tokens:
            return None
        return ngram_f1(sql_tokens(pred), gold_tokens)
