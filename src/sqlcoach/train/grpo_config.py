"""Typed, validated configuration of a GRPO run (``sqlcoach train grpo --config FILE [key=value ...]``).

Every YAML key must be a field of ``GRPORunConfig`` (unknown keys are errors listing the valid
ones, via ``sqlcoach.train.common.load_config``); each rule in ``__post_init__`` says in its
message what it protects. Checked against TRL 1.16's ``GRPOConfig``:

* ``loss_type`` is one of TRL's ``LOSS_TYPES`` below (TRL's default is ``dapo``);
* ``scale_rewards`` is ``group`` / ``batch`` / ``none`` (TRL maps ``true``/``false`` to
  ``group``/``none``; so does this config);
* ``per_device_train_batch_size`` counts *completions*, not prompts; one generation batch is
  ``per_device_train_batch_size * gradient_accumulation_steps`` completions (one process) and
  must hold whole groups of ``num_generations``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sqlcoach.errors import ConfigError
from sqlcoach.train.common import check_bookkeeping, check_lora, check_optimizer

METHODS = ("full", "lora")
#: TRL 1.16 ``GRPOConfig.loss_type`` values (trl/trainer/grpo_config.py).
LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")
SCALE_REWARDS = ("group", "batch", "none")
VLLM_MODES = ("colocate", "server")


@dataclass
class GRPORunConfig:
    """One GRPO run. Paths are relative to the current directory."""

    # what to train
    model: str = ""  # local HF checkpoint folder (e.g. an SFT run's final/), hub id, or LoRA adapter
    method: Literal["full", "lora"] = "full"
    # data: sqlcoach.data.load_examples(data_kind, data_path, split) -> sqlcoach.train.rl_data rows
    data_kind: str = "spider"
    data_path: str = ""
    split: str = "train"
    max_examples: int | None = None  # the first N prompts after shuffling with seed (None: all)
    template: str = "sql_terminal"
    schema_style: str = "compact"
    schema_sample_values: int = 0
    # rewards: a preset name (seed-multi, arctic), one reward name, or a list of names / {name, weight, ...}
    rewards: Any = "execution"
    reward_options: Any = field(default_factory=dict)  # build_rewards(**reward_options); on the command line a YAML mapping
    reward_workers: int = 1  # SQL executor processes shared by all reward calls (0: in this process)
    reward_timeout: float = 5.0  # seconds per query in the executor's sandbox
    # curation (sqlcoach.train.rl_data)
    curate_gold: bool = True  # drop prompts whose gold SQL fails or returns nothing
    pass_rate_k: int = 0  # > 0: sample k completions per prompt with the start policy first
    drop_always: bool = True  # ... and drop the prompts it solves k/k
    drop_never: bool = True  # ... and those it solves 0/k
    pass_rate_max_prompts: int | None = None  # filter only the first N prompts (None: all)
    # GRPO
    num_generations: int = 8  # group size G
    loss_type: str = "dapo"
    beta: float = 0.0  # KL coefficient (0: no reference model)
    epsilon: float = 0.2
    epsilon_high: float | None = None  # None: = epsilon (DAPO recommends 0.28)
    scale_rewards: str = "group"
    num_iterations: int = 1  # policy updates per generation batch (mu)
    mask_truncated_completions: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    max_completion_length: int = 256
    # optimisation
    learning_rate: float = 1e-6
    lr_scheduler_type: str = "constant"
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    per_device_train_batch_size: int = 8  # completions per micro-batch
    gradient_accumulation_steps: int = 1
    max_steps: int = 100
    max_seconds: float | None = None  # stop (and checkpoint) after this much wall clock
    seed: int = 0
    # LoRA
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    merge_lora: bool = False  # method=lora: also save the merged model to output_dir/final (else the adapter)
    # generation backend
    use_vllm: bool = False
    vllm_mode: str = "colocate"
    vllm_gpu_memory_utilization: float = 0.3
    # precision and memory
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    activation_checkpointing: bool = False
    use_cpu: bool = False
    # bookkeeping
    output_dir: str = "runs/grpo"
    logging_steps: int = 1
    sample_log_every: int = 10  # every N steps: print and save sampled (question, SQL, result, reward) rows
    num_examine: int = 4  # rows shown each time
    save_steps: int = 50
    save_total_limit: int | None = 2
    report_to: Literal["none", "tensorboard", "wandb"] = "none"
    disable_tqdm: bool = False

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("model is required: a local Hugging Face checkpoint folder (e.g. an SFT run's final/) or a hub id")
        if not self.data_path:
            raise ConfigError("data_path is required: the dataset folder or file whose questions are the RL prompts")
        if self.method not in METHODS:
            raise ConfigError(f"method must be one of {METHODS}, got {self.method!r} (QLoRA is not wired for GRPO)")
        if self.max_examples is not None and self.max_examples < 1:
            raise ConfigError("max_examples must be >= 1 or null (all prompts)")
        if self.schema_sample_values < 0:
            raise ConfigError("schema_sample_values must be >= 0 (0 shows no example values)")
        if isinstance(self.rewards, str) and (self.rewards.lstrip().startswith("[") or "," in self.rewards):
            # key=value override: rewards=execution,format or rewards='[execution, {name: ngram, weight: 0.3}]'
            import yaml

            text = self.rewards if self.rewards.lstrip().startswith("[") else f"[{self.rewards}]"
            try:
                self.rewards = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise ConfigError(f"rewards: not a YAML list: {exc}") from exc
        if not isinstance(self.rewards, (str, list, tuple)) or not self.rewards:
            raise ConfigError(
                "rewards must be a preset name (seed-multi, arctic), a reward name, or a non-empty list of "
                f"names / {{name: ..., weight: ...}} entries; got {self.rewards!r}"
            )
        if isinstance(self.reward_options, str):  # key=value override: reward_options='{format: {weight: 0.5}}'
            import yaml

            try:
                self.reward_options = yaml.safe_load(self.reward_options) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"reward_options: not a YAML mapping: {exc}") from exc
        if not isinstance(self.reward_options, dict):
            raise ConfigError(f"reward_options must be a mapping of build_rewards options, got {self.reward_options!r}")
        if self.reward_workers < 0:
            raise ConfigError("reward_workers must be >= 0 (0 runs SQL in the training process, without a hard kill)")
        if self.reward_timeout <= 0:
            raise ConfigError("reward_timeout must be > 0 seconds: model-written SQL can run forever")
        if self.pass_rate_k < 0 or self.pass_rate_k == 1:
            raise ConfigError(
                f"pass_rate_k must be 0 (off) or >= 2, got {self.pass_rate_k}: with one sample every prompt is "
                "'always' or 'never' solved and the filter would drop them all"
            )
        if self.pass_rate_max_prompts is not None and self.pass_rate_max_prompts < 1:
            raise ConfigError("pass_rate_max_prompts must be >= 1 or null")
        if self.num_generations < 2:
            raise ConfigError(
                f"num_generations must be >= 2 (got {self.num_generations}): GRPO's advantage is a reward minus "
                "its group's mean, so a group of one has no signal (TRL's rule)"
            )
        if self.loss_type not in LOSS_TYPES:
            raise ConfigError(f"loss_type must be one of TRL 1.16's {LOSS_TYPES}, got {self.loss_type!r}")
        if self.beta < 0:
            raise ConfigError(f"beta must be >= 0 (got {self.beta}): it weighs the KL penalty to the reference model; a negative one would reward drifting away")
        if self.epsilon <= 0:
            raise ConfigError(f"epsilon must be > 0 (got {self.epsilon}): it is the clipping range of the policy ratio")
        if self.epsilon_high is not None and self.epsilon_high < self.epsilon and self.loss_type != "cispo":
            raise ConfigError(
                f"epsilon_high ({self.epsilon_high}) must be >= epsilon ({self.epsilon}): the upper clip bound "
                "(DAPO's clip-higher) widens the range, it must not narrow it"
            )
        if isinstance(self.scale_rewards, bool):  # TRL's own mapping of the old boolean form
            self.scale_rewards = "group" if self.scale_rewards else "none"
        if str(self.scale_rewards).lower() in ("true", "false"):
            self.scale_rewards = "group" if str(self.scale_rewards).lower() == "true" else "none"
        if self.scale_rewards not in SCALE_REWARDS:
            raise ConfigError(f"scale_rewards must be one of {SCALE_REWARDS} (or true/false), got {self.scale_rewards!r}")
        if self.num_iterations < 1:
            raise ConfigError("num_iterations must be >= 1 (policy updates per generation batch)")
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0 (got {self.temperature}): GRPO needs different samples in a group")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_completion_length < 1:
            raise ConfigError("max_completion_length must be >= 1 token")
        check_optimizer(self)
        if self.max_steps < 1:
            raise ConfigError(f"max_steps must be >= 1 (got {self.max_steps}); use max_seconds for a time budget")
        generation_batch = self.per_device_train_batch_size * self.gradient_accumulation_steps
        if generation_batch % self.num_generations != 0:
            raise ConfigError(
                f"per_device_train_batch_size * gradient_accumulation_steps = {generation_batch} completions must "
                f"be divisible by num_generations = {self.num_generations}: a generation batch must hold whole "
                "groups, since advantages are computed within each group (TRL's rule)"
            )
        check_lora(self)
        if self.method != "lora" and self.merge_lora:
            raise ConfigError("merge_lora applies to method=lora only (a full fine-tune has nothing to merge)")
        if self.vllm_mode not in VLLM_MODES:
            raise ConfigError(f"vllm_mode must be one of {VLLM_MODES}, got {self.vllm_mode!r}")
        if self.use_vllm:
            if self.use_cpu:
                raise ConfigError("use_vllm needs a CUDA GPU; it cannot be combined with use_cpu=true")
            import importlib.util

            if importlib.util.find_spec("vllm") is None:
                raise ConfigError(
                    "use_vllm=true but vLLM is not installed in this environment; install a vLLM that matches "
                    "TRL (pip install 'trl[vllm]') on a GPU machine, or set use_vllm=false (Hugging Face generate)"
                )
        if not 0 < self.vllm_gpu_memory_utilization <= 1:
            raise ConfigError("vllm_gpu_memory_utilization must be in (0, 1]")
        check_bookkeeping(self)
        if self.sample_log_every < 1 or self.num_examine < 0:
            raise ConfigError("sample_log_every must be >= 1 and num_examine >= 0 (0 shows no sample rows)")
