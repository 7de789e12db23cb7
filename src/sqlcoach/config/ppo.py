"""Typed, validated configuration of a PPO run (``sqlcoach train ppo --config FILE [key=value ...]``).

Batch arithmetic (per device; with N processes every figure is N times larger):

* one PPO *step* = one rollout of ``rollout_batch_size`` prompts, one completion each;
* the rollout is cut into mini-batches of ``per_device_train_batch_size *
  gradient_accumulation_steps`` completions; each mini-batch is one optimizer step;
* ``ppo_epochs`` passes over the rollout, so a PPO step makes ``ppo_epochs * rollout_batch_size /
  mini_batch`` optimizer steps.

Shared fields and rules: ``config.base``. PPO runs its own loop (no ``transformers.Trainer``), so
it has none of ``TrainerFields`` (scheduler, warmup, activation checkpointing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlcoach.config.base import PromptFields, RunConfig, opt, redefault
from sqlcoach.config.rl import RLFields
from sqlcoach.errors import ConfigError


@dataclass
class PPORunConfig(RLFields, PromptFields, RunConfig):
    """One PPO run (sqlcoach's own loop: ``sqlcoach.train.ppo``)."""

    method_note = (" (QLoRA PPO is not supported: the reference is the policy with adapters disabled, "
                   "which a 4-bit base makes too coarse to trust)")

    method: str = redefault(RunConfig, "method", "lora")
    output_dir: str = redefault(RunConfig, "output_dir", "runs/ppo")
    # rewards, SQL workers and timeout, curation, temperature, max_completion_length, the sample log:
    # config.rl.RLFields (PPO's defaults below)
    rewards: Any = redefault(RLFields, "rewards", ["execution"])
    temperature: float = redefault(RLFields, "temperature", 0.7)
    max_completion_length: int = redefault(RLFields, "max_completion_length", 64)
    sample_every: int = redefault(RLFields, "sample_every", 5)
    num_samples: int = redefault(RLFields, "num_samples", 3)
    missing_eos_penalty: float = opt(1.0, "subtracted from the score of a completion that never ends")
    # rollout (sampling)
    rollout_batch_size: int = opt(16, "prompts per PPO step per device (one completion each)")
    top_k: int = opt(0, "top-k filter of the sampler (0: none; log-probs are those of the full softmax)")
    # PPO
    ppo_epochs: int = opt(2, "passes over each rollout")
    per_device_train_batch_size: int = opt(8, "completions per micro-batch")
    gamma: float = opt(1.0, "discount")
    lam: float = opt(0.95, "GAE lambda")
    cliprange: float = opt(0.2, "policy ratio clip")
    cliprange_value: float = opt(0.2, "value clip")
    vf_coef: float = opt(0.1, "value loss weight")
    ent_coef: float = opt(0.0, "entropy bonus weight")
    whiten_advantages: bool = opt(True, "normalise advantages over the rollout")
    kl_coef: float = opt(0.05, "initial coefficient of the per-token KL penalty")
    kl_target: float | None = opt(None, "set: adaptive controller aiming at this KL (nats per sequence)")
    kl_horizon: int = opt(10000, "adaptive controller's horizon (in completions)")
    # optimisation
    learning_rate: float = redefault(RunConfig, "learning_rate", 1e-5)
    value_learning_rate: float | None = opt(None, "value head's rate (null: learning_rate)")
    max_steps: int = opt(20, "PPO steps (rollouts)")
    lora_dropout: float = opt(0.0, "the recipe keeps the model in eval mode (no dropout), so this has no effect")
    # bookkeeping
    logging_steps: int = redefault(RunConfig, "logging_steps", 1)
    save_steps: int = redefault(RunConfig, "save_steps", 10)

    @property
    def mini_batch_size(self) -> int:
        return self.per_device_train_batch_size * self.gradient_accumulation_steps

    def _check(self) -> None:
        if self.missing_eos_penalty < 0:
            raise ConfigError("missing_eos_penalty must be >= 0: it is subtracted from the score of a completion without EOS")
        if self.rollout_batch_size < 1:
            raise ConfigError("rollout_batch_size, per_device_train_batch_size and gradient_accumulation_steps must be >= 1")
        if self.rollout_batch_size % self.mini_batch_size:
            raise ConfigError(
                f"rollout_batch_size ({self.rollout_batch_size}) must be a multiple of per_device_train_batch_size * "
                f"gradient_accumulation_steps ({self.mini_batch_size}): every mini-batch must be a full optimizer step"
            )
        if self.top_k < 0:
            raise ConfigError("top_k must be >= 0 (0: no filter)")
        self._check_ppo()
        if self.max_steps < 1:
            raise ConfigError("max_steps must be >= 1 (PPO steps: one rollout each)")

    def _check_ppo(self) -> None:
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
        if self.value_learning_rate is not None and self.value_learning_rate <= 0:
            raise ConfigError("value_learning_rate must be > 0 or null (same as learning_rate)")
