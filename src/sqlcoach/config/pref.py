"""Typed, validated configuration of preference runs: DPO (``sqlcoach train dpo``) and reward
models (``sqlcoach train rm``).

Tested with TRL 1.16: ``DPO_LOSS_TYPES`` is the list ``trl.DPOConfig.loss_type`` accepts there (a
unit test checks it against the installed TRL's help text). Shared fields and rules: ``config.base``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlcoach.config.base import EpochFields, RunConfig, TrainerFields, opt, redefault
from sqlcoach.errors import ConfigError

#: ``trl.DPOConfig.loss_type`` values in TRL 1.16 (several may be combined with ``loss_weights``).
DPO_LOSS_TYPES: tuple[str, ...] = (
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
    "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
)
#: Losses that read ``label_smoothing`` in TRL 1.16 (its sigmoid loss ignores it: no cDPO there).
LABEL_SMOOTHING_LOSSES: tuple[str, ...] = ("robust", "exo_pair", "aot", "aot_unpaired")


@dataclass
class PreferenceFields:
    """What DPO and reward-model runs train on: mined pairs (``sqlcoach pairs mine``)."""

    pairs_path: str = opt("", "JSONL from `sqlcoach pairs mine` (prompt, chosen, rejected, ...)")
    eval_pairs_path: str | None = opt(None, "held-out pairs (pairs_eval.jsonl): evaluated at the end")
    max_pairs: int | None = opt(None, "use the first N pairs (null: all)")
    # the defaults both preference recipes share where they differ from the other groups'
    method: str = redefault(RunConfig, "method", "lora")
    warmup_ratio: float = redefault(TrainerFields, "warmup_ratio", 0.05)
    max_length: int = opt(1024, "prompt + answer tokens; longer pairs are truncated (DPO) or dropped (RM)")
    lora_target_modules: list[str] = redefault(RunConfig, "lora_target_modules", ["q_proj", "k_proj", "v_proj", "o_proj"])

    def _check(self) -> None:
        if not self.pairs_path and getattr(self, "rounds", 1) <= 1:
            raise ConfigError("pairs_path is required: the JSONL written by `sqlcoach pairs mine`")
        if self.max_pairs is not None and self.max_pairs < 1:
            raise ConfigError("max_pairs must be >= 1 or null (all pairs)")


@dataclass
class OnlineFields:
    """Iterative (online) DPO: ``rounds`` rounds of (mine pairs from the current policy's samples on
    ``mine_limit`` new training questions, then DPO on them, the reference reset to the policy the
    round started from). ``rounds: 1`` is offline DPO on ``pairs_path``."""

    rounds: int = opt(1, "iterative DPO: rounds of mine-then-train with the current policy (1: offline, on pairs_path)")
    mine_data_kind: str = opt("spider", "iterative DPO: the questions' dataset format (a key of sqlcoach.data.LOADERS)")
    mine_data_path: str = opt("", "iterative DPO: the dataset the pairs are mined from (required with rounds > 1)")
    mine_split: str = opt("train", "iterative DPO: its split")
    mine_limit: int = opt(160, "iterative DPO: questions per round (each round takes the next ones of the shuffled split)")
    mine_k: int = opt(8, "iterative DPO: samples per question")
    mine_temperature: float = opt(0.8, "iterative DPO: sampling temperature")
    mine_max_new_tokens: int = opt(96, "iterative DPO: tokens per sample")

    def _check(self) -> None:
        if self.rounds < 1:
            raise ConfigError(f"rounds must be >= 1 (1: offline DPO on pairs_path), got {self.rounds}")
        if self.rounds > 1:
            from sqlcoach.config.base import _choices_error
            from sqlcoach.data.registry import LOADERS

            if not self.mine_data_path:
                raise ConfigError("rounds > 1 (iterative DPO) needs mine_data_path: the questions each round mines pairs from")
            if self.mine_data_kind not in LOADERS:
                raise _choices_error("mine_data_kind", self.mine_data_kind, LOADERS)
            if self.mine_limit < 1 or self.mine_k < 2 or self.mine_max_new_tokens < 1:
                raise ConfigError("mine_limit >= 1, mine_k >= 2 (a pair needs two samples) and mine_max_new_tokens >= 1")
            if self.mine_temperature <= 0:
                raise ConfigError("mine_temperature must be > 0: greedy samples are all the same, no pair to mine")


@dataclass
class DPORunConfig(OnlineFields, PreferenceFields, TrainerFields, EpochFields, RunConfig):
    """One DPO run on TRL's ``DPOTrainer``.

    ``method=lora``: the reference model is the same network with the adapters disabled (no second
    copy in memory). ``method=full``: TRL loads a second, frozen copy of ``model`` as the
    reference, so weights take twice the memory (plus the optimizer's two fp32 moments of the
    policy); ``precompute_ref_log_probs=true`` computes the reference log-probs once before
    training and frees that copy."""

    output_dir: str = redefault(RunConfig, "output_dir", "runs/dpo")
    loss_type: list[str] = opt(["sigmoid"], f"TRL DPO loss(es): any of {DPO_LOSS_TYPES}")
    loss_weights: list[float] | None = opt(None, "one weight per loss_type when combining (e.g. MPO)")
    beta: float = opt(0.1, "KL strength; for ipo it is the regulariser tau")
    label_smoothing: float = opt(0.0, "robust: flip probability in [0, 0.5); exo_pair: epsilon; aot")
    precompute_ref_log_probs: bool = opt(False, "method=full: compute reference log-probs once, then free the reference copy")
    learning_rate: float = redefault(RunConfig, "learning_rate", 5e-6)

    def _check(self) -> None:
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
class RMRunConfig(PreferenceFields, TrainerFields, EpochFields, RunConfig):
    """One reward-model run on TRL's ``RewardTrainer``: the causal checkpoint is loaded as
    ``AutoModelForSequenceClassification`` with ``num_labels=1`` (a new, randomly initialised
    ``score`` head on the last token); with ``method=lora`` the head is trained in full
    (``modules_to_save=["score"]``) and the rest through adapters."""

    output_dir: str = redefault(RunConfig, "output_dir", "runs/rm")
    learning_rate: float = redefault(RunConfig, "learning_rate", 1e-4)
    center_rewards_coefficient: float | None = opt(None, "pulls scores towards 0 (TRL's auxiliary loss)")

    def _check(self) -> None:
        if self.center_rewards_coefficient is not None and self.center_rewards_coefficient < 0:
            raise ConfigError("center_rewards_coefficient must be >= 0 or null")
