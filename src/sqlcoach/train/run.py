"""The skeleton every recipe shares: checkpoints, the Trainer run, the final save and one summary.

A Trainer-based recipe (SFT, DPO, RM, GRPO) reads top to bottom as: rows -> ``load_policy`` ->
its TRL config (``trainer_kwargs`` + its own fields) -> ``fit(cfg, make_trainer, ...)`` (resume
from ``last_checkpoint``, wall-clock budget, step timer, peak memory) -> ``save_final`` ->
``write_summary``. PPO runs its own loop and uses ``last_checkpoint``, ``RunSummary`` and
``write_summary`` with its own checkpoint marker.

``RunSummary`` gives every field one meaning in every recipe, and every run writes it to
``output_dir/summary.json`` (``{"recipe", "config", "summary"}``):

* ``seconds``: the whole call (loading, rows, training, saving); ``train_seconds``: the training
  loop alone; ``median_step_seconds``: the median optimizer step (PPO: the median PPO step);
* ``peak_memory_mb``: this process's peak resident set during training, sampled (executor worker
  processes not counted); ``peak_cuda_mb``: CUDA's allocator peak (``None`` without a GPU);
* ``rows``: the training rows used (examples, pairs or prompts); ``skipped``: those left out;
* ``distributed_type``: how accelerate ran them (``NO``, ``MULTI_CPU``, ``MULTI_GPU``, ``FSDP``,
  ``DEEPSPEED``); ``world_size``: the processes that trained (``torchrun`` / ``accelerate launch``: N; else 1);
  ``global_batch``: rows per optimizer step over all of them (per-device batch x gradient
  accumulation x processes; GRPO: completions, PPO: prompts per PPO step).

Under N processes every rank trains, and only rank 0 prints the recipe's own lines, writes
``final/``'s tokenizer and recipe, ``log_history.json``, plots, ``samples.jsonl`` and
``summary.json`` (``runtime.dist``); the Trainer itself saves checkpoints and the model once.

Recipe-specific values (reward curves, curation reports, evaluations) go in ``details`` and are
flattened next to the common fields in the returned dict and the file.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, TypeVar

from sqlcoach.config import RunConfig, config_to_dict
from sqlcoach.errors import ModelError
from sqlcoach.runtime.dist import barrier, is_main, main_log  # noqa: F401 - main_log: the recipes' import

SUMMARY_FILE = "summary.json"


class TrainerRunConfig(Protocol):
    """The config of a recipe on a ``transformers.Trainer`` (SFT, GRPO, DPO, RM): the fields of
    ``config.base.RunConfig`` and ``TrainerFields`` that ``trainer_kwargs`` and ``fit`` read (no
    single class has both groups, so the type says which fields it needs)."""

    output_dir: str
    seed: int
    learning_rate: float
    weight_decay: float
    max_grad_norm: float
    per_device_train_batch_size: int
    gradient_accumulation_steps: int
    max_steps: int
    use_cpu: bool
    logging_steps: int
    save_steps: int
    save_total_limit: int | None
    max_seconds: float | None
    lr_scheduler_type: str
    warmup_ratio: float
    warmup_start: float
    activation_checkpointing: bool
    report_to: str
    disable_tqdm: bool


#: a recipe config with ``PromptFields`` on top of ``RunConfig`` (SFT, GRPO, PPO): ``with_model_prompt`` returns the same class
PromptRunConfig = TypeVar("PromptRunConfig", bound=RunConfig)


def last_checkpoint(output_dir: str | Path, marker: str = "trainer_state.json") -> Path | None:
    """The ``checkpoint-N`` folder with the largest N in ``output_dir`` that holds ``marker``, or
    ``None``. A checkpoint without it (killed while saving) is ignored."""
    best: tuple[int, Path] | None = None
    for p in Path(output_dir).glob("checkpoint-*"):
        try:
            n = int(p.name.split("-", 1)[1])
        except ValueError:
            continue
        if (p / marker).is_file() and (best is None or n > best[0]):
            best = (n, p)
    return best[1] if best else None


def say_resume(resume: bool, ckpt: Path | None, output_dir: str, log: Callable[[str], None]) -> None:
    if ckpt is not None:
        log(f"resuming from {ckpt}")
    elif resume:
        log(f"--resume: no checkpoint in {output_dir}; starting from step 0")


def trainer_kwargs(cfg: TrainerRunConfig, *, bf16: bool, fp16: bool) -> dict[str, Any]:
    """The ``transformers.TrainingArguments`` fields every TRL-based recipe sets the same way.

    Each recipe adds its own (``num_train_epochs``, ``max_length``, generation settings, ...)."""
    return dict(
        output_dir=cfg.output_dir,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio of total steps
        weight_decay=cfg.weight_decay,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        max_grad_norm=cfg.max_grad_norm,
        bf16=bf16,
        fp16=fp16,
        use_cpu=cfg.use_cpu,
        **_checkpointing_field(cfg.activation_checkpointing),
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        report_to=[] if cfg.report_to == "none" else [cfg.report_to],
        seed=cfg.seed,
        data_seed=cfg.seed,
        disable_tqdm=cfg.disable_tqdm,
        dataloader_num_workers=0,
        # every parameter gets a gradient in these recipes: DDP need not search the graph for unused ones
        ddp_find_unused_parameters=False,
    )


def _checkpointing_field(on: bool) -> dict[str, bool]:
    """``activation_checkpointing`` (the newer transformers 5 name; 5.24 has both) or
    ``gradient_checkpointing`` (the only one in 5.17), whichever the installed ``TrainingArguments`` has."""
    import dataclasses

    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    return {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": on}


def precision_flags(model: Any) -> dict[str, bool]:
    """``bf16``/``fp16`` for ``trainer_kwargs`` from the dtype the model was loaded in."""
    import torch

    dtype = next(model.parameters()).dtype
    return {"bf16": dtype == torch.bfloat16, "fp16": dtype == torch.float16}


def preference_args(cfg: TrainerRunConfig, config_cls: type, model: Any, **extra: Any) -> Any:
    """The TRL config both preference recipes build the same way (``config_cls``: DPOConfig or RewardConfig)."""
    return config_cls(
        **trainer_kwargs(cfg, **precision_flags(model)),
        num_train_epochs=cfg.num_train_epochs,
        per_device_eval_batch_size=cfg.per_device_train_batch_size,
        max_length=cfg.max_length,
        **extra,
    )


def lora_config(cfg: RunConfig, task_type: str = "CAUSAL_LM", modules_to_save: list[str] | None = None) -> Any:
    """The peft ``LoraConfig`` every recipe builds from its config's lora_* fields (bias off)."""
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.lora_target_modules), bias="none", task_type=task_type,
        modules_to_save=modules_to_save,
    )


def require_chat_template(tokenizer: Any, model: str, why: str) -> None:
    if tokenizer.chat_template is None:
        raise ModelError(
            f"{model}: the tokenizer has no chat template; {why} (use an instruct checkpoint, an SFT "
            "run's final/, or a model from `sqlcoach model init`)"
        )


def load_policy(cfg: RunConfig, *, padding_side: str, why: str) -> tuple[Any, Any, str]:
    """(model, tokenizer, device) for training; a LoRA adapter folder as ``cfg.model`` is merged
    into its base first, so the recipe continues from exactly that policy."""
    from sqlcoach.models.load import load_model
    from sqlcoach.runtime.device import training_device

    device = training_device(cfg.use_cpu)
    model, tok = load_model(cfg.model, dtype=cfg.dtype, device=device, merge=True, padding_side=padding_side)
    require_chat_template(tok, cfg.model, why)
    return model, tok, device


@dataclass
class Fit:
    """What ``fit`` hands back: the trainer after training and what was measured around it."""

    trainer: Any
    result: Any
    checkpoint: Path | None
    stopped_by_clock: bool
    step_seconds: list[float]
    train_seconds: float
    peak_memory_mb: float
    peak_cuda_mb: float | None
    trainable_parameters: int = 0  # counted before any merge
    after: Any = None


def fit(
    cfg: TrainerRunConfig,
    make_trainer: Callable[[list[Any]], Any],
    *,
    resume: bool,
    callbacks: list[Any] | None,
    log: Callable[[str], None],
    check: Callable[[Any], None] | None = None,
    after: Callable[[Any], Any] | None = None,
) -> Fit:
    """Build the trainer with the shared callbacks and train it.

    ``make_trainer(callbacks)`` builds the TRL trainer with the callbacks it is given (the clock,
    the step timer and the caller's ``callbacks``); ``check(trainer)`` runs before training (e.g.
    rows lost to ``max_length``); ``after(trainer)`` runs inside the memory tracking, after
    training (e.g. an evaluation), its result in ``Fit.after``. With ``resume`` training continues
    from ``last_checkpoint(cfg.output_dir)``, the wall-clock budget included."""
    from sqlcoach.runtime.memory import track_peak
    from sqlcoach.train.callbacks import clock_callback, read_clock, step_timer, warmup_start_callback

    log = main_log(log)
    ckpt = last_checkpoint(cfg.output_dir) if resume else None
    anneal = bool(getattr(cfg, "anneal_by_clock", False))
    if anneal and cfg.max_seconds is None:
        log(f"anneal_by_clock has no effect without max_seconds: the learning rate follows "
            f"lr_scheduler_type={cfg.lr_scheduler_type} over the steps")
        anneal = False
    warmup_start = float(getattr(cfg, "warmup_start", 0.0))
    clock = clock_callback(cfg.max_seconds, already=read_clock(ckpt), anneal=anneal,
                           warmup_ratio=cfg.warmup_ratio if anneal else 0.0, warmup_start=warmup_start)
    steps = step_timer()
    # the clock sets the rate itself when it anneals; otherwise the step scheduler's warmup is raised
    raise_warmup = warmup_start_callback(warmup_start) if warmup_start > 0 and not anneal else None
    trainer = make_trainer([clock, steps, *([raise_warmup] if raise_warmup else []), *(callbacks or [])])
    clock.bind(trainer)
    if raise_warmup is not None:
        raise_warmup.bind(trainer)
    if check is not None:
        check(trainer)
    say_resume(resume, ckpt, cfg.output_dir, log)
    t0 = time.monotonic()
    with track_peak() as peak:
        result = trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
        train_seconds = time.monotonic() - t0
        extra = after(trainer) if after is not None else None
    return Fit(trainer=trainer, result=result, checkpoint=ckpt, stopped_by_clock=clock.stopped_at is not None,
               step_seconds=list(steps.seconds), train_seconds=train_seconds, peak_memory_mb=peak.rss_mb,
               peak_cuda_mb=peak.cuda_mb, after=extra,
               trainable_parameters=int(sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)))


def check_rows_kept(trainer: Any, n: int, *, what: str, max_length: int, hint: str, log: Callable[[str], None]) -> int:
    """How many of the ``n`` rows the trainer kept after tokenising (TRL drops rows whose answer
    lies beyond ``max_length``); none kept is a ``ConfigError`` with ``hint``, some dropped a log line."""
    from sqlcoach.errors import ConfigError

    kept = len(trainer.train_dataset)
    if kept == 0:
        raise ConfigError(f"all {n} {what} were dropped: their answer lies beyond max_length={max_length} tokens ({hint})")
    if kept < n:
        log(f"{n - kept} of {n} {what} dropped: their answer lies beyond max_length={max_length}")
    return kept


def with_model_prompt(cfg: PromptRunConfig, log: Callable[[str], None]) -> tuple[PromptRunConfig, Any]:
    """``(cfg, recipe)``: the config's prompt settings resolved against the start model's
    ``sqlcoach_recipe.json`` (``null`` settings take the recorded value; an explicit one that
    differs is used and printed), and the ``PromptRecipe`` this run trains with."""
    import dataclasses

    from sqlcoach.prompts.recipe import PROMPT_KEYS, resolve_prompt

    rec = resolve_prompt(cfg.model, **{k: getattr(cfg, k) for k in PROMPT_KEYS}, log=log)
    if any(getattr(cfg, k) != getattr(rec, k) for k in PROMPT_KEYS):
        cfg = dataclasses.replace(cfg, **{k: getattr(rec, k) for k in PROMPT_KEYS})  # re-runs the config's rules
    return cfg, rec


def model_recipe(cfg: RunConfig, recipe_name: str, **lengths: Any) -> Any:
    """The ``PromptRecipe`` a run of ``recipe_name`` records in its final model: the config's
    prompt settings when it has them (SFT, GRPO, PPO), else the start model's (DPO, RM train on
    pairs whose prompts the start model's recipe built), plus the lengths it trained with."""
    from sqlcoach.prompts.recipe import PROMPT_KEYS, PromptRecipe, recipe_of

    start = recipe_of(cfg.model) or PromptRecipe(source="defaults (the start model had no sqlcoach_recipe.json)")
    mine = {k: getattr(cfg, k) for k in PROMPT_KEYS if getattr(cfg, k, None) is not None}
    return start.then(recipe_name, **mine, **{k: v for k, v in lengths.items() if v is not None})


def lora_over_adapter_start(cfg: Any) -> bool:
    """Whether the run adds a LoRA to a start that is itself a LoRA adapter folder (merged into its
    base when loaded: ``models.load.load_start``, ``load_policy``). Its ``final/`` must then be
    saved merged: an adapter file would name the start adapter's base and lose the start's weights."""
    from sqlcoach.models.load import is_adapter

    return cfg.method == "lora" and is_adapter(cfg.model)


def save_final(trainer: Any, tokenizer: Any, output_dir: str | Path, *, merge: bool = False, recipe: Any = None,
               model: Any = None) -> Path:
    """``output_dir/final``: the model (or LoRA adapter; with ``merge`` the merged model), the
    tokenizer and the prompt ``recipe`` (``sqlcoach_recipe.json``), loadable by
    ``sqlcoach.models.load_model``; ``log_history.json`` beside it. ``model`` (a plain, already
    merged model) is saved instead of the trainer's."""
    out = Path(output_dir)
    final = out / "final"
    if model is not None:
        if trainer.is_world_process_zero():
            model.save_pretrained(str(final))
    elif merge:
        if trainer.is_world_process_zero():
            trainer.model.merge_and_unload().save_pretrained(str(final))
    else:
        trainer.save_model(str(final))  # the Trainer saves once (rank 0), gathering sharded weights first
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(final))
        if recipe is not None:
            recipe.save(final)
        (out / "log_history.json").write_text(json.dumps(list(trainer.state.log_history), indent=1) + "\n")
    barrier()  # no rank returns (and, e.g., evaluates final/) before it is complete
    return final


def on_main(fn: Callable[[], Any]) -> Any:
    """``fn()`` on rank 0 (a plot, a report file), ``None`` on the other ranks."""
    return fn() if is_main() else None


@dataclass
class RunSummary:
    """One run's outcome; the same fields with the same meaning for every recipe (module docstring)."""

    recipe: str
    final_dir: str
    global_step: int
    max_steps: int
    seconds: float
    train_seconds: float
    median_step_seconds: float | None
    peak_memory_mb: float
    peak_cuda_mb: float | None
    train_loss: float | None
    rows: int
    skipped: int
    trainable_parameters: int
    device: str
    resumed_from: str | None
    stopped_by_clock: bool
    plot_png: str | None
    world_size: int = 1
    global_batch: int | None = None
    distributed_type: str = "NO"  # accelerate's: NO, MULTI_CPU, MULTI_GPU, FSDP, DEEPSPEED, ...
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        details = d.pop("details")
        return {**d, **details}

    @classmethod
    def of_fit(cls, recipe: str, fit_: Fit, *, final: Path, t0: float, rows: int, skipped: int, device: str,
               plot: Path | None, details: dict[str, Any] | None = None) -> RunSummary:
        """The summary of a Trainer-based run from its ``Fit`` (``t0``: when the call began)."""
        import statistics

        trainer = fit_.trainer
        loss = getattr(fit_.result, "training_loss", None)
        a = trainer.args
        world = int(getattr(a, "world_size", 1) or 1)
        return cls(
            recipe=recipe, final_dir=str(final), global_step=int(trainer.state.global_step),
            max_steps=int(trainer.state.max_steps), seconds=round(time.monotonic() - t0, 2),
            train_seconds=round(fit_.train_seconds, 2),
            median_step_seconds=round(statistics.median(fit_.step_seconds), 3) if fit_.step_seconds else None,
            peak_memory_mb=round(fit_.peak_memory_mb, 1),
            peak_cuda_mb=None if fit_.peak_cuda_mb is None else round(fit_.peak_cuda_mb, 1),
            train_loss=None if loss is None else float(loss), rows=rows, skipped=skipped,
            trainable_parameters=fit_.trainable_parameters,
            device=device, resumed_from=str(fit_.checkpoint) if fit_.checkpoint else None,
            stopped_by_clock=fit_.stopped_by_clock, plot_png=str(plot) if plot else None,
            world_size=world, global_batch=int(a.per_device_train_batch_size * a.gradient_accumulation_steps * world),
            distributed_type=_distributed_type(trainer),
            details=details or {},
        )


def _distributed_type(trainer: Any) -> str:
    acc = getattr(trainer, "accelerator", None)
    kind = getattr(getattr(acc, "state", None), "distributed_type", None)
    return str(getattr(kind, "value", kind or "NO"))


def write_summary(cfg: RunConfig, summary: RunSummary) -> dict[str, Any]:
    """Write ``output_dir/summary.json`` (recipe, config, summary; rank 0 only) and return the
    summary dict (on every rank)."""
    flat = summary.as_dict()
    if not is_main():
        return flat
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / SUMMARY_FILE).write_text(
        json.dumps({"recipe": summary.recipe, "config": config_to_dict(cfg), "summary": flat}, indent=2, default=str) + "\n"
    )
    return flat


def log_skipped(skipped: list[str], log: Callable[[str], None], limit: int = 10) -> None:
    """The first ``limit`` skip reasons, then a count of the rest."""
    for s in skipped[:limit]:
        log(f"skipped example {s}")
    if len(skipped) > limit:
        log(f"... and {len(skipped) - limit} more skipped examples")
