"""Shared-prefix reuse for batched HF generation: encode a batch's common token prefix once.

Text-to-SQL prompts of one database share most of their tokens (system prompt + schema); only the
question differs. ``generate.hf.generate_texts`` (and the agent loop's ``generate.agent.generate_turns``,
each round) with the prefix cache on, over ``sqlcoach.models.prefix_kv`` (the encoding of a shared
prefix, also used by the verifier's scoring):

1. orders the prompts by their token ids (so that prompts sharing a prefix are neighbours) and cuts
   that order into batches of at most ``batch_size`` prompts (``models.prefix_kv.plan_batches``: fewest prefill
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
from typing import Any

from sqlcoach.models.prefix_kv import PrefixKV, cache_kwarg, positions, shared_prefix_len

#: Cost of one extra batch, in prompt tokens per new token to generate: the decode steps of a batch
#: cost about as much as prefilling this many tokens each (a CPU decode step of a small model reads
#: every weight once). Only the batch plan depends on it, never what is generated.
BATCH_OVERHEAD_PER_NEW_TOKEN = 16


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


class PrefixCache(PrefixKV):
    """Generates batches from a cached shared prefix (``PrefixKV``: the last prefix is kept, so that
    the next batch of the same database starts from it)."""

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


def prefix_cache_for(model: Any, enabled: bool | None, *, sampling: bool) -> PrefixCache | None:
    """The one on/off rule of generation from a cached prefix (``predict``, ``predict --agent``):
    ``enabled`` ``True``/``False`` is on/off whatever the decoding; ``None`` (auto) is on for greedy
    decoding, whose text it leaves unchanged, and off for sampling, where it draws from the same
    distribution but not the same draws (the batches, hence the random stream, differ)."""
    on = enabled if enabled is not None else not sampling
    return PrefixCache(model) if on else None
