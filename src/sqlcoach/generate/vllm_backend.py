"""Optional vLLM backend (CUDA only; ``pip install 'sqlcoach[vllm]'``).

``vllm_generate_fn(model_path)`` returns a function with the signature of
``sqlcoach.generate.hf.generate_texts``, to pass as ``predict(..., generate_fn=...)``. vLLM does
its own batching and scheduling, so ``batch_size`` is ignored.

Decoding is what the caller says, as with ``generate.hf.decoding_config``: newer vLLM versions
(default ``generation_config="auto"``) take default sampling settings (repetition penalty, top-k,
...) from the checkpoint's ``generation_config.json``; the engine is built with
``generation_config="vllm"`` where the installed vLLM has that default, and every ``SamplingParams``
field that changes the distribution is set explicitly to its neutral value. The checkpoint's eos
ids are kept (passed as ``stop_token_ids``). Not tested here: vLLM needs CUDA and is not installed
on the test machines, so these lines are only checked for importing without vLLM.
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

    llm = LLM(model=model_path, dtype=dtype, gpu_memory_utilization=gpu_memory_utilization, **_neutral_engine_kwargs())
    stop_ids = _checkpoint_eos_ids(model_path)

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
        params = SamplingParams(
            n=n, temperature=temp, top_p=top_p if temp > 0 else 1.0, max_tokens=max_new_tokens, seed=seed,
            # neutral: nothing but temperature and top_p shapes the distribution
            top_k=-1, min_p=0.0, repetition_penalty=1.0, presence_penalty=0.0, frequency_penalty=0.0,
            min_tokens=0, stop_token_ids=list(stop_ids) or None,
        )
        outs = llm.generate(prompts, params, use_tqdm=False)
        texts = [[c.text for c in o.outputs] for o in outs]
        gen_tokens = sum(len(c.token_ids) for o in outs for c in o.outputs)
        prompt_tokens = sum(len(o.prompt_token_ids or ()) for o in outs)
        if on_batch is not None:
            on_batch(len(prompts))
        return Generations(texts, prompt_tokens, gen_tokens, time.monotonic() - t0)

    return generate


def _neutral_engine_kwargs() -> dict[str, Any]:
    """``{"generation_config": "vllm"}`` when this vLLM's engine default is ``"auto"`` (it would read
    the checkpoint's ``generation_config.json`` for default sampling settings), else ``{}`` (older
    versions default to ``None``, vLLM's own neutral defaults, and may not know ``"vllm"``)."""
    import dataclasses

    try:
        from vllm.engine.arg_utils import EngineArgs
    except ImportError:
        return {}
    fields = {f.name: f for f in dataclasses.fields(EngineArgs)} if dataclasses.is_dataclass(EngineArgs) else {}
    field = fields.get("generation_config")
    if field is None or field.default is None:
        return {}
    return {"generation_config": "vllm"}


def _checkpoint_eos_ids(model_path: str) -> list[int]:
    """The eos ids of the checkpoint's ``generation_config.json`` (may be a list), [] when it has none."""
    try:
        from transformers import GenerationConfig

        g = GenerationConfig.from_pretrained(model_path).eos_token_id
    except (OSError, ValueError):
        return []
    if isinstance(g, int):
        return [g]
    return [int(x) for x in g] if isinstance(g, (list, tuple)) else []
