"""``GenerateFn``: the contract of a batch generator, named once (DESIGN.md, style 13).

``sqlcoach.generate.hf.generate_texts`` is the reference implementation; ``vllm_backend``'s
``vllm_generate_fn`` / ``vllm_server_generate_fn`` build others, and tests pass their own. Callers
that take one (``predict(generate_fn=...)``, ``mine_pairs(generate_fn=...)``,
``pass_rate_filter(generate=...)``, ``train.rl.prompt_rows(generate=...)``) rely on this signature
and nothing else: ``texts[i]`` of the returned ``Generations`` holds the ``n`` completions of
``prompts[i]`` (already chat-formatted text), in the caller's order.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from sqlcoach.generate.hf import Generations


class GenerateFn(Protocol):
    """``(model, tokenizer, prompts, *, n, temperature, top_p, max_new_tokens, batch_size, seed,
    on_batch) -> Generations``. ``temperature == 0`` with ``n == 1`` is greedy; ``batch_size``
    counts prompts (a backend that batches on its own may ignore it); ``on_batch(k)`` is called
    with the number of prompts each batch finished; ``model`` may be ignored by a backend that
    holds the model itself (a vLLM engine or server)."""

    def __call__(self, model: Any, tokenizer: Any, prompts: list[str], *, n: int = 1, temperature: float = 0.0,
                 top_p: float = 1.0, max_new_tokens: int = 256, batch_size: int = 8, seed: int = 0,
                 on_batch: Callable[[int], None] | None = None) -> Generations: ...
