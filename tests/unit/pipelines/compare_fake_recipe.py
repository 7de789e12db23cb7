"""A fake training method for the compare tests: no torch, writes what a recipe writes."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass
class FakeRunConfig:
    model: str = ""
    data_path: str = ""
    output_dir: str = "runs/fake"
    max_steps: int = 3
    max_seconds: float | None = None
    per_device_train_batch_size: int = 4
    gradient_accumulation_steps: int = 2
    seed: int = 0
    template: str = "sql_terminal"
    fail: bool = False


def run_fake(cfg: FakeRunConfig, *, resume: bool = False, callbacks=None, log=print) -> dict:
    """Keeps ``sqlcoach.train.recipes.RecipeFn``; ``callbacks`` are not called (no steps to time)."""
    if cfg.fail:
        raise RuntimeError("the fake recipe was asked to fail")
    out = Path(cfg.output_dir)
    final = out / "final"
    final.mkdir(parents=True, exist_ok=True)
    (final / "config.json").write_text(json.dumps({"copied_from": cfg.model}))
    history = [{"step": s, "loss": 1.0 / s, "num_tokens": 100 * s} for s in range(1, cfg.max_steps + 1)]
    (out / "log_history.json").write_text(json.dumps(history))
    log(f"fake: {cfg.max_steps} steps")
    # the fields of sqlcoach.train.run.RunSummary that compare reads, plus two recipe details
    return {"final_dir": str(final), "global_step": cfg.max_steps, "seconds": 3.0, "train_seconds": 2.0,
            "median_step_seconds": 0.5, "peak_memory_mb": 1.0, "tokens_generated": 400,
            "reward_curve": [{"step": s + 1, "reward": 0.1 * s} for s in range(cfg.max_steps)]}


def __getattr__(name: str):
    """``FAKE``: the ``Recipe`` the compare test registers under the ``sqlcoach.recipes`` entry
    points (built on first use: importing this module must not import torch)."""
    if name == "FAKE":
        from sqlcoach.train.recipes import Recipe

        return Recipe(FakeRunConfig, run_fake)
    raise AttributeError(name)
