"""The recipe registry: name -> (config class, run function). The CLI's ``train`` verbs and the
comparison both look recipes up here, so a new recipe is one entry.

Every run function takes ``(cfg, *, resume=False, callbacks/log/...)`` and returns the summary
dict of ``train.run.RunSummary`` (also written to ``output_dir/summary.json``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from sqlcoach.config import CONFIGS
from sqlcoach.errors import ConfigError
from sqlcoach.train.dpo import run_dpo
from sqlcoach.train.grpo import run_grpo
from sqlcoach.train.ppo import run_ppo
from sqlcoach.train.rm import run_rm
from sqlcoach.train.sft import run_sft
from sqlcoach.train.verifier import run_verifier


@dataclass(frozen=True)
class Recipe:
    """A recipe's config class and run function."""

    config: type
    run: Callable[..., dict[str, Any]]

    def spec(self) -> str:
        """``run_module:run_function:config_module:ConfigClass``: how a child process finds a
        recipe that is not in ``RECIPES`` (e.g. a test's fake one)."""
        return f"{self.run.__module__}:{self.run.__name__}:{self.config.__module__}:{self.config.__qualname__}"

    @classmethod
    def from_spec(cls, spec: str) -> Recipe:
        try:
            run_mod, run_fn, cfg_mod, cfg_cls = spec.split(":")
        except ValueError:
            raise ConfigError(f"recipe spec {spec!r} is not run_module:run_function:config_module:ConfigClass") from None
        return cls(getattr(importlib.import_module(cfg_mod), cfg_cls), getattr(importlib.import_module(run_mod), run_fn))


_RUN: dict[str, Callable[..., dict[str, Any]]] = {"sft": run_sft, "rm": run_rm, "dpo": run_dpo, "grpo": run_grpo, "ppo": run_ppo, "verifier": run_verifier}

#: name -> Recipe; the same keys as ``sqlcoach.config.CONFIGS``.
RECIPES: dict[str, Recipe] = {name: Recipe(CONFIGS[name], _RUN[name]) for name in CONFIGS}
