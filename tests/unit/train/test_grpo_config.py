"""Typed GRPO config: unknown keys, every rule's message, TRL's value sets, shipped YAMLs."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest

from sqlcoach.errors import ConfigError
from sqlcoach.config import build_config, load_config, parse_overrides
from sqlcoach.config.grpo import LOSS_TYPES, SCALE_REWARDS, GRPORunConfig

REPO = Path(__file__).resolve().parents[3]
BASE = {"model": "m", "data_path": "d"}
HAS_VLLM = importlib.util.find_spec("vllm") is not None


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError) as err:
        build_config(GRPORunConfig, {**BASE, "num_generation": 4})
    msg = str(err.value)
    assert "num_generation" in msg and "num_generations" in msg and "loss_type" in msg


def test_overrides_are_coerced(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("# cmd\nmodel: m\ndata_path: d\nrewards: [execution, {name: format, weight: 0.5}]\n")
    cfg = load_config(GRPORunConfig, p, parse_overrides(
        ["num_generations=4", "per_device_train_batch_size=8", "beta=0.04", "epsilon_high=0.28",
         "max_seconds=60", "use_cpu=true", "reward_options={format: {template: think}}", "scale_rewards=false"]))
    assert cfg.num_generations == 4 and cfg.beta == 0.04 and cfg.epsilon_high == 0.28
    assert cfg.max_seconds == 60.0 and cfg.use_cpu is True
    assert cfg.rewards == ["execution", {"name": "format", "weight": 0.5}]
    assert cfg.reward_options == {"format": {"template": "think"}}
    assert cfg.scale_rewards == "none"  # TRL's mapping of the boolean form
    cfg = load_config(GRPORunConfig, None, {**BASE, **parse_overrides(["rewards=execution_binary,format"])})
    assert cfg.rewards == ["execution_binary", "format"]
    cfg = load_config(GRPORunConfig, None, {**BASE, **parse_overrides(["rewards=[execution, {name: ngram, weight: 0.3}]"])})
    assert cfg.rewards == ["execution", {"name": "ngram", "weight": 0.3}]
    assert load_config(GRPORunConfig, None, {**BASE, "rewards": "arctic"}).rewards == "arctic"


def test_trl_value_sets_match_the_installed_trl():
    """The config validates against the same sets TRL 1.16 documents (so a TRL upgrade shows here)."""
    trl = pytest.importorskip("trl")
    from trl import GRPOConfig

    fields = {f.name: f for f in dataclasses.fields(GRPOConfig)}
    help_text = fields["loss_type"].metadata["help"]
    for loss in LOSS_TYPES:
        assert f"'{loss}'" in help_text, loss
    for scale in SCALE_REWARDS:
        assert f"'{scale}'" in fields["scale_rewards"].metadata["help"] or scale == "group"
    assert trl.__version__.startswith("1.")


@pytest.mark.parametrize(
    "bad,message",
    [
        ({"model": ""}, "model is required"),
        ({"data_path": ""}, "data_path is required"),
        ({"method": "qlora"}, "method must be one of"),
        ({"num_generations": 1, "per_device_train_batch_size": 1}, "num_generations must be >= 2"),
        ({"num_generations": 3, "per_device_train_batch_size": 8}, "divisible by num_generations"),
        ({"num_generations": 4, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 3},
         "must be divisible by num_generations = 4"),
        ({"loss_type": "ppo"}, "loss_type must be one of"),
        ({"beta": -0.1}, "beta must be >= 0"),
        ({"epsilon": 0}, "epsilon must be > 0"),
        ({"epsilon": 0.2, "epsilon_high": 0.1}, "epsilon_high .* must be >= epsilon"),
        ({"scale_rewards": "std"}, "scale_rewards must be one of"),
        ({"temperature": 0}, "temperature must be > 0"),
        ({"top_p": 0}, "top_p must be in"),
        ({"max_completion_length": 0}, "max_completion_length must be >= 1"),
        ({"learning_rate": 0}, "learning_rate must be > 0"),
        ({"warmup_ratio": 1.0}, "warmup_ratio must be in"),
        ({"max_steps": 0}, "max_steps must be >= 1"),
        ({"per_device_train_batch_size": 0}, "must be >= 1"),
        ({"pass_rate_k": 1}, "pass_rate_k must be 0"),
        ({"pass_rate_k": -2}, "pass_rate_k must be 0"),
        ({"pass_rate_max_prompts": 0}, "pass_rate_max_prompts"),
        ({"rewards": []}, "no reward"),
        ({"rewards": 3}, "rewards must be"),
        ({"reward_options": "[1, 2]"}, "reward_options must be a mapping"),
        ({"reward_workers": -1}, "reward_workers must be >= 0"),
        ({"reward_timeout": 0}, "reward_timeout must be > 0"),
        ({"method": "lora", "lora_r": 0}, "lora_r and lora_alpha"),
        ({"method": "lora", "lora_target_modules": []}, "lora_target_modules"),
        ({"merge_lora": True}, "merge_lora applies to method=lora"),
        ({"vllm_mode": "remote"}, "vllm_mode must be one of"),
        ({"use_vllm": True, "use_cpu": True}, "use_vllm needs a CUDA GPU"),
        ({"dtype": "float16", "use_cpu": True}, "float16 is not supported"),
        ({"sample_every": -1}, "sample_every and num_samples must be >= 0"),
        ({"sample_log_every": 10}, "'sample_log_every' was renamed to 'sample_every'"),
        ({"num_examine": 2, "max_new_tokens": 8}, "'max_new_tokens' was renamed to 'max_completion_length'; 'num_examine' was renamed to 'num_samples'"),
        ({"save_total_limit": 0}, "save_total_limit"),
        ({"max_seconds": 0}, "max_seconds must be > 0"),
        ({"max_examples": 0}, "max_examples must be >= 1"),
    ],
)
def test_rules(bad, message):
    with pytest.raises(ConfigError, match=message):
        build_config(GRPORunConfig, {**BASE, **bad})


def test_cispo_may_have_a_large_epsilon_high_and_valid_values_pass():
    cfg = build_config(GRPORunConfig, {**BASE, "loss_type": "cispo", "epsilon_high": 5.0})
    assert cfg.epsilon_high == 5.0
    cfg = build_config(GRPORunConfig, {**BASE, "num_generations": 4, "per_device_train_batch_size": 2,
                                       "gradient_accumulation_steps": 2, "scale_rewards": "batch"})
    assert cfg.scale_rewards == "batch"


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed here")
def test_use_vllm_without_vllm_is_a_clear_error():
    with pytest.raises(ConfigError, match="vLLM is not installed"):
        build_config(GRPORunConfig, {**BASE, "use_vllm": True})


GRPO_CONFIGS = sorted((REPO / "configs" / "grpo").glob("*.yaml"))


@pytest.mark.parametrize("path", GRPO_CONFIGS, ids=[p.name for p in GRPO_CONFIGS])
def test_shipped_grpo_configs_load_and_start_with_their_command(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("# sqlcoach train grpo --config configs/grpo/"), f"{path}: first line must be its command"
    import yaml

    values = yaml.safe_load(path.read_text())
    overrides = {}
    if values.get("use_vllm") and not HAS_VLLM:
        overrides["use_vllm"] = False  # checked separately: the file is for a GPU machine with vLLM
    cfg = load_config(GRPORunConfig, path, overrides)
    from sqlcoach.rewards import build_rewards

    rewards = build_rewards(cfg.rewards, **dict(cfg.reward_options))  # the reward spec is valid too
    assert rewards


def test_there_are_shipped_configs():
    assert {"demo.yaml", "qwen2.5-coder-7b-arctic.yaml"} <= {p.name for p in GRPO_CONFIGS}
