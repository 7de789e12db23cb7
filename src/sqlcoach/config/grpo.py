"""Typed, validated configuration of a GRPO run (``sqlcoach train grpo --config FILE [key=value ...]``).

Checked against TRL 1.16's ``GRPOConfig``:

* ``loss_type`` is one of TRL's ``LOSS_TYPES`` below (TRL's default is ``dapo``);
* ``scale_rewards`` is ``group`` / ``batch`` / ``none`` (TRL maps ``true``/``false`` to
  ``group``/``none``; so does this config);
* ``per_device_train_batch_size`` counts *completions*, not prompts; one generation batch is
  ``per_device_train_batch_size * gradient_accumulation_steps`` completions (one process) and
  must hold whole groups of ``num_generations``.

Shared fields and rules: ``config.base``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlcoach.config.agent import AgentTraining
from sqlcoach.config.base import PromptFields, RunConfig, TrainerFields, opt, redefault
from sqlcoach.config.rl import RLFields, yaml_value
from sqlcoach.errors import ConfigError

#: TRL 1.16 ``GRPOConfig.loss_type`` values (trl/trainer/grpo_config.py).
LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")
SCALE_REWARDS = ("group", "batch", "none")
VLLM_MODES = ("colocate", "server")


@dataclass
class GRPORunConfig(RLFields, PromptFields, TrainerFields, RunConfig):
    """One GRPO run on TRL's ``GRPOTrainer``."""

    method_note = " (QLoRA is not wired for GRPO)"

    output_dir: str = redefault(RunConfig, "output_dir", "runs/grpo")
    # rewards, SQL workers, curation, temperature, max_completion_length, the sample log: config.rl.RLFields
    dynamic_sampling: bool = opt(False, "DAPO dynamic sampling, online: leave out of the loss every group whose G "
                                 "completions all match the gold or all miss it (the binary execution outcome, not "
                                 "the shaped reward)")
    agent: Any = opt(None, "multi-turn GRPO: a mapping {max_turns, observation_budget, per_observation, on_limit, "
                     "untagged, observation_names, timeout, max_turn_tokens, instruction, protocol} "
                     "(config.agent.AgentTraining; budgets in tokens; docs/agent.md); null: single-turn")
    # GRPO
    num_generations: int = opt(8, "group size G: completions per prompt")
    loss_type: str = opt("dapo", f"TRL loss: one of {LOSS_TYPES}")
    beta: float = opt(0.0, "KL coefficient (0: no reference model)")
    epsilon: float = opt(0.2, "lower clip range of the policy ratio")
    epsilon_high: float | None = opt(None, "upper clip range (null: = epsilon; DAPO recommends 0.28)")
    scale_rewards: str = opt("group", f"advantage scaling: one of {SCALE_REWARDS}")
    num_iterations: int = opt(1, "policy updates per generation batch (mu)")
    mask_truncated_completions: bool = opt(False, "leave completions without EOS out of the loss")
    top_p: float = opt(1.0, "nucleus sampling of the rollouts")
    # optimisation (GRPO's defaults)
    learning_rate: float = redefault(RunConfig, "learning_rate", 1e-6)
    lr_scheduler_type: str = redefault(TrainerFields, "lr_scheduler_type", "constant")
    warmup_ratio: float = redefault(TrainerFields, "warmup_ratio", 0.0)
    per_device_train_batch_size: int = opt(8, "completions per micro-batch")
    max_steps: int = opt(100, "optimizer steps (>= 1; use max_seconds for a time budget)")
    # LoRA
    lora_dropout: float = redefault(RunConfig, "lora_dropout", 0.0)
    lora_target_modules: list[str] = redefault(RunConfig, "lora_target_modules", ["q_proj", "k_proj", "v_proj", "o_proj"])
    merge_lora: bool = opt(False, "method=lora: save the merged model to output_dir/final (else the adapter; a run started from an adapter folder is always saved merged)")
    # generation backend
    use_vllm: bool = opt(False, "generate rollouts with vLLM (GPU only)")
    vllm_mode: str = opt("colocate", f"vLLM placement: one of {VLLM_MODES}")
    vllm_gpu_memory_utilization: float = opt(0.3, "share of the GPU vLLM may take (colocate)")
    vllm_tensor_parallel_size: int = opt(1, "colocate: GPUs one vLLM engine spans (server: trl vllm-serve --tensor_parallel_size)")
    vllm_enable_sleep_mode: bool = opt(False, "colocate: offload vLLM's weights and KV cache during the optimizer step")
    vllm_max_model_length: int | None = opt(None, "vLLM context window (null: from the model config)")
    vllm_server_base_url: str | None = opt(None, "server: the trl vllm-serve URL, e.g. http://10.0.0.5:8000 (null: host and port)")
    vllm_server_host: str = opt("0.0.0.0", "server: host of trl vllm-serve")
    vllm_server_port: int = opt(8000, "server: port of trl vllm-serve")
    vllm_server_timeout: float = opt(240.0, "server: seconds to wait for trl vllm-serve to come up")
    # bookkeeping
    logging_steps: int = redefault(RunConfig, "logging_steps", 1)
    save_steps: int = redefault(RunConfig, "save_steps", 50)

    def _check(self) -> None:
        self._check_grpo()
        if self.max_steps < 1:
            raise ConfigError(f"max_steps must be >= 1 (got {self.max_steps}); use max_seconds for a time budget")
        generation_batch = self.per_device_train_batch_size * self.gradient_accumulation_steps
        if generation_batch % self.num_generations != 0:
            raise ConfigError(
                f"per_device_train_batch_size * gradient_accumulation_steps = {generation_batch} completions must "
                f"be divisible by num_generations = {self.num_generations}: a generation batch must hold whole "
                "groups, since advantages are computed within each group (TRL's rule)"
            )
        if self.method != "lora" and self.merge_lora:
            raise ConfigError("merge_lora applies to method=lora only (a full fine-tune has nothing to merge)")
        self._check_vllm()
        self._check_agent()

    def _check_agent(self) -> None:
        self.agent = AgentTraining.of(yaml_value(self.agent, "agent"))
        if self.agent is None:
            if "agent_format" in _reward_names(self.rewards):
                raise ConfigError("the agent_format reward scores multi-turn trajectories: it needs an agent: block")
            return
        if self.use_vllm:
            raise ConfigError("agent: the multi-turn rollout generates with Hugging Face generate (each turn stops at "
                              "</sql> or </solution> and the environment answers); use_vllm is not wired into it: set "
                              "use_vllm=false")
        if self.agent.max_turn_tokens is not None and self.agent.max_turn_tokens > self.max_completion_length:
            raise ConfigError(f"agent max_turn_tokens ({self.agent.max_turn_tokens}) must be <= max_completion_length "
                              f"({self.max_completion_length}), which bounds the whole trajectory")
        if self.max_completion_length < 2:
            raise ConfigError("agent: max_completion_length must be >= 2 (a turn and the end token)")

    def _check_grpo(self) -> None:
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
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")

    def _check_vllm(self) -> None:
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
        if self.vllm_tensor_parallel_size < 1 or self.vllm_server_port < 1 or self.vllm_server_timeout <= 0:
            raise ConfigError("vllm_tensor_parallel_size and vllm_server_port must be >= 1, vllm_server_timeout > 0")


def _reward_names(spec: Any) -> list[str]:
    """The reward names a ``rewards`` value lists (a name, or a list of names / {name: ...} entries)."""
    items = [spec] if isinstance(spec, str) else list(spec) if isinstance(spec, (list, tuple)) else []
    return [i if isinstance(i, str) else str(i.get("name")) for i in items if isinstance(i, (str, dict))]
