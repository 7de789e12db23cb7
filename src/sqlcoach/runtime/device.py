"""Device and dtype choice, in one place (recipes, prediction, serving and the pipelines all use it)."""

from __future__ import annotations

from typing import Any

from sqlcoach.errors import ConfigError

DTYPES = ("auto", "float32", "bfloat16", "float16")


def resolve_dtype(name: str, device: str) -> Any:
    """The torch dtype for ``name``; ``auto`` is bfloat16 on a GPU that supports it, else float32."""
    import torch

    if name not in DTYPES:
        raise ConfigError(f"dtype must be one of {DTYPES}, got {name!r}")
    if name == "auto":
        if device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return getattr(torch, name)


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; anything else is returned unchanged."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but torch sees no CUDA device")
    return device


def training_device(use_cpu: bool = False) -> str:
    """``cpu`` when asked for or when torch sees no GPU, else this process's GPU: ``cuda:LOCAL_RANK``
    under ``torchrun`` / ``accelerate launch`` (so N ranks load onto N GPUs, not all onto GPU 0),
    plain ``cuda`` in a single process. What every recipe loads and trains on."""
    dev = "cpu" if use_cpu else resolve_device("auto")
    if dev == "cuda":
        from sqlcoach.runtime.dist import local_rank, world_size

        if world_size() > 1:
            return f"cuda:{local_rank()}"
    return dev


def device_map_for(device: str) -> dict[str, Any]:
    """The ``device_map`` a quantised (bitsandbytes) load needs: the whole model on this process's
    device: ``{"": LOCAL_RANK}`` on a GPU (``cuda:k`` -> k), else ``{"": device}``."""
    if device.startswith("cuda"):
        from sqlcoach.runtime.dist import local_rank

        return {"": int(device.split(":", 1)[1]) if ":" in device else local_rank()}
    return {"": device}
