"""DPO and reward-model configs: TRL's loss list, the rules with their messages, and every YAML
file under configs/dpo and configs/rm loads."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from sqlcoach.errors import ConfigError
from sqlcoach.config import build_config, load_config
from sqlcoach.config.pref import DPO_LOSS_TYPES, DPORunConfig, RMRunConfig

ROOT = Path(__file__).resolve().parents[3]
BASE = {"model": "m", "pairs_path": "p.jsonl"}


def test_loss_types_are_exactly_the_installed_trl_list():
    trl = pytest.importorskip("trl")
    doc = inspect.getdoc(trl.DPOConfig) or ""
    section = doc.split("loss_type (", 1)[1].split("If multiple loss types", 1)[0]
    assert set(re.findall(r"`'([a-z_]+)'`", section)) == set(DPO_LOSS_TYPES)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"loss_type": ["dpo"]}, "unknown to TRL"),
        ({"loss_type": []}, "at least one"),
        ({"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0]}, "one weight per loss_type"),
        ({"beta": 0}, "beta must be > 0"),
        ({"label_smoothing": 0.5}, r"\[0, 0.5\)"),
        ({"label_smoothing": 0.1, "loss_type": ["sigmoid"]}, "only by loss_type"),
        ({"loss_type": ["exo_pair"]}, "exo_pair needs label_smoothing > 0"),
        ({"method": "qlora"}, "method must be one of"),
        ({"learning_rate": 0}, "learning_rate must be > 0"),
        ({"max_steps": 0}, "max_steps must be -1"),
        ({"max_length": 8}, "max_length must be >= 16"),
        ({"method": "lora", "lora_target_modules": []}, "lora_target_modules"),
        ({"save_total_limit": 0}, "--resume"),
        ({"dtype": "float16", "use_cpu": True}, "float16 is not supported"),
        ({"model": ""}, "model is required"),
        ({"pairs_path": ""}, "pairs_path is required"),
    ],
)
def test_dpo_rules(values, message):
    with pytest.raises(ConfigError, match=message):
        build_config(DPORunConfig, {**BASE, **values})


def test_anneal_by_clock_without_a_budget_is_inert():
    cfg = build_config(DPORunConfig, {**BASE, "anneal_by_clock": True, "max_seconds": None})
    assert cfg.anneal_by_clock and cfg.max_seconds is None  # valid: fit trains on the step schedule


def test_overrides_coerce_and_unknown_keys_fail():
    cfg = build_config(DPORunConfig, {**BASE, "loss_type": "ipo,sft", "loss_weights": "1,0.5", "beta": "0.3"})
    assert cfg.loss_type == ["ipo", "sft"] and cfg.loss_weights == [1.0, 0.5] and cfg.beta == 0.3
    with pytest.raises(ConfigError, match="unknown key.*max_prompt_length"):
        build_config(DPORunConfig, {**BASE, "max_prompt_length": 128})  # removed in TRL 1.x
    with pytest.raises(ConfigError, match="unknown key.*loss_type"):
        build_config(RMRunConfig, {**BASE, "loss_type": "sigmoid"})  # a DPO key is not an RM key


def test_rm_rules():
    assert build_config(RMRunConfig, BASE).method == "lora"
    with pytest.raises(ConfigError, match="center_rewards_coefficient"):
        build_config(RMRunConfig, {**BASE, "center_rewards_coefficient": -1})
    with pytest.raises(ConfigError, match="max_pairs"):
        build_config(RMRunConfig, {**BASE, "max_pairs": 0})


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "dpo").glob("*.yaml")) + sorted((ROOT / "configs" / "rm").glob("*.yaml")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_config_file_loads_and_names_its_command(path):
    cls = DPORunConfig if path.parent.name == "dpo" else RMRunConfig
    cfg = load_config(cls, path)
    assert cfg.model and cfg.pairs_path
    first = path.read_text().splitlines()[0]
    assert first.startswith(f"# sqlcoach train {path.parent.name} --config configs/{path.parent.name}/{path.name}")
