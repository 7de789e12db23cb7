"""Supervised fine-tuning (full, LoRA, QLoRA) on TRL's ``SFTTrainer``.

Run it: ``sqlcoach train sft --config configs/sft/demo.yaml [key=value ...] [--resume]``.

Reads top to bottom: (1) examples -> conversational prompt/completion rows, (2) model and
tokenizer (QLoRA: 4-bit NF4 base + ``prepare_model_for_kbit_training``), (3) ``SFTConfig``,
(4) train (resuming from the last ``checkpoint-*`` in ``output_dir`` with ``--resume``),
(5) save the final model (or adapter) to ``output_dir/final``, the log history and the loss PNG.

The loss is on the completion only (TRL's ``completion_only_loss`` on prompt/completion rows): the
model learns to write the SQL, not to reproduce the schema. Departures from DB-GPT-Hub's recipe:
packing is off by default, and the prompt is sqlcoach's template (schema text from the database
itself, not from tables.json).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from sqlcoach.errors import ConfigError, DataError
from sqlcoach.train.common import clock_callback, config_to_dict, lora_config, read_clock, trainer_kwargs
from sqlcoach.train.config import SFTRunConfig
from sqlcoach.train.plots import plot_loss


def build_rows(
    examples: list[Any], *, template: str, schema_style: str, sample_values: int = 3
) -> tuple[list[dict[str, Any]], list[str]]:
    """Examples -> TRL conversational prompt/completion rows.

    Returns ``(rows, skipped)``: an example without gold SQL or without a readable database is
    skipped, and ``skipped`` says which and why (the rest is still used). Schema text is computed
    once per database, with ``sample_values`` example values per column (0: none, shorter prompts)."""
    from sqlcoach.prompts.templates import render_completion, render_prompt
    from sqlcoach.schema.introspect import introspect
    from sqlcoach.schema.serialize import serialize

    schema_text: dict[str, str | None] = {}
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    for ex in examples:
        if not ex.gold_sql:
            skipped.append(f"{ex.id}: no gold SQL")
            continue
        if not ex.db_path:
            skipped.append(f"{ex.id}: no database")
            continue
        if ex.db_path not in schema_text:
            try:
                schema_text[ex.db_path] = serialize(introspect(ex.db_path, sample_values=sample_values), schema_style)
            except Exception as exc:  # a broken database must not stop the run: report it
                schema_text[ex.db_path] = None
                skipped.append(f"{ex.id}: cannot read schema of {ex.db_path}: {exc}")
                continue
        text = schema_text[ex.db_path]
        if text is None:
            skipped.append(f"{ex.id}: unreadable database {ex.db_path}")
            continue
        try:
            prompt = render_prompt(ex, text, template)
            completion = render_completion(ex.gold_sql, template, example=ex)
        except DataError as exc:  # e.g. names that clash with the anonymized template's placeholders
            skipped.append(f"{ex.id}: {exc}")
            continue
        rows.append({"prompt": list(prompt), "completion": [{"role": "assistant", "content": completion}]})
    return rows, skipped


def build_training_rows(examples: list[Any], cfg: SFTRunConfig) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows ``cfg`` trains on: ``build_rows`` (unless ``rename_keep_original`` is off) plus
    ``rename_copies`` schema-renamed copies per example (``sqlcoach.train.augment``), interleaved
    example by example so that any prefix of the rows mixes both. Returns ``(rows, skipped)``."""
    rows, skipped = build_rows(
        examples, template=cfg.template, schema_style=cfg.schema_style, sample_values=cfg.schema_sample_values
    )
    if cfg.rename_copies <= 0:
        return rows, skipped
    from sqlcoach.train.augment import renamed_rows

    renamed, skipped2 = renamed_rows(
        examples, template=cfg.template, schema_style=cfg.schema_style, sample_values=cfg.schema_sample_values,
        copies=cfg.rename_copies, seed=cfg.seed, fresh=cfg.rename_fresh_words,
    )
    if not cfg.rename_keep_original:
        return renamed, skipped2
    k = cfg.rename_copies
    mixed: list[dict[str, Any]] = []
    if len(renamed) == len(rows) * k:
        for i, row in enumerate(rows):
            mixed.append(row)
            mixed.extend(renamed[i * k : (i + 1) * k])
    else:  # some example was skipped by one builder and not the other: keep both lists whole
        mixed = rows + renamed
    return mixed, skipped + skipped2


def last_checkpoint(output_dir: str | Path) -> Path | None:
    """The ``checkpoint-N`` folder with the largest N in ``output_dir`` that holds a trainer state,
    or ``None``. A checkpoint without ``trainer_state.json`` (killed while saving) is ignored."""
    out = Path(output_dir)
    best: tuple[int, Path] | None = None
    for p in out.glob("checkpoint-*"):
        try:
            n = int(p.name.split("-", 1)[1])
        except ValueError:
            continue
        if not (p / "trainer_state.json").is_file():
            continue
        if best is None or n > best[0]:
            best = (n, p)
    return best[1] if best else None


def _load_for_training(cfg: SFTRunConfig) -> tuple[Any, Any, Any]:
    """(model, tokenizer, peft_config or None) as the method asks."""
    import torch
    from transformers import AutoModelForCausalLM

    from sqlcoach.models.load import load_tokenizer, quantization_config, resolve_dtype

    device = "cpu" if cfg.use_cpu or not torch.cuda.is_available() else "cuda"
    dtype = resolve_dtype(cfg.dtype, device)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if cfg.method == "qlora":
        # Raises a ConfigError naming the reason on a machine without CUDA or bitsandbytes.
        kwargs["quantization_config"] = quantization_config("4bit", dtype if dtype != torch.float32 else torch.bfloat16)
        kwargs["device_map"] = {"": 0}
    model = AutoModelForCausalLM.from_pretrained(cfg.model, **kwargs)
    # Right padding for training (TRL pads itself; this only matters for a fallback collator).
    tokenizer = load_tokenizer(cfg.model, padding_side="right")
    if tokenizer.chat_template is None:
        raise ConfigError(
            f"{cfg.model}: the tokenizer has no chat template; sqlcoach trains on chat-formatted "
            "prompt/completion pairs (use an instruct checkpoint or a model from `sqlcoach model init`)"
        )
    peft_config = None
    if cfg.method in ("lora", "qlora"):
        if cfg.method == "qlora":
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(
                model, use_gradient_checkpointing=cfg.activation_checkpointing
            )
        peft_config = lora_config(cfg)
    return model, tokenizer, peft_config


def _sft_args(cfg: SFTRunConfig, dtype_is_bf16: bool, dtype_is_fp16: bool) -> Any:
    from trl import SFTConfig

    return SFTConfig(
        **trainer_kwargs(cfg, bf16=dtype_is_bf16, fp16=dtype_is_fp16),
        num_train_epochs=cfg.num_train_epochs,
        max_length=cfg.max_length,
        packing=False,
        completion_only_loss=True,
    )


def run_sft(
    cfg: SFTRunConfig,
    *,
    resume: bool = False,
    examples: list[Any] | None = None,
    rows: list[dict[str, Any]] | None = None,
    callbacks: list[Any] | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """Train as ``cfg`` says; returns a summary dict.

    Guarantees: ``output_dir/final`` holds a loadable model (full) or adapter (LoRA/QLoRA) plus the
    tokenizer; ``output_dir/log_history.json`` and ``output_dir/loss.png`` (when any loss was
    logged) exist; ``output_dir/sqlcoach_sft.json`` holds the config and the summary. With
    ``resume=True`` training continues from the last checkpoint (same optimizer, scheduler, RNG and
    data order), so the run ends at the same step count as an uninterrupted one.

    ``examples`` replaces the data loading (the demo passes them in); ``rows`` (ready
    prompt/completion rows) replaces both loading and prompt building; ``callbacks`` are extra
    ``TrainerCallback``s."""
    import torch

    t0 = time.monotonic()
    skipped: list[str] = []
    if rows is None:
        if examples is None:
            from sqlcoach.data import load_examples

            examples = load_examples(cfg.data_kind, cfg.data_path, cfg.split)
        if cfg.max_examples is not None:
            examples = examples[: cfg.max_examples]
        rows, skipped = build_training_rows(examples, cfg)
    elif cfg.max_examples is not None:
        rows = rows[: cfg.max_examples]
    for s in skipped[:10]:
        log(f"skipped example {s}")
    if len(skipped) > 10:
        log(f"... and {len(skipped) - 10} more skipped examples")
    if not rows:
        raise DataError(f"no usable training example ({len(skipped)} skipped)", path=cfg.data_path)

    from datasets import Dataset
    from trl import SFTTrainer

    model, tokenizer, peft_config = _load_for_training(cfg)
    param_dtype = next(model.parameters()).dtype
    args = _sft_args(cfg, param_dtype == torch.bfloat16, param_dtype == torch.float16)
    callbacks = list(callbacks or [])
    ckpt = last_checkpoint(cfg.output_dir) if resume else None
    # Always present: it records the training seconds in each checkpoint; with max_seconds it
    # also stops the run (and, with anneal_by_clock, drives the learning rate by time).
    clock = clock_callback(
        cfg.max_seconds, already=read_clock(ckpt), anneal=cfg.anneal_by_clock, warmup_ratio=cfg.warmup_ratio
    )
    callbacks.append(clock)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
    )
    clock.bind(trainer)
    kept = len(trainer.train_dataset)
    if kept == 0:
        raise ConfigError(
            f"all {len(rows)} training examples lost their completion: prompts are longer than "
            f"max_length={cfg.max_length} tokens (raise max_length, or shorten prompts: schema_style, "
            "schema_sample_values=0)"
        )
    if kept < len(rows):
        log(f"{len(rows) - kept} of {len(rows)} examples dropped: their completion lies beyond max_length={cfg.max_length}")
    if resume and ckpt is None:
        log(f"--resume: no checkpoint in {cfg.output_dir}; starting from step 0")
    elif ckpt is not None:
        log(f"resuming from {ckpt}")
    result = trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)

    out = Path(cfg.output_dir)
    final = out / "final"
    trainer.save_model(str(final))
    tokenizer.save_pretrained(str(final))
    history = list(trainer.state.log_history)
    (out / "log_history.json").write_text(json.dumps(history, indent=1) + "\n")
    png = plot_loss(history, out / "loss.png", title=f"SFT ({cfg.method}) loss")
    n_trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    summary = {
        "final_dir": str(final),
        "global_step": int(trainer.state.global_step),
        "max_steps": int(trainer.state.max_steps),
        "train_loss": float(result.training_loss),
        "resumed_from": str(ckpt) if ckpt else None,
        "stopped_by_clock": clock.stopped_at is not None,
        "examples": kept,
        "skipped": len(skipped),
        "trainable_parameters": int(n_trainable),
        "seconds": round(time.monotonic() - t0, 2),
        "loss_png": str(png) if png else None,
    }
    (out / "sqlcoach_sft.json").write_text(
        json.dumps({"config": config_to_dict(cfg), "summary": summary}, indent=2) + "\n"
    )
    return summary
