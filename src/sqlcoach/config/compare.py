"""Typed configuration of a comparison (``sqlcoach compare --config configs/compare/X.yaml``).

``CompareConfig`` holds what every method shares (start, budget, evaluation); each entry of
``methods`` is a ``MethodSpec`` naming a recipe (a key of ``sqlcoach.train.recipes.RECIPES``),
its YAML and overrides. ``sqlcoach.pipelines.compare`` runs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlcoach.config.loading import build_config, load_config
from sqlcoach.errors import ConfigError

#: the recipes a comparison can train (``sqlcoach.train.recipes.RECIPES`` has the same keys; a test checks it)
METHOD_KINDS = ("sft", "dpo", "grpo", "ppo")
BUDGETS = ("steps", "seconds", "samples")


@dataclass
class MethodSpec:
    """One entry of ``methods:``. ``name`` labels it in the report (unique); ``method`` picks the
    recipe; ``config`` is that recipe's YAML (its own keys; ``""``: the recipe's defaults);
    ``overrides`` are recipe keys set on top; ``prepare`` lists ``sqlcoach`` command lines run
    before training, with ``{start}``, ``{world}``, ``{dir}`` (this method's folder), ``{seed}``
    replaced."""

    name: str = ""
    method: str = "sft"
    config: str = ""
    overrides: Any = None
    prepare: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("every method needs a name (its label in the report)")
        if not all(c.isalnum() or c in "-_." for c in self.name):
            raise ConfigError(f"method name {self.name!r} may only hold letters, digits, '-', '_' and '.' (it is a folder name)")
        if self.method not in METHOD_KINDS:
            raise ConfigError(f"method {self.name}: method must be one of {METHOD_KINDS}, got {self.method!r}")
        if self.overrides is None:
            self.overrides = {}
        if not isinstance(self.overrides, dict):
            raise ConfigError(f"method {self.name}: overrides must be a mapping of recipe key: value")


@dataclass
class CompareConfig:
    """A comparison (``configs/compare/*.yaml``). Paths are relative to the current directory."""

    # the shared start ("" = build one in OUT/start, like `sqlcoach demo`)
    start: str = ""
    world: str = ""  # Spider-layout folder; "" with start "" = OUT/start/world
    data_kind: str = "spider"
    start_size: str = "small"  # model size when building the start (sqlcoach.models.tiny.SIZES)
    start_sft_steps: int = 250
    # the built start's learning-rate schedule: constant (deliberately short of converged, the
    # demo comparison) or cosine (the demo's warmup-then-anneal, by steps: a converged start that
    # is the same on every machine, unlike the demo's clock-driven run)
    start_schedule: Literal["constant", "cosine"] = "constant"
    start_world_train: int | None = None  # questions in a built world (None: the world's default)
    start_world_dev: int | None = None
    # the budget every method gets
    budget: Literal["steps", "seconds", "samples"] = "steps"
    budget_value: float = 50
    seed: int = 0
    # run every method once per seed, all from the same start (built with `seed`); the report shows
    # mean +- 95% CI over questions and seeds and each method's paired difference to `control`
    # (null: one run, with `seed`)
    seeds: list[int] | None = None
    control: str | None = None  # the method the others are compared with (null: the one named "sft", if any)
    # evaluation (the same for every method)
    eval_split: str = "dev"
    eval_limit: int | None = None  # N questions of eval_split stratified over its databases (None: all)
    eval_batch_size: int = 32
    max_new_tokens: int = 96
    # the prompt every method trains and is scored with (null: the start model's sqlcoach_recipe.json;
    # a start built here records the demo's recipe)
    template: str | None = None
    schema_style: str | None = None
    schema_sample_values: int | None = None
    eval_start: bool = True  # also evaluate the start checkpoint itself (row "start")
    # also score N questions of a split whose databases were seen in training, evenly spread over
    # it (in-distribution EX: moves earlier than EX on unseen databases; 0 = off)
    seen_eval_split: str = "train"
    seen_eval_limit: int = 0
    # machine
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = 1  # OMP_NUM_THREADS of each child process (None: inherit)
    # what to compare
    methods: Any = None

    def __post_init__(self) -> None:
        if self.budget not in BUDGETS:
            raise ConfigError(f"budget must be one of {BUDGETS}, got {self.budget!r}")
        if self.budget_value <= 0:
            raise ConfigError(f"budget_value must be > 0 (got {self.budget_value}): each method needs something to spend")
        if self.budget in ("steps", "samples") and self.budget_value != int(self.budget_value):
            raise ConfigError(f"budget_value must be a whole number for budget={self.budget} (got {self.budget_value})")
        if self.start_schedule not in ("constant", "cosine"):
            raise ConfigError(f"start_schedule must be constant or cosine, got {self.start_schedule!r}")
        if self.start_sft_steps < 1:
            raise ConfigError("start_sft_steps must be >= 1")
        if self.eval_limit is not None and self.eval_limit < 1:
            raise ConfigError("eval_limit must be >= 1 or null (all questions)")
        if self.seen_eval_limit < 0:
            raise ConfigError("seen_eval_limit must be >= 0 (0: no evaluation on seen databases)")
        if self.eval_batch_size < 1 or self.max_new_tokens < 1:
            raise ConfigError("eval_batch_size and max_new_tokens must be >= 1")
        if self.threads is not None and self.threads < 1:
            raise ConfigError("threads must be >= 1 or null (inherit OMP_NUM_THREADS)")
        from sqlcoach.config.base import _choices_error
        from sqlcoach.data.registry import LOADERS
        from sqlcoach.prompts.templates import TEMPLATES
        from sqlcoach.schema.serialize import STYLES

        for key, choices in (("data_kind", LOADERS), ("template", TEMPLATES), ("schema_style", STYLES)):
            if getattr(self, key) is not None and getattr(self, key) not in choices:
                raise _choices_error(key, getattr(self, key), choices)
        if self.start and not self.world:
            raise ConfigError("world is required when start is given: the data the methods train and evaluate on")
        raw = self.methods
        if not raw:
            raise ConfigError("methods must list at least one method (name, method, config, overrides)")
        if not isinstance(raw, list):
            raise ConfigError("methods must be a list of mappings")
        specs: list[MethodSpec] = []
        for i, item in enumerate(raw):
            if isinstance(item, MethodSpec):
                specs.append(item)
                continue
            if not isinstance(item, dict):
                raise ConfigError(f"methods[{i}] must be a mapping with name, method, config, overrides")
            specs.append(build_config(MethodSpec, item, source=f"methods[{i}]"))
        names = [s.name for s in specs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup or "start" in names:
            raise ConfigError(f"method names must be unique and not 'start' (reserved for the start row): {dup or ['start']}")
        self.methods = specs
        if self.seeds is not None:
            if not isinstance(self.seeds, list) or not self.seeds or not all(isinstance(x, int) for x in self.seeds):
                raise ConfigError(f"seeds must be a non-empty list of integers or null, got {self.seeds!r}")
            if len(set(self.seeds)) != len(self.seeds):
                raise ConfigError(f"seeds must be distinct, got {self.seeds}")
        if self.control is not None and self.control not in names:
            raise ConfigError(f"control={self.control!r} is not one of the methods {names}")

    def seed_list(self) -> list[int]:
        """The seeds every method runs with: ``seeds``, else ``[seed]``."""
        return list(self.seeds) if self.seeds else [self.seed]

    def control_name(self) -> str | None:
        """The method each other one is compared with: ``control``, else the one named ``sft``."""
        if self.control:
            return self.control
        return "sft" if any(m.name == "sft" for m in self.methods) else None


def load_compare_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> CompareConfig:
    """Read and validate a compare YAML (unknown keys are errors, also inside ``methods``)."""
    return load_config(CompareConfig, path, overrides)
