"""Typed, validated configuration: loading (YAML + ``key=value`` overrides, unknown keys are
errors), the shared field groups and rules (``base``), one module per recipe, and the comparison's.

``CONFIGS`` maps a recipe name to its config class; ``sqlcoach.train.recipes.RECIPES`` pairs each
with its run function (the config layer never imports the recipes).
"""

from __future__ import annotations

from sqlcoach.config.base import EpochFields, PromptFields, RunConfig, TrainerFields
from sqlcoach.config.grpo import GRPORunConfig
from sqlcoach.config.loading import (
    build_config,
    coerce,
    config_to_dict,
    describe_fields,
    load_config,
    parse_overrides,
)
from sqlcoach.config.ppo import PPORunConfig
from sqlcoach.config.pref import DPORunConfig, PreferenceFields, RMRunConfig
from sqlcoach.config.rl import RLFields
from sqlcoach.config.sft import SFTRunConfig
from sqlcoach.config.verifier import VerifierRunConfig

CONFIGS: dict[str, type[RunConfig]] = {
    "sft": SFTRunConfig,
    "rm": RMRunConfig,
    "dpo": DPORunConfig,
    "grpo": GRPORunConfig,
    "ppo": PPORunConfig,
    "verifier": VerifierRunConfig,
}

__all__ = [
    "CONFIGS", "DPORunConfig", "EpochFields", "GRPORunConfig", "PPORunConfig", "PreferenceFields", "PromptFields",
    "RLFields", "RMRunConfig", "RunConfig", "SFTRunConfig", "TrainerFields", "VerifierRunConfig", "build_config", "coerce",
    "config_to_dict", "describe_fields", "load_config", "parse_overrides",
]
