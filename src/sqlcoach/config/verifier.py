"""Typed, validated configuration of a verifier run (``sqlcoach train verifier --config FILE``).

The run samples ``k`` answers per training question from ``policy`` (prompted with the policy's
recorded prompt recipe; the ``PromptFields`` here override it), labels each by execution against
the gold, and trains ``model`` (any causal checkpoint; a new one-output score head) to score the
candidate with its rendered result (``sqlcoach.models.verifier``). Shared fields: ``config.base``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlcoach.config.base import EpochFields, PromptFields, RunConfig, TrainerFields, opt, redefault
from sqlcoach.errors import ConfigError

#: how the two classes are weighed in the BCE loss
BALANCES = ("weight", "none")


@dataclass
class VerifierRunConfig(PromptFields, TrainerFields, EpochFields, RunConfig):
    """One verifier run: mine candidates by execution, then pointwise BCE on a score head."""

    methods = ("full", "lora")

    output_dir: str = redefault(RunConfig, "output_dir", "runs/verifier")
    learning_rate: float = redefault(RunConfig, "learning_rate", 1e-4)
    max_length: int = redefault(EpochFields, "max_length", 512)
    policy: str = opt("", "the model whose candidates are mined (a local folder sqlcoach trained); empty: model")
    k: int = opt(8, "candidates sampled per training question")
    temperature: float = opt(0.8, "sampling temperature of the candidates")
    top_p: float = opt(1.0, "nucleus sampling of the candidates")
    max_new_tokens: int = opt(96, "tokens per candidate")
    generation_batch_size: int = opt(16, "prompts per generate() call while mining")
    exec_timeout: float = opt(10.0, "seconds per candidate query (a timeout is a label like any error)")
    result_budget: int = opt(128, "tokens of rendered result the verifier reads (execution.render)")
    holdout: float = opt(0.1, "share of the questions held out for validation (AUC, accuracy, selection)")
    balance: str = opt("weight", "weight: BCE positive weight = negatives / positives; none: plain BCE")
    ran_only: bool = opt(False, "train and validate on the candidates that ran only (what a selection compares); "
                         "false: failures too (what a reward scores)")
    rows_path: str | None = opt(None, "train on rows a previous run mined (its verifier_rows.jsonl) instead of sampling")

    def _check(self) -> None:
        if self.k < 1 or self.max_new_tokens < 1 or self.generation_batch_size < 1:
            raise ConfigError("k, max_new_tokens and generation_batch_size must be >= 1")
        if self.temperature <= 0 and self.k > 1:
            raise ConfigError("temperature must be > 0 with k > 1: greedy candidates are all the same")
        if self.result_budget < 8:
            raise ConfigError(f"result_budget must be >= 8 tokens (got {self.result_budget})")
        if self.result_budget >= self.max_length:
            raise ConfigError(f"result_budget ({self.result_budget}) must be below max_length ({self.max_length})")
        if not 0 < self.holdout < 1:
            raise ConfigError(f"holdout must be in (0, 1): a share of the questions (got {self.holdout})")
        if self.balance not in BALANCES:
            raise ConfigError(f"balance must be one of {BALANCES}, got {self.balance!r}")
        if self.exec_timeout <= 0:
            raise ConfigError("exec_timeout must be > 0 seconds")
