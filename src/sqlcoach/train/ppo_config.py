"""Typed, validated configuration of a PPO run (``sqlcoach train ppo --config FILE [key=value ...]``).

Every YAML key must be a field of ``PPORunConfig`` (unknown keys are errors listing the valid
ones: ``sqlcoach.train.common.load_config``); each rule in ``__post_init__`` says in its message
what it protects.

Batch arithmetic (per device; with N processes every figure is N times larger):

* one PPO *step* = one rollout of ``rollout_batch_size`` prompts, one completion each;
* the rollout is cut into mini-batches of ``per_device_train_batch_size *
  gradient_accumulation_steps`` completions; each mini-batch is one optimizer step;
* ``ppo_epochs`` passes over the rollout, so a PPO step makes ``ppo_epochs * rollout_batch_size /
  mini_batch`` optimizer steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sqlcoach.errors import ConfigError
from sqlcoach.train.common import check_bookkeeping, check_lora

METHODS = ("full", "lora")


@dataclass
class PPORunConfig:
    """One PPO run. Paths are relative to the current directory."""

    # what to train: a full checkpoint (e.g. the SFT model's ``final`` folder)
    model: str = ""
    method: Literal["full", "lora"] = "lora"
    # prompts: sqlcoach.train.rl_data.build_rl_rows over load_examples(data_kind, data_path, split)
    data_kind: str = "spider"
    data_path: str = ""
    split: str = "train"
    max_examples: int | None = None
    template: str = "sql_terminal"
    schema_style: str = "compact"
    schema_sample_values: int = 0
    # rewards: project reward functions (a preset name or reward names; [] for none) and/or a
    # trained reward model folder (``sqlcoach train rm``); their values are summed per completion
    rewards: list[str] = field(default_factory=lambda: ["execution"])
    reward_model: str | None = None
    reward_model_weight: float = 1.0
    reward_workers: int = 1  # SQL executor processes used by the execution rewards
    missing_eos_penalty: float = 1.0  # subtracted from the score of a completion that never ends
    # rollout (sampling)
    rollout_batch_size: int = 16  # prompts per PPO step per device
    max_new_tokens: int = 64
    temperature: float = 0.7
    top_k: int = 0  # 0: no top-k filter (PPO's log-probs are those of the full softmax)
    # PPO
    ppo_epochs: int = 2
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    gamma: float = 1.0
    lam: float = 0.95
    cliprange: float = 0.2
    cliprange_value: float = 0.2
    vf_coef: float = 0.1
    ent_coef: float = 0.0
    whiten_advantages: bool = True
    kl_coef: float = 0.05  # initial coefficient of the per-token KL penalty
    kl_target: float | None = None  # set: adaptive controller aiming at this KL (nats per sequence)
    kl_horizon: int = 10000  # adaptive controller's horizon (in completions)
    # optimisation
    learning_rate: float = 1e-5
    value_learning_rate: float | None = None  # value head's rate (None: learning_rate)
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_steps: int = 20  # PPO steps (rollouts)
    seed: int = 0
    # LoRA
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0  # the recipe keeps the model in eval mode (no dropout), so this has no effect
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    # precision
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    use_cpu: bool = False
    # where and bookkeeping
    output_dir: str = "runs/ppo"
    logging_steps: int = 1
    save_steps: int = 10
    save_total_limit: int | None = 2
    sample_every: int = 5  # log sample rows every N PPO steps (0: never)
    num_samples: int = 3  # rows shown each time
    max_seconds: float | None = None  # stop (and checkpoint) after this much training wall clock

    @property
    def mini_batch_size(self) -> int:
        return self.per_device_train_batch_size * self.gradient_accumulation_steps

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("model is required: a local Hugging Face checkpoint folder (e.g. the SFT final model)")
        if not self.data_path:
            raise ConfigError("data_path is required: the dataset whose questions give the rollout prompts")
        if self.method not in METHODS:
            raise ConfigError(
                f"method must be one of {METHODS}, got {self.method!r} (QLoRA PPO is not supported: the "
                "reference is the policy with adapters disabled, which a 4-bit base makes too coarse to trust)"
            )
        if not self.rewards and not self.reward_model:
            raise ConfigError("no reward: give rewards (e.g. [execution]) and/or reward_model (a `sqlcoach train rm` folder)")
        if self.reward_workers < 0:
            raise ConfigError("reward_workers must be >= 0 (0 runs SQL in this process, without a hard kill)")
        if self.missing_eos_penalty < 0:
            raise ConfigError("missing_eos_penalty must be >= 0: it is subtracted from the score of a completion without EOS")
        if self.rollout_batch_size < 1 or self.per_device_train_batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ConfigError("rollout_batch_size, per_device_train_batch_size and gradient_accumulation_steps must be >= 1")
        if self.rollout_batch_size % self.mini_batch_size:
            raise ConfigError(
                f"rollout_batch_size ({self.rollout_batch_size}) must be a multiple of per_device_train_batch_size * "
                f"gradient_accumulation_steps ({self.mini_batch_size}): every mini-batch must be a full optimizer step"
            )
        if self.max_new_tokens < 1:
            raise ConfigError("max_new_tokens must be >= 1")
        if self.temperature <= 0:
            raise ConfigError(
                f"temperature must be > 0 (got {self.temperature}): PPO samples, and its log-probs divide the logits by it"
            )
        if self.top_k < 0:
            raise ConfigError("top_k must be >= 0 (0: no filter)")
        if self.ppo_epochs < 1:
            raise ConfigError("ppo_epochs must be >= 1")
        if not 0 <= self.gamma <= 1 or not 0 <= self.lam <= 1:
            raise ConfigError(f"gamma and lam must be in [0, 1] (got gamma={self.gamma}, lam={self.lam})")
        if self.cliprange <= 0 or self.cliprange_value <= 0:
            raise ConfigError("cliprange and cliprange_value must be > 0")
        if self.vf_coef < 0 or self.ent_coef < 0:
            raise ConfigError("vf_coef and ent_coef must be >= 0")
        if self.kl_coef < 0:
            raise ConfigError("kl_coef must be >= 0 (0: no KL penalty)")
        if self.kl_target is not None and self.kl_target <= 0:
            raise ConfigError("kl_target must be > 0 (the adaptive controller divides by it) or null (fixed kl_coef)")
        if self.kl_target is not None and self.kl_coef == 0:
            raise ConfigError("kl_target needs kl_coef > 0: the adaptive controller multiplies the coefficient, 0 stays 0")
        if self.kl_horizon < 1:
            raise ConfigError("kl_horizon must be >= 1")
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate must be > 0 (got {self.learning_rate})")
        if self.value_learning_rate is not None and self.value_learning_rate <= 0:
            raise ConfigError("value_learning_rate must be > 0 or null (same as learning_rate)")
        if self.max_grad_norm <= 0:
            raise ConfigError("max_grad_norm must be > 0")
        if self.max_steps < 1:
            raise ConfigError("max_steps must be >= 1 (PPO steps: one rollout each)")
        if self.max_examples is not None and self.max_examples < 1:
            raise ConfigError("max_examples must be >= 1 or null (all examples)")
        if self.schema_sample_values < 0:
            raise ConfigError("schema_sample_values must be >= 0")
        check_lora(self)
        check_bookkeeping(self)
        if self.sample_every < 0 or self.num_samples < 0:
            raise ConfigError("sample_every and num_samples must be >= 0")
