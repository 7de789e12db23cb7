"""Typed, validated configuration of preference runs: DPO (``sqlcoach train dpo``) and reward
models (``sqlcoach train rm``).

Every YAML key must be a field; each rule in ``__post_init__`` says what it protects. Tested with
TRL 1.16: ``DPO_LOSS_TYPES`` is the list ``trl.DPOConfig.loss_type`` accepts there (a unit test
checks it against the installed TRL's help text), ``activation_checkpointing`` is TRL's current
name for gradient checkpointing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sqlcoach.errors import ConfigError
from sqlcoach.train.common import check_bookkeeping, check_lora, check_optimizer

#: ``trl.DPOConfig.loss_type`` values in TRL 1.16 (several may be combined with ``loss_weights``).
DPO_LOSS_TYPES: tuple[str, ...] = (
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
    "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
)
#: Losses that read ``label_smoothing`` in TRL 1.16 (its sigmoid loss ignores it: no cDPO there).
LABEL_SMOOTHING_LOSSES: tuple[str, ...] = ("robust", "exo_pair", "aot", "aot_unpaired")
PREF_METHODS = ("full", "lora")


@dataclass
class _PrefRunConfig:
    """Fields shared by DPO and reward-model runs. Paths are relative to the current directory."""

    model: str = ""  # local HF causal-LM checkpoint folder (e.g. an SFT run's final/) or hub id
    method: Literal["full", "lora"] = "lora"
    pairs_path: str = ""  # JSONL from `sqlcoach pairs mine` (prompt, chosen, rejected, ...)
    eval_pairs_path: str | None = None  # held-out pairs (pairs_eval.jsonl): evaluated at the end
    max_pairs: int | None = None  # use the first N pairs (None: all)
    output_dir: str = "runs/pref"
    # optimisation
    learning_rate: float = 5e-6
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    num_train_epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides num_train_epochs
    per_device_train_batch_size: int = 4
    gradient_accumulation_steps: int = 1
    max_length: int = 1024  # prompt + answer tokens; longer pairs are truncated (DPO) or dropped (RM)
    max_grad_norm: float = 1.0
    seed: int = 0
    # LoRA
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
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
    anneal_by_clock: bool = False  # with max_seconds: learning rate follows the time budget
    disable_tqdm: bool = False

    def _check_common(self) -> None:
        if not self.model:
            raise ConfigError("model is required: a local causal-LM checkpoint folder (e.g. runs/sft/final) or a hub id")
        if not self.pairs_path:
            raise ConfigError("pairs_path is required: the JSONL written by `sqlcoach pairs mine`")
        if self.method not in PREF_METHODS:
            raise ConfigError(f"method must be one of {PREF_METHODS}, got {self.method!r}")
        check_optimizer(self)
        if self.max_steps == 0 or self.max_steps < -1:
            raise ConfigError(f"max_steps must be -1 (use num_train_epochs) or > 0, got {self.max_steps}")
        if self.max_steps == -1 and self.num_train_epochs <= 0:
            raise ConfigError("num_train_epochs must be > 0 when max_steps is -1, or nothing would be trained")
        if self.max_length < 16:
            raise ConfigError(f"max_length must be >= 16 tokens (got {self.max_length}): answers would be cut to nothing")
        if self.max_pairs is not None and self.max_pairs < 1:
            raise ConfigError("max_pairs must be >= 1 or null (all pairs)")
        check_lora(self)
        check_bookkeeping(self)
        if self.anneal_by_clock and self.max_seconds is None:
            raise ConfigError("anneal_by_clock needs max_seconds: the schedule is a fraction of that time budget")


@dataclass
class DPORunConfig(_PrefRunConfig):
    """One DPO run on TRL's ``DPOTrainer``.

    ``method=lora``: the reference model is the same network with the adapters disabled (no second
    copy in memory). ``method=full``: TRL loads a second, frozen copy of ``model`` as the
    reference, so weights take twice the memory (plus the optimizer's two fp32 moments of the
    policy); ``precompute_ref_log_probs=true`` computes the reference log-probs once before
    training and frees that copy."""

    output_dir: str = "runs/dpo"
    loss_type: list[str] = field(default_factory=lambda: ["sigmoid"])
    loss_weights: list[float] | None = None  # one per loss_type when combining (e.g. MPO)
    beta: float = 0.1  # KL strength; for ipo it is the regulariser tau
    label_smoothing: float = 0.0  # robust: flip probability in [0, 0.5); exo_pair: epsilon; aot
    precompute_ref_log_probs: bool = False
    learning_rate: float = 5e-6

    def __post_init__(self) -> None:
        self._check_common()
        if isinstance(self.loss_type, str):
            self.loss_type = [self.loss_type]
        if not self.loss_type:
            raise ConfigError(f"loss_type must name at least one of {list(DPO_LOSS_TYPES)}")
        bad = [t for t in self.loss_type if t not in DPO_LOSS_TYPES]
        if bad:
            raise ConfigError(f"loss_type {bad} unknown to TRL 1.16's DPOTrainer; choose from {list(DPO_LOSS_TYPES)}")
        if self.loss_weights is not None and len(self.loss_weights) != len(self.loss_type):
            raise ConfigError(
                f"loss_weights needs one weight per loss_type ({len(self.loss_type)}), got {len(self.loss_weights)}"
            )
        if self.beta <= 0:
            raise ConfigError(f"beta must be > 0 (got {self.beta}): it scales the log-ratio; 0 removes the preference signal")
        if not 0 <= self.label_smoothing < 0.5:
            raise ConfigError(f"label_smoothing must be in [0, 0.5) (got {self.label_smoothing}): 0.5 means labels are coin flips")
        if self.label_smoothing > 0 and not set(LABEL_SMOOTHING_LOSSES) & set(self.loss_type):
            raise ConfigError(
                f"label_smoothing is used only by loss_type {list(LABEL_SMOOTHING_LOSSES)} in TRL 1.16 (not sigmoid): "
                "set it to 0 or choose one of those"
            )
        if "exo_pair" in self.loss_type and self.label_smoothing == 0:
            raise ConfigError("loss_type exo_pair needs label_smoothing > 0 (its epsilon; the EXO paper uses 1e-3)")


@dataclass
class RMRunConfig(_PrefRunConfig):
    """One reward-model run on TRL's ``RewardTrainer``: the causal checkpoint is loaded as
    ``AutoModelForSequenceClassification`` with ``num_labels=1`` (a new, randomly initialised
    ``score`` head on the last token); with ``method=lora`` the head is trained in full
    (``modules_to_save=["score"]``) and the rest through adapters."""

    output_dir: str = "runs/rm"
    learning_rate: float = 1e-4
    center_rewards_coefficient: float | None = None  # pulls scores towards 0 (TRL's auxiliary loss)

    def __post_init__(self) -> None:
        self._check_common()
        if self.center_rewards_coefficient is not None and self.center_rewards_coefficient < 0:
            raise ConfigError("center_rewards_coefficient must be >= 0 or null")
