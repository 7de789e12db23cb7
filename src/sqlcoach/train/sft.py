"""Supervised fine-tuning (full, LoRA, QLoRA) on TRL's ``SFTTrainer``.

Run it: ``sqlcoach train sft --config configs/sft/demo.yaml [key=value ...] [--resume]``.

Reads top to bottom: (1) examples -> conversational prompt/completion rows, (2) model and
tokenizer (QLoRA: 4-bit NF4 base + ``prepare_model_for_kbit_training``), (3) ``SFTConfig``,
(4) train (resuming from the last ``checkpoint-*`` in ``output_dir`` with ``--resume``),
(5) save the final model (or adapter) to ``output_dir/final``, the log history and the loss PNG.

The loss is on the completion only (TRL's ``completion_only_loss`` on prompt/completion rows): the
model learns to write the SQL, not to reproduce the schema. Agent trajectories (rows with
``observation_spans``, from ``sqlcoach agent rows``) also get no loss on the observations inside
the completion: ``agent_token_rows`` tokenizes them here, and TRL takes the ready ``input_ids`` and
``completion_mask``. A dataset without such rows goes to TRL exactly as before. ``add_agent_tokens``
grows the vocabulary by the agent protocol's tags before anything is tokenized
(``sqlcoach.models.vocab.add_words``); the grown tokenizer is saved with the model. Departures from DB-GPT-Hub's recipe:
packing is off by default, and the prompt is sqlcoach's template (schema text from the database
itself, not from tables.json).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlcoach.config import SFTRunConfig
from sqlcoach.errors import ConfigError, DataError
from sqlcoach.train.run import (
    RunSummary,
    check_rows_kept,
    main_log,
    on_main,
    fit,
    log_skipped,
    lora_config,
    lora_over_adapter_start,
    model_recipe,
    precision_flags,
    require_chat_template,
    save_final,
    trainer_kwargs,
    with_model_prompt,
    write_summary,
)


def build_training_rows(examples: list[Any], cfg: SFTRunConfig) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows ``cfg`` trains on: ``build_rows`` (unless ``rename_keep_original`` is off) plus
    ``rename_copies`` schema-renamed copies per example (``sqlcoach.train.augment``), interleaved
    example by example so that any prefix of the rows mixes both. Returns ``(rows, skipped)``."""
    from sqlcoach.prompts.builder import PromptBuilder
    from sqlcoach.prompts.settings import PromptSettings

    prompt = PromptSettings.of(cfg)
    rows, skipped = PromptBuilder.from_settings(prompt).sft_rows(examples)
    if cfg.rename_copies <= 0:
        return rows, skipped
    from sqlcoach.train.augment import renamed_rows

    renamed, skipped2 = renamed_rows(
        examples, prompt=prompt, copies=cfg.rename_copies, seed=cfg.seed, fresh=cfg.rename_fresh_words,
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


def _segments(content: str, spans: list[list[int]]) -> list[tuple[str, int]]:
    """``content`` cut at the observation ``spans``: ``(text, 1)`` for the model's text, ``(text, 0)`` for the
    environment's, in order, empty pieces left out."""
    out: list[tuple[str, int]] = []
    at = 0
    for start, end in spans:
        out += [(content[at:start], 1), (content[start:end], 0)]
        at = end
    out.append((content[at:], 1))
    return [(t, m) for t, m in out if t]


def agent_token_rows(rows: list[dict[str, Any]], tokenizer: Any) -> list[dict[str, Any]]:
    """``rows`` as ``{"input_ids", "completion_mask"}`` rows in which an agent trajectory's
    observation tokens have mask 0, as the prompt's do.

    Guarantees, per row: the prompt is the chat template's rendering of ``prompt`` with the
    generation prompt (and the row's ``tools``), tokenized as TRL tokenizes it; the completion is
    the rendered text after it (the assistant content, then what the template writes to close the
    message, e.g. ``<|im_end|>``), tokenized piece by piece at the span edges: each observation on
    its own, as ``generate.agent.run_agent`` appends it at inference, each model turn on its own,
    as the model generated it (the last one together with the closing text). Mask 1 exactly on the
    model's pieces. A row without spans is one piece (its completion tokenized whole). A template
    that does not render the assistant content verbatim after the generation prompt is a
    ``DataError`` (the spans could not be placed)."""
    from sqlcoach.data.export import OBSERVATION_SPANS

    out: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        tools = row.get("tools") or None
        spans = list(row.get(OBSERVATION_SPANS) or [])
        prompt_text = tokenizer.apply_chat_template(row["prompt"], tools=tools, tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tools=tools, tokenize=False)
        content = row["completion"][0]["content"] if spans else ""
        if not (full.startswith(prompt_text) and full[len(prompt_text):].startswith(content)):
            raise DataError(f"row {i}: the chat template does not write the completion verbatim after the generation "
                            f"prompt, so its {OBSERVATION_SPANS} cannot be placed (train it without them)")
        # the model's last piece ends with what the template writes to close its message (an end token)
        pieces = _segments(content, spans)
        close = full[len(prompt_text) + len(content):]
        if pieces and pieces[-1][1] == 1:
            pieces[-1] = (pieces[-1][0] + close, 1)
        elif close:
            pieces.append((close, 1))
        ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
        mask = [0] * len(ids)
        for text, trained in pieces:
            piece = tokenizer(text, add_special_tokens=False)["input_ids"]
            ids += piece
            mask += [trained] * len(piece)
        out.append({"input_ids": ids, "completion_mask": mask})
    return out


def _dataset_rows(rows: list[dict[str, Any]], tokenizer: Any, log: Any) -> list[dict[str, Any]]:
    """What ``SFTTrainer`` gets: ``rows`` as they are when none is an agent trajectory; else all of
    them through ``agent_token_rows`` (one dataset has one format), with a log line."""
    from sqlcoach.data.export import OBSERVATION_SPANS

    agent = sum(1 for r in rows if r.get(OBSERVATION_SPANS))
    if not agent:  # no observation to mask: TRL's own tokenization (an empty spans column dropped)
        if any(OBSERVATION_SPANS in r for r in rows):
            return [{k: v for k, v in r.items() if k != OBSERVATION_SPANS} for r in rows]
        return rows
    log(f"{agent} of {len(rows)} rows are agent trajectories: no loss on their observation tokens "
        "(tokenized by sqlcoach; TRL gets input_ids + completion_mask)")
    return agent_token_rows(rows, tokenizer)


def _load_for_training(cfg: SFTRunConfig) -> tuple[Any, Any, Any, str]:
    """(model, tokenizer, peft_config or None, device) as the method asks (QLoRA: 4-bit NF4 base)."""
    import torch

    from sqlcoach.models.load import is_adapter, load_start, load_tokenizer, quantization_config
    from sqlcoach.runtime.device import device_map_for, resolve_dtype, training_device

    device = training_device(cfg.use_cpu)
    dtype = resolve_dtype(cfg.dtype, device)
    if cfg.method == "qlora" and is_adapter(cfg.model):
        raise ConfigError(f"{cfg.model} is a LoRA adapter: QLoRA quantises a base it cannot merge into; "
                          "train it with method=lora or full (the adapter is merged into its base first)")
    kwargs: dict[str, Any] = {"dtype": dtype}
    if cfg.method == "qlora":
        # Raises a ConfigError naming the reason on a machine without CUDA or bitsandbytes.
        kwargs["quantization_config"] = quantization_config("4bit", dtype if dtype != torch.float32 else torch.bfloat16)
        kwargs["device_map"] = device_map_for(device)  # {"": LOCAL_RANK}: each rank its own GPU
    model = load_start(cfg.model, **kwargs)  # an adapter start merged first (run_sft saves merged then)
    # Right padding for training (TRL pads itself; this only matters for a fallback collator).
    tokenizer = load_tokenizer(cfg.model, padding_side="right")
    require_chat_template(tokenizer, cfg.model, "sqlcoach trains on chat-formatted prompt/completion pairs")
    if cfg.add_agent_tokens:
        from sqlcoach.models.vocab import add_words
        from sqlcoach.prompts.agent import AGENT_TAGS

        add_words(model, tokenizer, AGENT_TAGS)
    peft_config = None
    if cfg.method in ("lora", "qlora"):
        if cfg.method == "qlora":
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.activation_checkpointing)
        peft_config = lora_config(cfg)
    return model, tokenizer, peft_config, device


def export_rows(cfg: SFTRunConfig, log: Any) -> tuple[SFTRunConfig, list[dict[str, Any]]]:
    """``(cfg, rows)`` for ``data_kind=export``: the rows of the file ``sqlcoach data build`` wrote
    (``data.export.read_training_file``), and ``cfg`` with the prompt settings the file records
    (so that the model's recipe says how it was prompted). A setting the config gives explicitly
    and the file contradicts is a ``ConfigError``: the model would be prompted unlike its training."""
    import dataclasses

    from sqlcoach.data.export import read_training_file
    from sqlcoach.prompts.recipe import PROMPT_KEYS

    rows, problems, settings = read_training_file(cfg.data_path)
    log_skipped([str(p) for p in problems], log)
    if settings is None:
        log(f"note: {cfg.data_path} records no prompt settings (dbgpt/llamafactory); the model's recipe records this config's")
        return cfg, rows
    clash = [k for k in PROMPT_KEYS if getattr(cfg, k) is not None and k in settings and getattr(cfg, k) != settings[k]]
    if clash:
        raise ConfigError(f"{cfg.data_path} was exported with " + ", ".join(f"{k}={settings[k]!r}" for k in clash)
                          + "; the config says " + ", ".join(f"{k}={getattr(cfg, k)!r}" for k in clash)
                          + " (leave them unset to take the file's)")
    return dataclasses.replace(cfg, **{k: settings[k] for k in PROMPT_KEYS if k in settings}), rows


def _rows(cfg: SFTRunConfig, examples: list[Any] | None, rows: list[dict[str, Any]] | None,
          log: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """The prompt/completion rows to train on: given, or built from ``examples`` / the dataset."""
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
    log_skipped(skipped, log)
    if not rows:
        raise DataError(f"no usable training example ({len(skipped)} skipped)", path=cfg.data_path)
    return rows, skipped


def run_sft(
    cfg: SFTRunConfig,
    *,
    resume: bool = False,
    examples: list[Any] | None = None,
    rows: list[dict[str, Any]] | None = None,
    callbacks: list[Any] | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """Train as ``cfg`` says; returns the summary dict (``train.run.RunSummary``, also in
    ``output_dir/summary.json``).

    Guarantees: ``output_dir/final`` holds a loadable model (full) or adapter (LoRA/QLoRA) plus the
    tokenizer; ``output_dir/log_history.json`` and ``output_dir/loss.png`` (when any loss was
    logged) exist. With ``resume=True`` training continues from the last checkpoint (same
    optimizer, scheduler, RNG and data order), so the run ends at the same step count as an
    uninterrupted one. ``examples`` replaces the data loading (the demo passes them in); ``rows``
    (ready prompt/completion rows) replaces both loading and prompt building; ``callbacks`` are
    extra ``TrainerCallback``s."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from sqlcoach.runtime.plots import plot_loss

    t0 = time.monotonic()
    log = main_log(log)  # every rank trains; rank 0 alone prints and writes the bookkeeping
    if rows is None and examples is None and cfg.data_kind == "export":
        cfg, rows = export_rows(cfg, log)
    cfg, _ = with_model_prompt(cfg, log)
    rows, skipped = _rows(cfg, examples, rows, log)
    model, tokenizer, peft_config, device = _load_for_training(cfg)
    data = _dataset_rows(rows, tokenizer, log)
    args = SFTConfig(**trainer_kwargs(cfg, **precision_flags(model)), num_train_epochs=cfg.num_train_epochs,
                     max_length=cfg.max_length, packing=False, completion_only_loss=True)

    def make_trainer(cbs: list[Any]) -> Any:
        return SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(data), processing_class=tokenizer,
                          peft_config=peft_config, callbacks=cbs)

    def check(trainer: Any) -> None:
        check_rows_kept(trainer, len(rows), what="training examples", max_length=cfg.max_length, log=log,
                        hint="raise max_length, or shorten prompts: schema_style, schema_sample_values=0")

    done = fit(cfg, make_trainer, resume=resume, callbacks=callbacks, log=log, check=check)
    final = save_final(done.trainer, tokenizer, cfg.output_dir, merge=lora_over_adapter_start(cfg),
                       recipe=model_recipe(cfg, "sft", max_length=cfg.max_length))
    png = on_main(lambda: plot_loss(done.trainer.state.log_history, Path(cfg.output_dir) / "loss.png",
                                    title=f"SFT ({cfg.method}) loss"))
    summary = RunSummary.of_fit("sft", done, final=final, t0=t0, rows=len(done.trainer.train_dataset),
                                skipped=len(skipped), device=device, plot=png)
    return write_summary(cfg, summary)
