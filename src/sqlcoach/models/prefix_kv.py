"""A model's KV cache of a shared token prefix, encoded once and copied to every row that extends it.

Text-to-SQL inputs of one database share most of their tokens (system prompt + schema; the
verifier's ``schema: ... question:`` head); only the question, the history or the candidate
differs. ``PrefixKV.prefix(tokens)`` runs the model once on the longest token prefix a group of
rows shares (found on token ids, never on text, since tokenization at a boundary may differ:
``shared_prefix_len``) and keeps that one-row cache (``transformers.DynamicCache``), cropping it for
the next group when the two share at least half of it. A caller then copies it to ``b`` rows
(``Prefix.rows``) and runs only each row's suffix over it, with an attention mask covering the
prefix and position ids continuing from it, so that every query attends to the same keys at the
same positions as over the whole row: the same computation, differing only in how floating-point
sums are blocked. Generation from such a cache is ``sqlcoach.generate.prefix_cache``; the
verifier's scores are ``sqlcoach.models.verifier.score_texts(prefix_cache=True)``.

Only a ``DynamicCache`` made of plain full-attention layers is reused (no sliding window, no
linear attention, no quantized or offloaded cache), with ``sdpa`` or ``eager`` attention; anything
else makes ``PrefixKV.prefix`` return ``None`` (and ``usable`` False) and the caller computes the
rows without the cache.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    """Number of leading tokens ``a`` and ``b`` share."""
    k = 0
    for x, y in zip(a, b):
        if x != y:
            break
        k += 1
    return k


def shared_prefix_len(rows: Sequence[Sequence[int]]) -> int:
    """Longest prefix every row shares, capped at ``min(len) - 1`` so that each row keeps at least
    one token of its own (``generate`` needs the last prompt token's logits)."""
    if not rows:
        return 0
    first = rows[0]
    k = min(len(r) for r in rows) - 1
    for r in rows[1:]:
        k = min(k, common_prefix_len(first, r))
    return max(k, 0)


def plan_batches(enc: Sequence[Sequence[int]], batch_size: int, *, batch_overhead: int) -> list[list[int]]:
    """Batches (lists of indices into ``enc``) of at most ``batch_size`` prompts covering every prompt once.

    The prompts are ordered by token ids, so the rows sharing a prefix are neighbours and a batch's
    shared prefix is the one of its first and last row. The order is cut into batches minimising
    ``sum(p + rows * (longest - p) + batch_overhead)`` over batches (``p``: the batch's shared prefix,
    what it costs to encode with the prefix cache), by dynamic programming over the cut points."""
    order = sorted(range(len(enc)), key=lambda i: enc[i])
    n = len(order)
    if n == 0:
        return []
    adj = [common_prefix_len(enc[order[k]], enc[order[k + 1]]) for k in range(n - 1)]
    inf = float("inf")
    best = [0.0] + [inf] * n  # best[i]: cheapest plan of the first i rows
    cut = [0] * (n + 1)
    for i in range(1, n + 1):
        longest = 0
        shortest = 1 << 62
        shared = 1 << 62
        for j in range(i - 1, max(i - batch_size, 0) - 1, -1):  # batch = order[j:i], grown leftwards
            length = len(enc[order[j]])
            longest = max(longest, length)
            shortest = min(shortest, length)
            if j < i - 1:
                shared = min(shared, adj[j])
            p = max(min(shared, shortest - 1), 0)
            cost = best[j] + p + (i - j) * (longest - p) + batch_overhead
            if cost < best[i]:
                best[i], cut[i] = cost, j
    batches: list[list[int]] = []
    i = n
    while i > 0:
        batches.append(order[cut[i] : i])
        i = cut[i]
    return batches[::-1]


@dataclass
class Prefix:
    tokens: tuple[int, ...]
    cache: Any  # a one-row DynamicCache of exactly len(tokens) positions

    def rows(self, b: int) -> Any:
        """A copy of the cache with ``b`` identical rows (this one stays as it is, for the next batch)."""
        cache = copy.deepcopy(self.cache)
        cache.batch_repeat_interleave(b)
        return cache


def positions(mask: Any) -> Any:
    """Position ids from an attention mask, as ``generate`` derives them: ``cumsum - 1``, 0 on padding."""
    return (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)


class PrefixKV:
    """Encodes shared prefixes; keeps the last prefix's one-row cache so that the next group of rows
    (the same database) starts from it, cropped to what the two share. ``cached_tokens`` counts the
    prefix tokens its callers read from a cache instead of encoding them again."""

    def __init__(self, model: Any):
        self.model = model
        self.last: Prefix | None = None
        self.cached_tokens = 0  # input tokens taken from a cache instead of being encoded again (callers count)
        self.usable = attention_of(model) in SAFE_ATTENTION  # False also once the model gave a cache it cannot reuse

    def prefix(self, tokens: tuple[int, ...]) -> Prefix | None:
        """The one-row cache of ``tokens`` or of a long part of them: the previous prefix cropped to
        what it shares with ``tokens`` when that is at least half of ``tokens``, else a fresh encode."""
        import torch

        last = self.last
        if last is not None:
            k = common_prefix_len(last.tokens, tokens)
            if k == len(last.tokens) and 2 * k >= len(tokens):
                return last
            if 2 * k >= len(tokens) and k > 0:
                cache = copy.deepcopy(last.cache)
                cache.crop(k - len(last.tokens))  # negative: drop that many positions from the end
                self.last = Prefix(last.tokens[:k], cache)
                return self.last
        device = next(self.model.parameters()).device
        out = self.model(input_ids=torch.tensor([tokens], dtype=torch.long, device=device), use_cache=True)
        cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
        if not reusable(cache) or cache.get_seq_length() != len(tokens):
            self.usable = False  # the next batch would get the same kind of cache
            return None
        self.last = Prefix(tokens, cache)
        return self.last


#: attention implementations whose masking of the padding between prefix and suffix is the plain
#: 2-D mask turned into a 4-D one (flash-attention's unpadding is not relied on)
SAFE_ATTENTION = ("sdpa", "eager")


def attention_of(model: Any) -> str:
    """The model's attention implementation (``config._attn_implementation``; ``sdpa`` when unset)."""
    config = getattr(model, "config", None)
    return str(getattr(config, "_attn_implementation", None) or "sdpa")


def reusable(cache: Any) -> bool:
    """True for a ``DynamicCache`` whose every layer is a plain full-attention ``DynamicLayer``: the
    only cache whose copy per row, crop and growth this module relies on."""
    try:
        from transformers.cache_utils import DynamicCache, DynamicLayer
    except ImportError:
        return False
    layers = getattr(cache, "layers", None)
    return type(cache) is DynamicCache and bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


def cache_kwarg() -> str:
    """The keyword ``generate`` and ``forward`` take the KV cache under: ``cache`` since transformers
    renamed it, ``past_key_values`` before."""
    from transformers.generation import utils

    return "cache" if "cache" in getattr(utils, "ALL_CACHE_NAMES", ()) else "past_key_values"

