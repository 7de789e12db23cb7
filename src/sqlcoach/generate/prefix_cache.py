"""Shared-prefix reuse for batched HF generation: encode a batch's common token prefix once.

Text-to-SQL prompts of one database share most of their tokens (system prompt + schema); only the
question differs. ``generate.hf.generate_texts`` with the prefix cache on:

1. orders the prompts by their token ids (so that prompts sharing a prefix are neighbours) and cuts
   that order into batches of at most ``batch_size`` prompts (``plan_batches``: fewest prefill
   tokens plus a per-batch overhead, so that a database boundary does not land inside a batch when
   a split is cheaper);
2. for each batch, runs the model once on the longest token prefix every row shares (found on
   token ids, never on text, since tokenization at the boundary may differ), capped so that every
   row keeps at least one token of its own;
3. copies that one-row KV cache (``transformers.DynamicCache``) to every row and lets ``generate``
   encode only each row's suffix from it.

Layout of a batch (``p`` = prefix length, ``w`` = longest suffix): row ``i`` is
``[prefix | pad * (w - len(suffix_i)) | suffix_i]`` with attention mask ``[1]*p + [0]*pad + [1]*len``.
``generate`` derives position ids from the mask (``cumsum - 1``), so row ``i`` sees its prefix at
positions ``0..p-1`` and its suffix at ``p..``, exactly the positions of the left-padded prompt
without the cache; the padding in the gap is masked out of every attention. Every query therefore
attends to the same keys at the same positions as without the cache: greedy decoding is the same
computation, differing only in how floating-point sums are blocked (the tests and
``benchmarks/prefix_reuse.py`` check the greedy text byte for byte).

With ``n`` samples per prompt, the suffixes (all but each row's last token) are encoded once per
prompt and the cache is copied to the ``n`` samples afterwards, so a prompt is encoded once, not
``n`` times.

Only a ``DynamicCache`` made of plain full-attention layers is reused (no sliding window, no
linear attention, no quantized or offloaded cache), with ``sdpa`` or ``eager`` attention; anything
else makes ``PrefixCache.generate`` return ``None`` and the caller generates the batch without
the cache.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: Cost of one extra batch, in prompt tokens per new token to generate: the decode steps of a batch
#: cost about as much as prefilling this many tokens each (a CPU decode step of a small model reads
#: every weight once). Only the batch plan depends on it, never what is generated.
BATCH_OVERHEAD_PER_NEW_TOKEN = 16


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
class _Prefix:
    tokens: tuple[int, ...]
    cache: Any  # a one-row DynamicCache of exactly len(tokens) positions

    def rows(self, b: int) -> Any:
        """A copy of the cache with ``b`` identical rows (this one stays as it is, for the next batch)."""
        cache = copy.deepcopy(self.cache)
        cache.batch_repeat_interleave(b)
        return cache


def gap_layout(rows: Sequence[Sequence[int]], p: int, pad_id: int) -> tuple[Any, Any]:
    """``(input_ids, attention_mask)`` of ``rows`` whose first ``p`` tokens are one shared prefix:
    ``[prefix | pad... | suffix]`` per row, the padding between prefix and suffix masked out, so that
    every row's last column is its last prompt token (see the module docstring)."""
    import torch

    width = max(len(r) for r in rows) - p
    ids = torch.full((len(rows), p + width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), p + width), dtype=torch.long)
    ids[:, :p] = torch.tensor(list(rows[0][:p]), dtype=torch.long)
    mask[:, :p] = 1
    for i, r in enumerate(rows):
        s = list(r[p:])
        ids[i, p + width - len(s) :] = torch.tensor(s, dtype=torch.long)
        mask[i, p + width - len(s) :] = 1
    return ids, mask


def positions(mask: Any) -> Any:
    """Position ids from an attention mask, as ``generate`` derives them: ``cumsum - 1``, 0 on padding."""
    return (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)


class PrefixCache:
    """Generates batches from a cached shared prefix; keeps the last prefix's one-row cache so that
    the next batch of the same database starts from it (cropped to what the two share)."""

    def __init__(self, model: Any):
        self.model = model
        self.last: _Prefix | None = None
        self.cached_tokens = 0  # prompt tokens taken from a cache instead of being encoded again
        self.usable = attention_of(model) in SAFE_ATTENTION  # False also once the model gave a cache it cannot reuse

    def generate(self, generation_config: Any, rows: Sequence[Sequence[int]], *, n: int, pad_id: int,
                 **generate_kwargs: Any) -> tuple[Any, int] | None:
        """``(sequences, prompt_width)`` like ``model.generate`` for ``rows`` (token ids, no padding),
        ``n`` sequences per row (``generation_config.num_return_sequences`` is ignored: ``n`` rules);
        ``sequences[:, prompt_width:]`` are the new tokens, rows in ``rows`` order, ``n`` per row.
        ``generate_kwargs`` go to ``generate`` as they are (the agent's ``tokenizer``, which its stop
        strings need). ``None`` when the rows share no prefix or the model's cache is not a plain
        ``DynamicCache``: generate that batch without the cache then."""
        from sqlcoach.generate.hf import neutral_generate

        p = shared_prefix_len(rows)
        if p == 0 or not self.usable:
            return None
        prefix = self.prefix(tuple(rows[0][:p]))
        if prefix is None:
            return None
        p = len(prefix.tokens)
        device = next(self.model.parameters()).device
        ids, mask = gap_layout(rows, p, pad_id)
        ids, mask = ids.to(device), mask.to(device)
        cache = prefix.rows(len(rows))
        if n > 1:
            if ids.shape[1] - p > 1:  # encode each prompt's suffix once (all but the last column), then copy it per sample
                self.model(input_ids=ids[:, p:-1], attention_mask=mask[:, :-1], position_ids=positions(mask)[:, p:-1],
                           use_cache=True, **{cache_kwarg(): cache})
            cache.batch_repeat_interleave(n)
            ids, mask = ids.repeat_interleave(n, dim=0), mask.repeat_interleave(n, dim=0)
        self.cached_tokens += p * (len(rows) * n - 1)
        cfg = copy.deepcopy(generation_config)
        cfg.num_return_sequences = 1
        seqs = neutral_generate(self.model, cfg, input_ids=ids, attention_mask=mask, **{cache_kwarg(): cache},
                                **generate_kwargs)
        return seqs, ids.shape[1]

    def prefix(self, tokens: tuple[int, ...]) -> _Prefix | None:
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
                self.last = _Prefix(last.tokens[:k], cache)
                return self.last
        device = next(self.model.parameters()).device
        out = self.model(input_ids=torch.tensor([tokens], dtype=torch.long, device=device), use_cache=True)
        cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
        if not reusable(cache) or cache.get_seq_length() != len(tokens):
            self.usable = False  # the next batch would get the same kind of cache
            return None
        self.last = _Prefix(tokens, cache)
        return self.last


def prefix_cache_for(model: Any, enabled: bool | None, *, sampling: bool) -> PrefixCache | None:
    """The one on/off rule of generation from a cached prefix (``predict``, ``predict --agent``):
    ``enabled`` ``True``/``False`` is on/off whatever the decoding; ``None`` (auto) is on for greedy
    decoding, whose text it leaves unchanged, and off for sampling, where it draws from the same
    distribution but not the same draws (the batches, hence the random stream, differ)."""
    on = enabled if enabled is not None else not sampling
    return PrefixCache(model) if on else None


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

