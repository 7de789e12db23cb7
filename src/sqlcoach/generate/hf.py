"""Batched generation with Hugging Face ``generate``: left padding, KV cache, length-sorted batches.

Prompts are sorted by token length (longest first) before batching so that each batch holds
prompts of similar length (little padding) and an out-of-memory error shows on the first batch,
not after an hour; outputs come back in the caller's order. With the prefix cache (on for greedy
decoding, ``sqlcoach.generate.prefix_cache``) batches are instead formed from prompts sharing a
token prefix (one database's system prompt + schema), and that prefix is encoded once per batch.

Decoding is what the caller says: ``decoding_config`` + ``neutral_generate`` (used here and by PPO's
rollout) never let a checkpoint's ``generation_config`` (repetition penalty, top-k, n-gram bans,
min length, beams, ...) change what is decoded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
    #: prompt tokens read from a shared-prefix cache instead of being encoded again (``prefix_cache``)
    cached_prompt_tokens: int = 0


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
    prefix_cache: bool | None = None,
) -> Generations:
    """Generate ``n`` completions per prompt (already chat-formatted text).

    ``n == 1`` and ``temperature == 0`` is greedy; otherwise sampling with ``temperature``
    (``n > 1`` with temperature 0 samples at temperature 1.0, since n identical greedy answers would
    be useless); sampling draws from ``softmax(logits / temperature)`` cut by ``top_p`` alone (no
    top-k), and nothing in the checkpoint's ``generation_config`` changes either (``decoding_config``).
    ``batch_size`` counts prompts; a batch holds ``batch_size * n`` sequences.
    Generated-token counts exclude padding and stop at the first eos of each sequence.
    ``on_batch(k)`` is called after each batch with the number of prompts it finished.

    ``prefix_cache`` (``sqlcoach.generate.prefix_cache``): batches are formed from prompts that share
    a token prefix, which is encoded once per batch and reused by every row (and every sample).
    ``None`` (default): on for greedy decoding, where the text is the same as without it; off for
    sampling, where it draws the same distribution but not the same draws (the batches, hence the
    random stream, differ). ``True``/``False``: on/off whatever the decoding."""
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
    # Nothing from the checkpoint's generation_config (penalties, top-k, min length...) applies.
    gen_cfg = decoding_config(
        model, tokenizer, do_sample=sample, temperature=temperature if temperature > 0 else 1.0, top_p=top_p,
        top_k=0, max_new_tokens=max_new_tokens, num_return_sequences=n,
    )
    torch.manual_seed(seed)
    eos = set(gen_cfg.eos_token_id)
    prompt_tokens = 0
    generated = 0
    from sqlcoach.generate.prefix_cache import BATCH_OVERHEAD_PER_NEW_TOKEN, prefix_cache_for
    from sqlcoach.models.prefix_kv import plan_batches

    reuse = prefix_cache_for(model, prefix_cache, sampling=sample)
    if reuse is not None:
        batches = plan_batches(enc, batch_size, batch_overhead=BATCH_OVERHEAD_PER_NEW_TOKEN * max_new_tokens)
    else:
        batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else gen_cfg.eos_token_id[0]
    model.eval()
    with torch.inference_mode():
        for idx in batches:
            prompt_tokens += sum(len(enc[i]) for i in idx)
            done = reuse.generate(gen_cfg, [enc[i] for i in idx], n=n, pad_id=pad_id) if reuse is not None else None
            if done is not None:
                seqs, width = done
            else:
                batch = tokenizer.pad({"input_ids": [enc[i] for i in idx]}, return_tensors="pt")
                batch = {k: v.to(device) for k, v in batch.items()}
                seqs = neutral_generate(model, gen_cfg, **batch)  # [B*n, prompt_len + new]
                width = batch["input_ids"].shape[1]
            new = seqs[:, width:].tolist()
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
    return Generations(out, prompt_tokens, generated, time.monotonic() - t0,
                       cached_prompt_tokens=reuse.cached_tokens if reuse is not None else 0)


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


def decoding_config(
    model: Any,
    tokenizer: Any,
    *,
    do_sample: bool,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    max_new_tokens: int,
    num_return_sequences: int = 1,
    eos_token_id: list[int] | None = None,
) -> Any:
    """A ``transformers.GenerationConfig`` built from scratch: the decoding the caller asks for, and nothing else.

    Guarantee (with ``neutral_generate``): greedy (``do_sample=False``) is the argmax of the raw
    logits at every step; sampling draws from ``softmax(logits / temperature)``, cut only by the
    ``top_k`` (0: none) and ``top_p`` (1.0: none) given here. No other logits processor or warper
    runs, whatever the checkpoint's ``generation_config`` holds: repetition/encoder-repetition
    penalty, ``no_repeat_ngram_size``, ``min_p``/``typical_p``/``epsilon``/``eta`` cut-offs, bad words,
    suppressed tokens, sequence bias, forced BOS/EOS, ``min_length``/``min_new_tokens``, beams and
    length penalty, renormalisation, guidance, watermarking, stop strings, ``max_time``, assisted or
    contrastive decoding. Only the model's special tokens are kept: eos (``eos_token_id``, default
    ``eos_ids(model, tokenizer)``: the generation config's list plus the tokenizer's), pad (the
    tokenizer's) and bos / decoder start (the generation config's, else the tokenizer's bos).

    How: every field whose neutral value is not ``None`` is set explicitly (``num_beams=1``,
    ``repetition_penalty=1.0``, ``no_repeat_ngram_size=0``, ``min_length=0``, ...; and ``top_k`` is
    always set when sampling, because transformers fills an unset ``top_k`` with its global default
    50). Fields whose neutral value *is* ``None`` (``bad_words_ids``, ``suppress_tokens``,
    ``sequence_bias``, ``forced_*_token_id``, ``min_p``, ``min_new_tokens``, ...) cannot be pinned in the
    config itself: ``GenerationMixin._prepare_generation_config`` (transformers 5.x) copies every
    ``None`` field of the config passed to ``generate`` from ``model.generation_config``
    (``update(**model.generation_config.to_dict(), defaults_only=True)``) before filling the rest
    from ``GenerationConfig._get_default_generation_params()``. ``neutral_generate`` therefore swaps
    this very config in as ``model.generation_config`` for the duration of the call, so that the
    merge copies ``None`` onto ``None``. Sampling-only fields stay unset when greedy (transformers
    warns about them otherwise; warpers only run when sampling)."""
    from transformers import GenerationConfig

    gc = getattr(model, "generation_config", None)
    bos = getattr(gc, "bos_token_id", None) if gc is not None else None
    if bos is None:
        bos = getattr(tokenizer, "bos_token_id", None)
    fields: dict[str, Any] = dict(
        max_new_tokens=max_new_tokens,
        min_length=0,
        do_sample=do_sample,
        num_beams=1,
        num_return_sequences=num_return_sequences,
        use_cache=True,
        repetition_penalty=1.0,
        encoder_repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        encoder_no_repeat_ngram_size=0,
        length_penalty=1.0,
        early_stopping=False,
        renormalize_logits=False,
        remove_invalid_values=False,
        output_scores=False,
        output_logits=False,
        return_dict_in_generate=False,
        eos_token_id=list(eos_token_id) if eos_token_id is not None else eos_ids(model, tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=bos,
        decoder_start_token_id=getattr(gc, "decoder_start_token_id", None) if gc is not None else None,
    )
    if do_sample:
        fields.update(temperature=temperature, top_p=top_p, top_k=top_k, typical_p=1.0, epsilon_cutoff=0.0,
                      eta_cutoff=0.0)
    return GenerationConfig(**fields)


@contextmanager
def _as_model_generation_config(model: Any, generation_config: Any) -> Iterator[None]:
    """``generation_config`` is ``model.generation_config`` inside the block, on every module that
    owns one (a peft wrapper's inner model too), and the originals are put back afterwards."""
    owners: list[Any] = [model]
    modules = getattr(model, "modules", None)
    if callable(modules):
        owners.extend(m for m in modules() if m is not model)
    saved = [(m, vars(m)["generation_config"]) for m in owners if "generation_config" in vars(m)]
    try:
        for m, _ in saved:
            object.__setattr__(m, "generation_config", generation_config)
        yield
    finally:
        for m, original in saved:
            object.__setattr__(m, "generation_config", original)


def neutral_generate(model: Any, generation_config: Any, **inputs: Any) -> Any:
    """``model.generate(**inputs, generation_config=generation_config)`` with nothing merged in from
    the checkpoint's own generation config (see ``decoding_config``). ``inputs`` are the tensors
    (``input_ids``, ``attention_mask``) and, from ``prefix_cache``, a KV cache to start from; every
    decoding setting belongs in ``generation_config``."""
    with _as_model_generation_config(model, generation_config):
        return model.generate(**inputs, generation_config=generation_config)
