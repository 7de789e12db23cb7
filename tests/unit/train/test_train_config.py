"""Typed SFT config: unknown keys, coercion of key=value overrides, rule messages, shipped YAMLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlcoach.errors import ConfigError
from sqlcoach.config import build_config, coerce, load_config, parse_overrides
from sqlcoach.config import SFTRunConfig

REPO = Path(__file__).resolve().parents[3]
BASE = {"model": "m", "data_path": "d"}


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError) as err:
        build_config(SFTRunConfig, {**BASE, "lerning_rate": 1e-4})
    msg = str(err.value)
    assert "lerning_rate" in msg and "learning_rate" in msg and "lora_r" in msg


def test_overrides_are_coerced_to_field_types(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("# cmd\nmodel: m\ndata_path: d\nmethod: lora\n")
    cfg = load_config(
        SFTRunConfig,
        p,
        parse_overrides(["learning_rate=1e-3", "lora_r=8", "use_cpu=true", "max_examples=null",
                         "lora_target_modules=q_proj,k_proj", "max_seconds=12.5", "num_train_epochs=2"]),
    )
    assert cfg.learning_rate == 1e-3 and isinstance(cfg.learning_rate, float)
    assert cfg.lora_r == 8 and isinstance(cfg.lora_r, int)
    assert cfg.use_cpu is True and cfg.max_examples is None
    assert cfg.lora_target_modules == ["q_proj", "k_proj"]
    assert cfg.max_seconds == 12.5 and cfg.num_train_epochs == 2.0


@pytest.mark.parametrize(
    "value,tp,expected",
    [("3", int, 3), ("3.0", int, 3), ("no", bool, False), ("1e-4", float, 1e-4), ("~", int | None, None),
     # a list override with or without YAML's brackets (`seeds=[0,1,2]` once failed: "'[0' is not an integer")
     ("0,1,2", list[int] | None, [0, 1, 2]), ("[0, 1,2]", list[int] | None, [0, 1, 2]), ("[a]", list[str], ["a"]),
     ("[]", list[int], [])],
)
def test_coerce(value, tp, expected):
    assert coerce(value, tp, "k") == expected


@pytest.mark.parametrize("value,tp", [("3.5", int), ("maybe", bool), ("abc", float), (True, int)])
def test_coerce_rejects(value, tp):
    with pytest.raises(ConfigError, match="k must be"):
        coerce(value, tp, "k")


@pytest.mark.parametrize(
    "bad,message",
    [
        ({"learning_rate": 0}, "learning_rate must be > 0"),
        ({"method": "dora"}, "method must be one of"),
        ({"max_steps": 0}, "max_steps must be -1"),
        ({"warmup_ratio": 1.5}, "warmup_ratio must be in"),
        ({"method": "lora", "lora_r": 0}, "lora_r must be >= 1"),
        ({"method": "lora", "lora_target_modules": []}, "lora_target_modules"),
        ({"method": "qlora", "use_cpu": True}, "needs a CUDA GPU"),
        ({"save_total_limit": 0}, "--resume"),
        ({"max_length": 4}, "max_length"),
        ({"report_to": "mlflow"}, "report_to must be one of"),
        ({"template": "anonymized", "rename_copies": 2}, "rename_copies needs a template with real names"),
    ],
)
def test_rules_explain_themselves(bad, message):
    with pytest.raises(ConfigError, match=message):
        build_config(SFTRunConfig, {**BASE, **bad})


def test_model_and_data_are_required():
    with pytest.raises(ConfigError, match="model is required"):
        build_config(SFTRunConfig, {"data_path": "d"})
    with pytest.raises(ConfigError, match="data_path is required"):
        build_config(SFTRunConfig, {"model": "m"})


def test_override_without_equals():
    with pytest.raises(ConfigError, match="not key=value"):
        parse_overrides(["lr"])


def test_bad_yaml_is_reported(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(SFTRunConfig, p)
    with pytest.raises(ConfigError, match="not found"):
        load_config(SFTRunConfig, tmp_path / "missing.yaml")


SFT_CONFIGS = sorted((REPO / "configs" / "sft").glob("*.yaml"))


@pytest.mark.parametrize("path", SFT_CONFIGS, ids=[p.name for p in SFT_CONFIGS])
def test_shipped_sft_configs_load_and_start_with_their_command(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("# sqlcoach "), f"{path}: first line must be the command that runs it"
    cfg = load_config(SFTRunConfig, path, {} if "model:" in path.read_text() else BASE)
    assert cfg.learning_rate > 0


def test_there_are_shipped_configs():
    assert {"demo.yaml", "qwen2.5-coder-7b-lora-spider.yaml"} <= {p.name for p in SFT_CONFIGS}


def test_the_demo_trains_the_shipped_demo_yaml(tmp_path):
    """One source for the demo's SFT recipe: the YAML under configs/ (shipped in the package)."""
    from sqlcoach.pipelines.demo import DEMO_SFT_YAML, demo_sft_config

    assert DEMO_SFT_YAML.resolve() == (REPO / "configs" / "sft" / "demo.yaml").resolve()
    cfg = demo_sft_config(tmp_path, overrides={"learning_rate": "1e-3"})
    shipped = load_config(SFTRunConfig, REPO / "configs" / "sft" / "demo.yaml")
    for key in ("template", "schema_style", "max_seconds", "anneal_by_clock", "per_device_train_batch_size", "max_length"):
        assert getattr(cfg, key) == getattr(shipped, key), key
    assert cfg.learning_rate == 1e-3 and cfg.output_dir == str(tmp_path / "sft") and cfg.model == str(tmp_path / "model-init")
