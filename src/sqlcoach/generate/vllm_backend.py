"""Optional vLLM backend (CUDA only; ``pip install 'sqlcoach[vllm]'``).

``vllm_generate_fn(model_path)`` returns a function with the signature of
``sqlcoach.generate.hf.generate_texts``, to pass as ``predict(..., generate_fn=...)``,
``mine_pairs(..., generate_fn=...)`` or ``pass_rate_filter(..., generate=...)``. vLLM does its
own batching and scheduling (continuous batching over everything it is given), so
``batch_size`` is ignored and the function says ``wants_all_prompts``: its callers hand it the
whole prompt list in one ``LLM.generate`` call instead of chunks, which would starve the
scheduler. ``model_path`` may be a LoRA adapter folder: the engine loads its base with
``enable_lora=True`` (``max_lora_rank`` from the adapter's ``r``) and every request carries a
``LoRARequest`` for the adapter, so nothing is merged or copied.

``vllm_server_generate_fn`` does the same through a running ``trl vllm-serve`` (TRL's
``VLLMClient``): GRPO's pass-rate filter in ``vllm_mode=server`` samples on the rollout server.

Decoding is what the caller says, as with ``generate.hf.decoding_config``: newer vLLM versions
(default ``generation_config="auto"``) take default sampling settings (repetition penalty, top-k,
...) from the checkpoint's ``generation_config.json``; the engine is built with
``generation_config="vllm"`` where the installed vLLM has that default, and every ``SamplingParams``
field that changes the distribution is set explicitly to its neutral value. The checkpoint's eos
ids are kept (passed as ``stop_token_ids``). Tested here against a fake ``vllm`` module (the
calls made: one ``generate`` with every prompt, the ``LoRARequest``); not yet run on a real vLLM,
which needs CUDA (``benchmarks/gpu_check.sh`` has the GPU check, prepared).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlcoach.errors import ConfigError
from sqlcoach.generate.base import GenerateFn
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


def vllm_generate_fn(
    model_path: str,
    *,
    gpu_memory_utilization: float = 0.85,
    dtype: str = "auto",
    release_after: int | None = None,
) -> GenerateFn:
    """Build the vLLM engine once and return a ``generate_texts``-compatible function.

    ``model_path``: a model folder or hub id, or a LoRA adapter folder (served on its base with
    ``enable_lora``). ``release_after=n``: the engine is shut down and its GPU memory freed after
    n calls (GRPO's colocated pass-rate filter, before TRL builds its own engine). Raises
    ``ConfigError`` with the reason when vLLM cannot run on this machine."""
    ok, why = vllm_available()
    if not ok:
        raise ConfigError(f"--backend vllm: {why}")
    from vllm import LLM, SamplingParams

    base, lora_request, lora_kwargs = _lora(model_path)
    state: dict[str, Any] = {"llm": LLM(model=base, dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
                                        **lora_kwargs, **_neutral_engine_kwargs()), "calls": 0}
    stop_ids = _checkpoint_eos_ids(base)

    # GenerateFn's signature: each implementation spells it (tests/unit/test_extension_points.py
    # checks that both here and generate_texts keep it)
    def generate(model: Any, tokenizer: Any, prompts: list[str], *, n: int = 1, temperature: float = 0.0,
                 top_p: float = 1.0, max_new_tokens: int = 256, batch_size: int = 8, seed: int = 0,
                 on_batch: Callable[[int], None] | None = None) -> Generations:
        t0 = time.monotonic()
        llm = state["llm"]
        if llm is None:
            raise ConfigError("this vLLM engine was released (release_after); build a new one")
        temp = temperature if temperature > 0 else (1.0 if n > 1 else 0.0)
        params = SamplingParams(
            n=n, temperature=temp, top_p=top_p if temp > 0 else 1.0, max_tokens=max_new_tokens, seed=seed,
            # neutral: nothing but temperature and top_p shapes the distribution
            top_k=-1, min_p=0.0, repetition_penalty=1.0, presence_penalty=0.0, frequency_penalty=0.0,
            min_tokens=0, stop_token_ids=list(stop_ids) or None,
        )
        extra = {"lora_request": lora_request} if lora_request is not None else {}
        outs = llm.generate(list(prompts), params, use_tqdm=False, **extra)  # every prompt at once
        texts = [[c.text for c in o.outputs] for o in outs]
        gen_tokens = sum(len(c.token_ids) for o in outs for c in o.outputs)
        prompt_tokens = sum(len(o.prompt_token_ids or ()) for o in outs)
        if on_batch is not None:
            on_batch(len(prompts))
        state["calls"] += 1
        if release_after is not None and state["calls"] >= release_after:
            _release(state)
        return Generations(texts, prompt_tokens, gen_tokens, time.monotonic() - t0)

    generate.wants_all_prompts = True  # type: ignore[attr-defined]
    return generate


def vllm_server_generate_fn(
    tokenizer: Any, *, base_url: str | None = None, host: str = "0.0.0.0", port: int = 8000, timeout: float = 240.0,
) -> GenerateFn:
    """A ``generate_texts``-compatible function that samples on a running ``trl vllm-serve``
    (TRL's ``VLLMClient``; the server holds the model, so ``model`` is ignored); the token ids it
    returns are decoded with ``tokenizer``. All prompts go in one request."""
    try:
        from trl.generation.vllm_client import VLLMClient
    except ImportError:
        try:
            from trl.extras.vllm_client import VLLMClient  # older TRL
        except ImportError as exc:
            raise ConfigError("vllm_mode=server needs TRL's VLLMClient (pip install 'trl[vllm]')") from exc
    client = VLLMClient(base_url=base_url, host=host, server_port=port, connection_timeout=timeout)

    def generate(model: Any, tok: Any, prompts: list[str], *, n: int = 1, temperature: float = 0.0,
                 top_p: float = 1.0, max_new_tokens: int = 256, batch_size: int = 8, seed: int = 0,
                 on_batch: Callable[[int], None] | None = None) -> Generations:
        t0 = time.monotonic()
        out = client.generate(list(prompts), n=n, temperature=temperature if temperature > 0 else 1.0,
                              top_p=top_p, top_k=0, min_p=0.0, repetition_penalty=1.0, max_tokens=max_new_tokens)
        ids = out["completion_ids"]  # [P * n] token ids, prompt-major
        texts = [[tokenizer.decode(ids[i * n + j], skip_special_tokens=True) for j in range(n)] for i in range(len(prompts))]
        prompt_tokens = sum(len(p) for p in out.get("prompt_ids", []))
        if on_batch is not None:
            on_batch(len(prompts))
        return Generations(texts, prompt_tokens, sum(len(c) for c in ids), time.monotonic() - t0)

    generate.wants_all_prompts = True  # type: ignore[attr-defined]
    return generate


def _lora(model_path: str) -> tuple[str, Any, dict[str, Any]]:
    """``(base model, LoRARequest or None, engine kwargs)`` for ``model_path`` (adapter or model)."""
    import json
    from pathlib import Path

    from sqlcoach.models.load import is_adapter

    if not is_adapter(model_path):
        return model_path, None, {}
    from vllm.lora.request import LoRARequest

    conf = json.loads((Path(model_path) / "adapter_config.json").read_text())
    base = conf.get("base_model_name_or_path")
    if not base:
        raise ConfigError(f"{model_path}/adapter_config.json names no base_model_name_or_path")
    rank = int(conf.get("r") or 8)
    # vLLM accepts these ranks for max_lora_rank; the smallest one that holds the adapter
    max_rank = next((r for r in (8, 16, 32, 64, 128, 256, 320, 512) if r >= rank), rank)
    return str(base), LoRARequest("sqlcoach-adapter", 1, str(model_path)), {"enable_lora": True, "max_lora_rank": max_rank}


def _release(state: dict[str, Any]) -> None:
    """Drop the engine and give its GPU memory back (vLLM frees it when the engine is collected)."""
    import gc

    state["llm"] = None
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


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
