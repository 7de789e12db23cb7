"""The recipe registry: name -> (config class, run function). The CLI's ``train`` verbs and the
comparison both look recipes up here, so a new recipe is one entry.

``RecipeFn`` names the contract every run function keeps (torchtune's ``recipe_interfaces.py``
style: it states the contract, it is not a base class to reuse code from). Anything a recipe takes
beyond it (``examples=``, ``rows=``, ``extra_rewards=``, ...) is optional and recipe-specific;
callers that only know the contract (``commands/train.py``, the comparison's child process) pass
``resume``, ``callbacks`` and ``log`` and nothing else.

Recipes outside the package (a plugin, a test's fake one) register through the Python entry-point
group ``sqlcoach.recipes``: ``name = "module:OBJECT"`` where ``OBJECT`` is a ``Recipe``. They are
loaded with this module, in every process (so a comparison's child processes find them too); a
plugin may not replace a built-in recipe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

from sqlcoach.config import CONFIGS
from sqlcoach.errors import ConfigError
from sqlcoach.train.dpo import run_dpo
from sqlcoach.train.grpo import run_grpo
from sqlcoach.train.ppo import run_ppo
from sqlcoach.train.rm import run_rm
from sqlcoach.train.sft import run_sft
from sqlcoach.train.verifier import run_verifier

ENTRY_POINT_GROUP = "sqlcoach.recipes"


class RecipeFn(Protocol):
    """``run(cfg, *, resume, callbacks, log) -> summary``: train as the validated config ``cfg``
    says, and return the run's ``train.run.RunSummary`` as a flat dict (``RunSummary.as_dict()``:
    the common fields with the recipe's details beside them), also written to
    ``cfg.output_dir/summary.json``.

    * ``resume``: continue from the last complete ``checkpoint-N`` in ``output_dir`` (the
      wall-clock budget included); without one, start from step 0 and say so;
    * ``callbacks``: ``transformers.TrainerCallback``s added to the recipe's own; a recipe with its
      own loop (PPO) calls their ``on_step_begin`` / ``on_step_end`` around each step;
    * ``log``: where the recipe's lines go (rank 0 only under several processes)."""

    def __call__(self, cfg: Any, *, resume: bool = False, callbacks: list[Any] | None = None,
                 log: Callable[[str], None] = print) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Recipe:
    """A recipe's config class and run function."""

    config: type
    run: RecipeFn


def _plugins(builtin: dict[str, Recipe]) -> dict[str, Recipe]:
    """The recipes registered under the entry-point group ``sqlcoach.recipes``."""
    from importlib.metadata import entry_points

    out: dict[str, Recipe] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in builtin:
            raise ConfigError(f"entry point {ep.value!r} ({ENTRY_POINT_GROUP}) would replace the built-in recipe {ep.name!r}")
        recipe = ep.load()
        if not isinstance(recipe, Recipe):
            raise ConfigError(f"entry point {ep.name} = {ep.value!r} ({ENTRY_POINT_GROUP}) must name a "
                              f"sqlcoach.train.recipes.Recipe, got {type(recipe).__name__}")
        out[ep.name] = recipe
    return out


_RUN: dict[str, RecipeFn] = {"sft": run_sft, "rm": run_rm, "dpo": run_dpo, "grpo": run_grpo, "ppo": run_ppo,
                             "verifier": run_verifier}

#: name -> Recipe: the built-in recipes (the same keys as ``sqlcoach.config.CONFIGS``), then the plugins'.
RECIPES: dict[str, Recipe] = {name: Recipe(CONFIGS[name], _RUN[name]) for name in CONFIGS}
RECIPES.update(_plugins(RECIPES))
