"""Typed, validated configuration of an SFT run (``sqlcoach train sft --config FILE [key=value ...]``).

Every key of a YAML file must be a field of ``SFTRunConfig``; each rule in ``__post_init__`` says
in its message what it protects. Tested with TRL 1.16 (``pyproject.toml`` pins ``trl>=1.0,<1.17``):
TRL renamed ``gradient_checkpointing`` to ``activation_checkpointing`` and removed
``max_prompt_length``, so this config names the former and has no such key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sqlcoach.errors import ConfigError
from sqlcoach.train.common import check_bookkeeping, check_lora, check_optimizer

METHODS = ("full", "lora", "qlora")
REPORT_TO = ("none", "tensorboard", "wandb")


@dataclass
class SFTRunConfig:
    """One SFT run. Paths are relative to the current directory."""

    # what to train
    model: str = ""  # local HF checkpoint folder or hub id
    method: Literal["full", "lora", "qlora"] = "full"
    # data: sqlcoach.data.load_examples(data_kind, data_path, split)
    data_kind: str = "spider"
    data_path: str = ""
    split: str = "train"
    max_examples: int | None = None  # use the first N examples (None: all)
    template: str = "sql_terminal"
    schema_style: str = "compact"
    schema_sample_values: int = 3  # example values per column in the schema text (0: none)
    # schema-renaming augmentation (sqlcoach.train.augment): renamed copies per training example
    rename_copies: int = 0
    rename_keep_original: bool = True  # with rename_copies > 0: also train on the unrenamed row
    rename_fresh_words: bool = True  # new names: half generated words; false: training-schema words only
    # where
    output_dir: str = "runs/sft"
    # optimisation
    learning_rate: float = 2e-4
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    num_train_epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides num_train_epochs
    per_device_train_batch_size: int = 4
    gradient_accumulation_steps: int = 1
    max_length: int = 2048
    max_grad_norm: float = 1.0
    seed: int = 0
    # LoRA / QLoRA
    lora_r: int = 64
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    # precision and memory
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    activation_checkpointing: bool = False
    use_cpu: bool = False
    # bookkeeping
    logging_steps: int = 10
    save_steps: int = 100
    save_total_limit: int | None = 2
    report_to: Literal["none", "tensorboard", "wandb"] = "none"
    max_seconds: float | None = None  # stop (and checkpoint) after this much wall clock
    anneal_by_clock: bool = False  # with max_seconds: learning rate follows the time budget, not steps
    disable_tqdm: bool = False

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("model is required: a local Hugging Face checkpoint folder or a hub id")
        if not self.data_path:
            raise ConfigError("data_path is required: the dataset folder or file to train on")
        if self.method not in METHODS:
            raise ConfigError(f"method must be one of {METHODS}, got {self.method!r}")
        check_optimizer(self)
        if self.max_steps == 0 or self.max_steps < -1:
            raise ConfigError(f"max_steps must be -1 (use num_train_epochs) or > 0, got {self.max_steps}")
        if self.max_steps == -1 and self.num_train_epochs <= 0:
            raise ConfigError("num_train_epochs must be > 0 when max_steps is -1, or nothing would be trained")
        if self.max_length < 16:
            raise ConfigError(f"max_length must be >= 16 tokens (got {self.max_length}): prompts would be cut to nothing")
        if self.schema_sample_values < 0:
            raise ConfigError("schema_sample_values must be >= 0 (0 shows no example values)")
        if self.rename_copies < 0:
            raise ConfigError(f"rename_copies must be >= 0 (0: no renaming), got {self.rename_copies}")
        if self.rename_copies == 0 and not self.rename_keep_original:
            raise ConfigError("rename_keep_original=false needs rename_copies >= 1, or no row would be left")
        if self.rename_copies:
            from sqlcoach.prompts.templates import TEMPLATES

            t = TEMPLATES.get(self.template)
            if t is not None and t.anonymize:
                # The placeholder map is read from the real database, which a renamed copy no
                # longer matches: its rows would mix renamed words and placeholders.
                raise ConfigError(f"rename_copies needs a template with real names; {self.template!r} "
                                  "already replaces every name with a placeholder (set rename_copies: 0)")
        if self.max_examples is not None and self.max_examples < 1:
            raise ConfigError("max_examples must be >= 1 or null (all examples)")
        check_lora(self)
        if self.method == "qlora" and self.use_cpu:
            raise ConfigError("method=qlora needs a CUDA GPU (bitsandbytes 4-bit); it cannot run with use_cpu=true")
        check_bookkeeping(self)
        if self.anneal_by_clock and self.max_seconds is None:
            raise ConfigError("anneal_by_clock needs max_seconds: the schedule is a fraction of that time budget")
        if self.report_to not in REPORT_TO:
            raise ConfigError(f"report_to must be one of {REPORT_TO}")
