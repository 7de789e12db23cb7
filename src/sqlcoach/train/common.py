"""Shared pieces of the training recipes: typed config loading, overrides, wall-clock stop.

``load_config(cls, path, overrides)`` reads a YAML file into a dataclass: unknown keys are errors
that list the valid keys, ``key=value`` overrides are coerced to the field's type, and the
dataclass's ``__post_init__`` checks the rules (each message says which rule a value breaks).
"""

from __future__ import annotations

import dataclasses
import time
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from sqlcoach.errors import ConfigError

T = TypeVar("T")

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}
_NONE = {"none", "null", "~", ""}


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert ``value`` (from YAML or a ``key=value`` string) to the annotated type ``tp``.

    Supports bool, int, float, str, ``X | None``, ``list[X]``/``tuple[X, ...]`` (from a YAML list or a
    comma-separated string) and ``Literal[...]``. Raises ``ConfigError`` naming the key."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.strip().lower() in _NONE and type(None) in args):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: cannot use {value!r}")
    if origin is typing.Literal:
        for arg in args:
            if value == arg or (isinstance(value, str) and str(arg) == value):
                return arg
        raise ConfigError(f"{key} must be one of {list(args)}, got {value!r}")
    if origin in (list, tuple):
        item_tp = args[0] if args else Any
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        items = [coerce(v, item_tp, key) for v in value]
        return tuple(items) if origin is tuple else items
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        try:
            f = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be an integer, got {value!r}") from None
        if f != int(f):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return int(f)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{key}: unsupported config type {tp!r}")


def parse_overrides(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["lr=1e-3", "lora_r=8"]`` -> ``{"lr": "1e-3", "lora_r": "8"}``; a pair without ``=`` is an error."""
    out: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"override {pair!r} is not key=value")
        k, v = pair.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def build_config(cls: type[T], values: dict[str, Any], *, source: str = "config") -> T:
    """Build the dataclass ``cls`` from ``values``; unknown keys are an error listing the valid ones."""
    ftypes = _field_types(cls)
    unknown = sorted(set(values) - set(ftypes))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {unknown}; valid keys are: {', '.join(sorted(ftypes))}"
        )
    kwargs = {k: coerce(v, ftypes[k], k) for k, v in values.items()}
    return cls(**kwargs)


def load_config(cls: type[T], path: str | Path | None, overrides: dict[str, Any] | None = None) -> T:
    """Read YAML ``path`` (may be ``None``: defaults only), apply ``overrides``, validate."""
    import yaml

    values: dict[str, Any] = {}
    source = "config"
    if path is not None:
        p = Path(path)
        source = str(p)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            loaded = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the top level must be a mapping of key: value")
        values.update(loaded)
    values.update(overrides or {})
    return build_config(cls, values, source=source)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """JSON-ready dict of a config dataclass (tuples become lists)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}


CLOCK_FILE = "sqlcoach_clock.json"


def read_clock(checkpoint: str | Path | None) -> float:
    """Training seconds already spent before ``checkpoint`` was saved (0 when unknown)."""
    if checkpoint is None:
        return 0.0
    import json

    p = Path(checkpoint) / CLOCK_FILE
    try:
        return float(json.loads(p.read_text())["train_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def clock_callback(
    seconds: float | None,
    *,
    already: float = 0.0,
    anneal: bool = False,
    warmup_ratio: float = 0.0,
    min_lr_ratio: float = 0.0,
) -> Any:
    """A ``TrainerCallback`` that budgets training by wall clock.

    * Stops at a step boundary once ``already`` + elapsed seconds reach ``seconds`` (and asks for
      a checkpoint, so ``--resume`` can continue).
    * With ``anneal=True`` it also sets the learning rate from the *fraction of the time budget*
      spent (linear warmup over ``warmup_ratio`` of it, then cosine down to ``min_lr_ratio``),
      overriding the step-based scheduler: on a machine whose speed is unknown (shared CPUs) a
      run cut by the clock still ends at a low learning rate instead of mid-schedule.
    * Writes the seconds spent into every checkpoint (``sqlcoach_clock.json``), so that a resumed
      run continues the same budget and schedule (``already`` = ``read_clock(checkpoint)``).
    * After ``bind(trainer)``, keeps the progress bar's total at the number of steps the clock
      will allow (from the pace so far), so the bar and its ETA tell the truth instead of counting
      towards a ``max_steps`` ceiling the clock never reaches.
    """
    import json
    import math

    from transformers import TrainerCallback

    class _Clock(TrainerCallback):
        def __init__(self) -> None:
            self.start = time.monotonic()
            self.stopped_at: int | None = None
            self.base_lrs: list[float] | None = None
            # transformers 5 hands callbacks the optimizer given to Trainer(...) (None when the
            # Trainer builds its own); the recipe sets this to ``lambda: trainer.optimizer``.
            self.get_optimizer: Any = lambda: None
            self.current_lr: float | None = None
            self.progress: Any = None
            self.first_step = 0
            self.t_begin = self.start

        def bind(self, trainer: Any) -> None:
            """Read the optimizer and the progress bar from ``trainer`` (call after building it)."""
            from transformers.trainer_callback import ProgressCallback

            self.get_optimizer = lambda: trainer.optimizer
            # First in line, so that the console printer's on_log sees the corrected rate.
            handler = trainer.callback_handler
            if self in handler.callbacks:
                handler.callbacks.remove(self)
                handler.callbacks.insert(0, self)
            self.progress = next(
                (c for c in trainer.callback_handler.callbacks if isinstance(c, ProgressCallback)), None
            )

        def spent(self) -> float:
            return already + time.monotonic() - self.start

        def on_step_begin(self, args: Any, state: Any, control: Any, optimizer: Any = None, **kw: Any) -> Any:
            optimizer = optimizer or self.get_optimizer()
            if not anneal or seconds is None or optimizer is None:
                return control
            if self.base_lrs is None:
                self.base_lrs = [args.learning_rate for _ in optimizer.param_groups]
            frac = min(1.0, self.spent() / seconds)
            if warmup_ratio > 0 and frac < warmup_ratio:
                factor = max(frac / warmup_ratio, 0.01)
            else:
                prog = (frac - warmup_ratio) / max(1e-9, 1.0 - warmup_ratio)
                factor = min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * prog))
            for g, base in zip(optimizer.param_groups, self.base_lrs):
                g["lr"] = base * factor
            self.current_lr = self.base_lrs[0] * factor
            return control

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
            self.t_begin = time.monotonic()  # the pace excludes setup (tokenising, loading)
            self.first_step = state.global_step  # > 0 when resumed
            return control

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
            if seconds is not None and self.spent() >= seconds:
                control.should_training_stop = True
                control.should_save = True
                self.stopped_at = state.global_step
            self._retotal(state)
            return control

        def _retotal(self, state: Any) -> None:
            bar = getattr(self.progress, "training_bar", None)
            done = state.global_step - self.first_step
            if seconds is None or bar is None or done <= 0:
                return
            if self.stopped_at is not None:
                total = state.global_step
            else:
                pace = (time.monotonic() - self.t_begin) / done
                total = state.global_step + int(max(0.0, seconds - self.spent()) / max(pace, 1e-9)) + 1
            total = min(total, state.max_steps) if state.max_steps and state.max_steps > 0 else total
            if total != bar.total:
                bar.total = total
                bar.refresh()

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> Any:
            # Trainer logs the step scheduler's value (which it re-applies after each optimizer
            # step, before this override runs again); record the rate actually used.
            if self.current_lr is not None and state.log_history and "loss" in state.log_history[-1]:
                state.log_history[-1]["learning_rate"] = self.current_lr
                if isinstance(logs, dict) and "learning_rate" in logs:
                    logs["learning_rate"] = self.current_lr
            return control

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if ckpt.is_dir():
                (ckpt / CLOCK_FILE).write_text(json.dumps({"train_seconds": round(self.spent(), 3)}) + "\n")
            return control

    return _Clock()


# ----------------------------------------------------------------------------- shared config rules
# The rules every training recipe's config shares. Each recipe's ``__post_init__`` calls them next
# to its own rules, so that one rule has one wording everywhere.


def check_optimizer(cfg: Any) -> None:
    """learning_rate > 0; warmup_ratio in [0, 1) (when the config has one); batch sizes >= 1."""
    if cfg.learning_rate <= 0:
        raise ConfigError(f"learning_rate must be > 0 (got {cfg.learning_rate}): a zero rate trains nothing")
    warmup = getattr(cfg, "warmup_ratio", 0.0)
    if not 0 <= warmup < 1:
        raise ConfigError(f"warmup_ratio must be in [0, 1): it is a fraction of the total steps (got {warmup})")
    if cfg.per_device_train_batch_size < 1 or cfg.gradient_accumulation_steps < 1:
        raise ConfigError("per_device_train_batch_size and gradient_accumulation_steps must be >= 1")


def check_lora(cfg: Any) -> None:
    """For ``method`` lora/qlora: rank and alpha >= 1, dropout in [0, 1), some target modules."""
    if cfg.method not in ("lora", "qlora"):
        return
    if cfg.lora_r < 1:
        raise ConfigError(
            f"lora_r must be >= 1 for method={cfg.method} (got {cfg.lora_r}): "
            "lora_r and lora_alpha set the adapter's rank and scale"
        )
    if cfg.lora_alpha < 1:
        raise ConfigError(
            f"lora_alpha must be >= 1 for method={cfg.method} (got {cfg.lora_alpha}): "
            "lora_r and lora_alpha set the adapter's rank and scale"
        )
    if not 0 <= cfg.lora_dropout < 1:
        raise ConfigError(f"lora_dropout must be in [0, 1) (got {cfg.lora_dropout})")
    if not cfg.lora_target_modules:
        raise ConfigError("lora_target_modules must name at least one module (e.g. q_proj, v_proj)")


def check_bookkeeping(cfg: Any) -> None:
    """float16 not on CPU; logging/save intervals >= 1; a checkpoint kept for --resume; clock > 0."""
    if cfg.dtype == "float16" and cfg.use_cpu and getattr(cfg, "method", "") != "qlora":
        raise ConfigError("dtype=float16 is not supported for training on CPU; use float32 or bfloat16")
    if cfg.logging_steps < 1 or cfg.save_steps < 1:
        raise ConfigError("logging_steps and save_steps must be >= 1")
    if cfg.save_total_limit is not None and cfg.save_total_limit < 1:
        raise ConfigError(
            "save_total_limit must be >= 1 or null (keep all): 0 would delete the checkpoint needed by --resume"
        )
    if cfg.max_seconds is not None and cfg.max_seconds <= 0:
        raise ConfigError("max_seconds must be > 0 or null")


def trainer_kwargs(cfg: Any, *, bf16: bool, fp16: bool) -> dict[str, Any]:
    """The ``transformers.TrainingArguments`` fields every TRL-based recipe sets the same way.

    Each recipe adds its own (``num_train_epochs``, ``max_length``, generation settings, ...).
    """
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
        activation_checkpointing=cfg.activation_checkpointing,
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
    )


def lora_config(cfg: Any, task_type: str = "CAUSAL_LM", modules_to_save: list[str] | None = None) -> Any:
    """The peft ``LoraConfig`` every recipe builds from its config's lora_* fields (bias off)."""
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.lora_target_modules), bias="none", task_type=task_type,
        modules_to_save=modules_to_save,
    )
