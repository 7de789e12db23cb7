"""Optional vLLM backend (CUDA only; ``pip install 'sqlcoach[vllm]'``).

``vllm_generate_fn(model_path)`` returns a function with the signature of
``sqlcoach.generate.hf.generate_texts``, to pass as ``predict(..., generate_fn=...)``. vLLM does
its own batching and scheduling, so ``batch_size`` is ignored.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlcoach.errors import ConfigError
from sqlcoach.generate.hf import Generations


def vllm_available() -> tuple[bool, str]:
    """``(True, "")`` when vLLM can run here, else ``(False, reason)``."""
    try:
        import torch
    except ImportError:
        return False, "torch is not installed"
    if not torch.cuda.is_available():
        return False, "vLLM needs a CUDA GPU and torch sees none"
    try:
        import vllm  # noqa: F401
    except ImportError:
        return False, "vLLM is not installed: pip install 'sqlcoach[vllm]'"
    return True, ""


def vllm_generate_fn(model_path: str, *, gpu_memory_utilization: float = 0.85, dtype: str = "auto") -> Callable[..., Generations]:
    """Build the vLLM engine once and return a ``generate_texts``-compatible function.
    Raises ``ConfigError`` with the reason when vLLM cannot run on this machine."""
    ok, why = vllm_available()
    if not ok:
        raise ConfigError(f"--backend vllm: {why}")
    from vllm import LLM, SamplingParams

    llm = LLM(model=model_path, dtype=dtype, gpu_memory_utilization=gpu_memory_utilization)

    def generate(
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
        t0 = time.monotonic()
        temp = temperature if temperature > 0 else (1.0 if n > 1 else 0.0)
        params = SamplingParams(n=n, temperature=temp, top_p=top_p, max_tokens=max_new_tokens, seed=seed)
        outs = llm.generate(prompts, params, use_tqdm=False)
        texts = [[c.text for c in o.outputs] for o in outs]
        gen_tokens = sum(len(c.token_ids) for o in outs for c in o.outputs)
        prompt_tokens = sum(len(o.prompt_token_ids or ()) for o in outs)
        if on_batch is not None:
            on_batch(len(prompts))
        return Generations(texts, prompt_tokens, gen_tokens, time.monotonic() - t0)

    return generate
