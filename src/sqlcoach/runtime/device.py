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
    """``cpu`` when asked for or when torch sees no GPU, else ``cuda`` (what every recipe trains on)."""
    return "cpu" if use_cpu else resolve_device("auto")
