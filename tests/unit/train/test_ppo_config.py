"""PPORunConfig: shipped configs load, bad values are refused with the rule they break."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlcoach.errors import ConfigError
from sqlcoach.config import build_config, load_config
from sqlcoach.config import PPORunConfig

REPO = Path(__file__).resolve().parents[3]
PPO_CONFIGS = sorted((REPO / "configs" / "ppo").glob("*.yaml"))
BASE = {"model": "m", "data_path": "d"}


@pytest.mark.parametrize("path", PPO_CONFIGS, ids=[p.name for p in PPO_CONFIGS])
def test_shipped_ppo_configs_load_and_start_with_their_command(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("# sqlcoach train ppo --config configs/ppo/" + path.name)
    cfg = load_config(PPORunConfig, path)
    assert cfg.rollout_batch_size % cfg.mini_batch_size == 0


def test_there_are_shipped_configs():
    assert "demo.yaml" in {p.name for p in PPO_CONFIGS}


def test_unknown_key_is_an_error_listing_valid_keys():
    with pytest.raises(ConfigError, match="unknown key.*valid keys"):
        build_config(PPORunConfig, {**BASE, "vf_coeff": 0.1})


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"model": ""}, "model is required"),
        ({"rewards": [], "reward_model": None}, "no reward"),
        ({"rollout_batch_size": 12, "per_device_train_batch_size": 8}, "multiple of"),
        ({"temperature": 0}, "temperature must be > 0"),
        ({"kl_target": 0.0}, "kl_target must be > 0"),
        ({"kl_target": 1.0, "kl_coef": 0.0}, "needs kl_coef > 0"),
        ({"gamma": 1.5}, "gamma and lam"),
        ({"method": "qlora"}, "method must be one of"),
        ({"missing_eos_penalty": -1}, "missing_eos_penalty"),
        ({"save_total_limit": 0}, "save_total_limit"),
        ({"max_steps": 0}, "max_steps"),
        ({"max_new_tokens": 64}, "'max_new_tokens' was renamed to 'max_completion_length'"),
        ({"sample_every": -1}, "sample_every and num_samples must be >= 0"),
    ],
)
def test_bad_values_are_refused(bad, message):
    with pytest.raises(ConfigError, match=message):
        build_config(PPORunConfig, {**BASE, **bad})


def test_overrides_are_coerced_and_reward_model_alone_is_enough():
    cfg = load_config(PPORunConfig, None, {**BASE, "rewards": "", "reward_model": "rm/final", "kl_target": "6"})
    assert cfg.rewards == [] and cfg.reward_model == "rm/final" and cfg.kl_target == 6.0
    cfg = load_config(PPORunConfig, None, {**BASE, "rewards": "execution,format"})
    assert cfg.rewards == ["execution", "format"]
