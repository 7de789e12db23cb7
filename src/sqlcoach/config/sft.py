"""Typed, validated configuration of an SFT run (``sqlcoach train sft --config FILE [key=value ...]``).

Tested with TRL 1.16 (``pyproject.toml`` pins ``trl>=1.0,<1.17``): TRL renamed
``gradient_checkpointing`` to ``activation_checkpointing`` and removed ``max_prompt_length``, so
this config names the former and has no such key. Shared fields and rules: ``config.base``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlcoach.config.base import EpochFields, PromptFields, RunConfig, TrainerFields, opt, redefault
from sqlcoach.errors import ConfigError


@dataclass
class SFTRunConfig(PromptFields, TrainerFields, EpochFields, RunConfig):
    """One SFT run (TRL ``SFTTrainer``, loss on the completion only)."""

    methods = ("full", "lora", "qlora")
    # data_kind=export: a file `sqlcoach data build` wrote (chat, rl, dbgpt, llamafactory), taken as rows
    extra_data_kinds = ("export",)

    output_dir: str = redefault(RunConfig, "output_dir", "runs/sft")
    lora_r: int = redefault(RunConfig, "lora_r", 64)
    # schema-renaming augmentation (sqlcoach.train.augment)
    rename_copies: int = opt(0, "schema-renamed copies per training example (sqlcoach.train.augment; 0: none)")
    rename_keep_original: bool = opt(True, "with rename_copies > 0: also train on the unrenamed row")
    rename_fresh_words: bool = opt(True, "renamed names: half generated words; false: training-schema words only")
    add_agent_tokens: bool = opt(False, "add the agent protocol's tags (<sql>, </sql>, <solution>, ...) to the tokenizer as "
                                 "single tokens, each new embedding the mean of its old pieces' (the agent warm start; full only)")

    def _check(self) -> None:
        if self.rename_copies < 0:
            raise ConfigError(f"rename_copies must be >= 0 (0: no renaming), got {self.rename_copies}")
        if self.rename_copies == 0 and not self.rename_keep_original:
            raise ConfigError("rename_keep_original=false needs rename_copies >= 1, or no row would be left")
        if self.rename_copies:
            from sqlcoach.prompts.templates import TEMPLATES

            if self.template is not None and TEMPLATES[self.template].anonymize:
                # The placeholder map is read from the real database, which a renamed copy no
                # longer matches: its rows would mix renamed words and placeholders.
                raise ConfigError(f"rename_copies needs a template with real names; {self.template!r} "
                                  "already replaces every name with a placeholder (set rename_copies: 0)")
        if self.add_agent_tokens and self.method != "full":
            # LoRA leaves the embedding matrix frozen: the new rows would keep their initial value
            raise ConfigError(f"add_agent_tokens needs method=full (new embedding rows are trained), got method={self.method}")
        if self.method == "qlora" and self.use_cpu:
            raise ConfigError("method=qlora needs a CUDA GPU (bitsandbytes 4-bit); it cannot run with use_cpu=true")
