"""Batched generation with Hugging Face ``generate``: left padding, KV cache, length-sorted batches.

Prompts are sorted by token length (longest first) before batching so that each batch holds
prompts of similar length (little padding) and an out-of-memory error shows on the first batch,
not after an hour; outputs come back in the caller's order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlcoach.errors import ConfigError


@dataclass
class Generations:
    """``texts[i]`` holds the ``n`` completions of prompt ``i`` (special tokens removed)."""

    texts: list[list[str]]
    prompt_tokens: int
    generated_tokens: int
    seconds: float


def generate_texts(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    *,
    n: int = 1,
    temperature: float = 0.0,
    top_p: float = 1.0,
    max_new_tokens: int = 256,
    batch_size: int = 8,
    seed: int = 0,
    on_batch: Callable[[int], None] | None = None,
) -> Generations:
    """Generate ``n`` completions per prompt (already chat-formatted text).

    ``n == 1`` and ``temperature == 0`` is greedy; otherwise sampling with ``temperature``
    (``n > 1`` with temperature 0 samples at temperature 1.0, since n identical greedy answers would
    be useless). ``batch_size`` counts prompts; a batch holds ``batch_size * n`` sequences.
    Generated-token counts exclude padding and stop at the first eos of each sequence.
    ``on_batch(k)`` is called after each batch with the number of prompts it finished."""
    import torch

    if n < 1:
        raise ConfigError(f"n must be >= 1 (completions per prompt), got {n}")
    t0 = time.monotonic()
    device = next(model.parameters()).device
    tokenizer.padding_side = "left"  # the last column must be every row's last prompt token
    enc = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -len(enc[i]))
    out: list[list[str]] = [[] for _ in prompts]
    sample = n > 1 or temperature > 0
    gen_kwargs: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "do_sample": sample,
        "num_return_sequences": n,
        "use_cache": True,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": eos_ids(model, tokenizer),
    }
    if sample:
        gen_kwargs["temperature"] = temperature if temperature > 0 else 1.0
        gen_kwargs["top_p"] = top_p
    else:
        # Silence "temperature set but do_sample=False" warnings from checkpoint defaults.
        gen_kwargs.update(temperature=None, top_p=None, top_k=None)
    torch.manual_seed(seed)
    eos = set(gen_kwargs["eos_token_id"])
    prompt_tokens = 0
    generated = 0
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = tokenizer.pad({"input_ids": [enc[i] for i in idx]}, return_tensors="pt")
            batch = {k: v.to(device) for k, v in batch.items()}
            prompt_tokens += int(batch["attention_mask"].sum())
            seqs = model.generate(**batch, **gen_kwargs)  # [B*n, prompt_len + new]
            new = seqs[:, batch["input_ids"].shape[1] :].tolist()
            for row, ids in enumerate(new):
                cut = len(ids)
                for j, t in enumerate(ids):
                    if t in eos:
                        cut = j + 1
                        break
                generated += cut
                out[idx[row // n]].append(tokenizer.decode(ids[:cut], skip_special_tokens=True))
            if on_batch is not None:
                on_batch(len(idx))
    return Generations(out, prompt_tokens, generated, time.monotonic() - t0)


def eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every id that ends an answer: the generation config's eos (may be a list) and the tokenizer's."""
    ids: list[int] = []
    gc = getattr(model, "generation_config", None)
    g = getattr(gc, "eos_token_id", None) if gc is not None else None
    if isinstance(g, int):
        ids.append(g)
    elif isinstance(g, (list, tuple)):
        ids.extend(int(x) for x in g)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids
