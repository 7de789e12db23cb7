"""The fields and rules every recipe config shares, in four groups.

* ``RunConfig`` (every recipe: SFT, GRPO, PPO, DPO, RM): model, method, output folder, seed,
  optimiser, LoRA, dtype/device, checkpoints and the wall-clock budget.
* ``PromptFields`` (recipes that build prompts from a dataset: SFT, GRPO, PPO): data kind, path,
  split, template, schema style, sample values. ``template``, ``schema_style`` and ``data_kind``
  are checked against their registries when the config is built, so a typo fails before any
  model loads, with the valid choices in the message. The prompt settings may be ``null``: the
  recipe then uses what the start model recorded (``sqlcoach.prompts.recipe``).
* ``TrainerFields`` (recipes on a ``transformers.Trainer``: SFT, GRPO, DPO, RM): scheduler,
  warmup, activation checkpointing, logging integrations, progress bar.
* ``EpochFields`` (SFT, DPO, RM): epochs, max_length, the clock-driven learning rate.

A recipe config is ``@dataclass class XRunConfig(<groups>, RunConfig)`` with its own fields and
a ``_check`` method; ``RunConfig.__post_init__`` runs the ``_check`` of every class in the MRO,
base first, so that one rule has one wording everywhere. Each field carries its help text
(``metadata={"help": ...}``, TRL's style): ``describe_fields`` prints them for ``--help-config``.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from sqlcoach.errors import ConfigError
from sqlcoach.runtime.device import DTYPES

REPORT_TO = ("none", "tensorboard", "wandb")


def opt(default: Any, help: str) -> Any:
    """A dataclass field with a default and its help text (mutable defaults are copied per instance)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: copy.deepcopy(d), metadata={"help": help})
    return field(default=default, metadata={"help": help})


def redefault(base: type, name: str, default: Any) -> Any:
    """The field ``name`` of ``base`` with another default and the same help text."""
    return opt(default, base.__dataclass_fields__[name].metadata.get("help", ""))


def _choices_error(key: str, value: Any, choices: Any) -> ConfigError:
    return ConfigError(f"{key} must be one of {sorted(choices)}, got {value!r}")


@dataclass
class RunConfig:
    """Fields every training recipe has. Paths are relative to the current directory."""

    #: the ``method`` values this recipe accepts, and why others are refused (appended to the message)
    methods: ClassVar[tuple[str, ...]] = ("full", "lora")
    method_note: ClassVar[str] = ""

    model: str = opt("", "local Hugging Face checkpoint folder (e.g. an SFT run's final/), LoRA adapter folder, or hub id")
    method: str = opt("full", "full fine-tune or LoRA adapters (lora); SFT also takes qlora")
    output_dir: str = opt("runs/run", "where checkpoints, final/, the summary and plots are written")
    seed: int = opt(0, "seed of the data order, sampling and weight init (same seed, same run)")
    # optimisation
    learning_rate: float = opt(2e-4, "peak learning rate")
    weight_decay: float = opt(0.0, "AdamW weight decay")
    max_grad_norm: float = opt(1.0, "global gradient-norm clip")
    per_device_train_batch_size: int = opt(4, "rows per micro-batch on each device")
    gradient_accumulation_steps: int = opt(1, "micro-batches per optimizer step")
    max_steps: int = opt(-1, "optimizer steps to train (recipe-specific: see its rules)")
    # LoRA / QLoRA
    lora_r: int = opt(16, "LoRA rank (method=lora/qlora)")
    lora_alpha: int = opt(32, "LoRA scale numerator (scale = alpha / r)")
    lora_dropout: float = opt(0.05, "dropout on the LoRA input")
    lora_target_modules: list[str] = opt(["q_proj", "v_proj"], "module names that get adapters")
    # precision and device
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = opt(
        "auto", "weights' dtype (auto: bfloat16 on a GPU that has it, else float32)")
    use_cpu: bool = opt(False, "train on the CPU even when a GPU is present")
    # bookkeeping
    logging_steps: int = opt(10, "log every N optimizer steps")
    save_steps: int = opt(100, "checkpoint every N steps (for --resume)")
    save_total_limit: int | None = opt(2, "checkpoints kept (null: all)")
    max_seconds: float | None = opt(None, "stop (and checkpoint) after this much training wall clock (null: no limit)")

    def __post_init__(self) -> None:
        for klass in reversed(type(self).__mro__):
            check = klass.__dict__.get("_check")
            if check is not None:
                check(self)

    def _check(self) -> None:
        if not self.model:
            raise ConfigError("model is required: a local Hugging Face checkpoint folder (e.g. an SFT run's final/) or a hub id")
        if self.method not in self.methods:
            raise ConfigError(f"method must be one of {self.methods}, got {self.method!r}{self.method_note}")
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate must be > 0 (got {self.learning_rate}): a zero rate trains nothing")
        warmup = getattr(self, "warmup_ratio", 0.0)
        if not 0 <= warmup < 1:
            raise ConfigError(f"warmup_ratio must be in [0, 1): it is a fraction of the total steps (got {warmup})")
        start = getattr(self, "warmup_start", 0.0)
        if not 0 <= start <= 1:
            raise ConfigError(f"warmup_start must be in [0, 1]: it is a fraction of the peak learning rate (got {start})")
        if self.per_device_train_batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ConfigError("per_device_train_batch_size and gradient_accumulation_steps must be >= 1")
        if self.max_grad_norm <= 0:
            raise ConfigError("max_grad_norm must be > 0")
        if self.dtype not in DTYPES:
            raise _choices_error("dtype", self.dtype, DTYPES)
        self._check_lora()
        if self.dtype == "float16" and self.use_cpu and self.method != "qlora":
            raise ConfigError("dtype=float16 is not supported for training on CPU; use float32 or bfloat16")
        if self.logging_steps < 1 or self.save_steps < 1:
            raise ConfigError("logging_steps and save_steps must be >= 1")
        if self.save_total_limit is not None and self.save_total_limit < 1:
            raise ConfigError(
                "save_total_limit must be >= 1 or null (keep all): 0 would delete the checkpoint needed by --resume"
            )
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ConfigError("max_seconds must be > 0 or null")

    def _check_lora(self) -> None:
        if self.method not in ("lora", "qlora"):
            return
        if self.lora_r < 1 or self.lora_alpha < 1:
            name = "lora_r" if self.lora_r < 1 else "lora_alpha"
            raise ConfigError(
                f"{name} must be >= 1 for method={self.method} (got {getattr(self, name)}): "
                "lora_r and lora_alpha set the adapter's rank and scale"
            )
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"lora_dropout must be in [0, 1) (got {self.lora_dropout})")
        if not self.lora_target_modules:
            raise ConfigError("lora_target_modules must name at least one module (e.g. q_proj, v_proj)")

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}


@dataclass
class PromptFields:
    """Where the questions come from and how the prompt shows them (SFT, GRPO, PPO)."""

    #: data kinds a recipe reads besides the loaders' (SFT: ``export``, the files ``data build`` writes)
    extra_data_kinds: ClassVar[tuple[str, ...]] = ()

    data_kind: str = opt("spider", "dataset format: a key of sqlcoach.data.LOADERS (spider, bird, jsonl, ...)")
    data_path: str = opt("", "the dataset folder or file")
    split: str = opt("train", "which split of the dataset")
    max_examples: int | None = opt(None, "use the first N examples (null: all)")
    template: str | None = opt(None, "prompt template, a key of sqlcoach.prompts.templates.TEMPLATES (null: the model's sqlcoach_recipe.json, else sql_terminal)")
    schema_style: str | None = opt(None, "schema text style, a key of sqlcoach.schema.serialize.STYLES: compact, ddl, nl (null: the model's recipe, else compact)")
    schema_sample_values: int | None = opt(None, "example values per column in the schema text, 0 for none (null: the model's recipe, else 3)")
    value_retrieval: int | None = opt(None, "database values the question mentions shown under the schema (sqlcoach.schema.values), 0 for none (null: the model's recipe, else 5)")
    token_budget: int | None = opt(None, "shrink the schema text to this many approximate tokens (sqlcoach.schema.serialize), 0 for no budget (null: the model's recipe, else 0)")
    turn_history: str | None = opt(None, "multi-turn data: questions (earlier questions only), predicted (the model's own earlier SQL; training rows show the gold, i.e. teacher forcing), gold (the earlier gold SQL: an oracle) (null: the model's recipe, else questions)")

    def _check(self) -> None:
        from sqlcoach.data.registry import LOADERS
        from sqlcoach.prompts.templates import TEMPLATES
        from sqlcoach.schema.serialize import STYLES

        if not self.data_path:
            raise ConfigError("data_path is required: the dataset folder or file to train on")
        if self.data_kind not in LOADERS and self.data_kind not in self.extra_data_kinds:
            raise _choices_error("data_kind", self.data_kind, [*LOADERS, *self.extra_data_kinds])
        if self.template is not None and self.template not in TEMPLATES:
            raise _choices_error("template", self.template, TEMPLATES)
        if self.schema_style is not None and self.schema_style not in STYLES:
            raise _choices_error("schema_style", self.schema_style, STYLES)
        if self.max_examples is not None and self.max_examples < 1:
            raise ConfigError("max_examples must be >= 1 or null (all examples)")
        if self.schema_sample_values is not None and self.schema_sample_values < 0:
            raise ConfigError("schema_sample_values must be >= 0 (0 shows no example values)")
        for key in ("value_retrieval", "token_budget"):
            if getattr(self, key) is not None and getattr(self, key) < 0:
                raise ConfigError(f"{key} must be >= 0 (0 turns it off)")
        from sqlcoach.prompts.recipe import TURN_HISTORIES

        if self.turn_history is not None and self.turn_history not in TURN_HISTORIES:
            raise _choices_error("turn_history", self.turn_history, TURN_HISTORIES)


@dataclass
class TrainerFields:
    """Settings of recipes that run on a ``transformers.Trainer`` (SFT, GRPO, DPO, RM)."""

    lr_scheduler_type: str = opt("cosine", "transformers scheduler name (cosine, linear, constant, ...)")
    warmup_ratio: float = opt(0.03, "linear warmup over this fraction of the steps")
    warmup_start: float = opt(0.0, "the warmup's first step runs at this fraction of the peak learning rate (0: from zero, as transformers does); no effect without warmup_ratio")
    activation_checkpointing: bool = opt(False, "recompute activations in backward (less memory, slower); TRL's name for gradient checkpointing")
    report_to: Literal["none", "tensorboard", "wandb"] = opt("none", "logging integration")
    disable_tqdm: bool = opt(False, "no progress bar")

    def _check(self) -> None:
        if self.report_to not in REPORT_TO:
            raise ConfigError(f"report_to must be one of {REPORT_TO}")


@dataclass
class EpochFields:
    """Epoch-based training on a fixed set of rows (SFT, DPO, RM)."""

    num_train_epochs: float = opt(1.0, "passes over the data (when max_steps is -1)")
    max_length: int = opt(2048, "tokens per row (prompt + answer)")
    anneal_by_clock: bool = opt(False, "with max_seconds: the learning rate follows the time budget, not the steps "
                                "(without max_seconds: inert, lr_scheduler_type over the steps)")

    def _check(self) -> None:
        if self.max_steps == 0 or self.max_steps < -1:  # type: ignore[attr-defined]
            raise ConfigError(f"max_steps must be -1 (use num_train_epochs) or > 0, got {self.max_steps}")  # type: ignore[attr-defined]
        if self.max_steps == -1 and self.num_train_epochs <= 0:  # type: ignore[attr-defined]
            raise ConfigError("num_train_epochs must be > 0 when max_steps is -1, or nothing would be trained")
        if self.max_length < 16:
            raise ConfigError(f"max_length must be >= 16 tokens (got {self.max_length}): rows would be cut to nothing")
        # anneal_by_clock without max_seconds is inert (train.run.fit says so): turning the clock off
        # (max_seconds=null, e.g. for a run that must be reproducible step for step) needs no second key.
