"""The ``TrainerCallback``s every Trainer-based recipe shares: the wall-clock budget (``clock_callback``,
also written into checkpoints so ``--resume`` continues the budget) and the step timer
(``step_timer``). PPO runs its own loop and times its steps there."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback


class StepTimerCallback(TrainerCallback):
    """Each optimizer step's wall-clock seconds, in ``.seconds`` (in order), and the CPU seconds
    the training thread spent in it, in ``.cpu_seconds``: on a shared machine the wall clock
    also measures the other tenants, the thread's CPU time much less so."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.cpu_seconds: list[float] = []
        self._t: float | None = None
        self._cpu: float = 0.0

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
        self._t = time.perf_counter()
        self._cpu = time.thread_time()
        return control

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
        if self._t is not None:
            self.seconds.append(time.perf_counter() - self._t)
            self.cpu_seconds.append(time.thread_time() - self._cpu)
            self._t = None
        return control


def step_timer() -> StepTimerCallback:
    return StepTimerCallback()


class PaceCallback(StepTimerCallback):
    """Times the first optimizer steps and reports the pace once (``pace_callback`` says how)."""

    def __init__(self, after_steps: int, report: Any) -> None:
        super().__init__()
        self.after_steps, self.report = after_steps, report
        self.done = False

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
        if self.done:
            return control
        super().on_step_end(args, state, control, **kw)
        if len(self.seconds) >= self.after_steps + 1:
            import statistics

            self.done = True
            # the first step pays for allocations and lazy initialisation: not the pace
            self.report(state.global_step, float(statistics.median(self.seconds[1:])), state.max_steps)
        return control


def pace_callback(after_steps: int, report: Any) -> PaceCallback:
    """A ``TrainerCallback`` that times the first ``after_steps`` + 1 optimizer steps and then calls
    ``report(global_step, median_step_seconds, max_steps)`` once (the first step is left out of the
    median: it pays for allocation and lazy initialisation). The demo prints its expected time
    from it: a short measured warm-up inside the real run, so nothing is trained twice."""
    return PaceCallback(max(1, after_steps), report)


CLOCK_FILE = "sqlcoach_clock.json"


def read_clock(checkpoint: str | Path | None) -> float:
    """Training seconds already spent before ``checkpoint`` was saved (0 when unknown)."""
    if checkpoint is None:
        return 0.0
    p = Path(checkpoint) / CLOCK_FILE
    try:
        return float(json.loads(p.read_text())["train_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


class ClockCallback(TrainerCallback):
    """The wall-clock budget (``clock_callback`` builds it; its docstring says what it does)."""

    def __init__(self, seconds: float | None, already: float, anneal: bool, warmup_ratio: float, min_lr_ratio: float,
                 warmup_start: float = 0.0) -> None:
        self.seconds, self.already, self.anneal = seconds, already, anneal
        self.warmup_ratio, self.min_lr_ratio, self.warmup_start = warmup_ratio, min_lr_ratio, warmup_start
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
        """Training seconds so far: rank 0's clock on every rank under torchrun / accelerate, so
        that all ranks anneal to the same learning rate and stop at the same step (a rank that
        stopped alone would leave the others waiting in their next gradient all-reduce)."""
        from sqlcoach.runtime.dist import shared_value

        return float(shared_value(self.already + time.monotonic() - self.start))

    def on_step_begin(self, args: Any, state: Any, control: Any, optimizer: Any = None, **kw: Any) -> Any:
        optimizer = optimizer or self.get_optimizer()
        if not self.anneal or self.seconds is None or optimizer is None:
            return control
        if self.base_lrs is None:
            self.base_lrs = [args.learning_rate for _ in optimizer.param_groups]
        frac = min(1.0, self.spent() / self.seconds)
        if self.warmup_ratio > 0 and frac < self.warmup_ratio:
            factor = max(self.warmup_start + (1 - self.warmup_start) * frac / self.warmup_ratio, 0.01)
        else:
            prog = (frac - self.warmup_ratio) / max(1e-9, 1.0 - self.warmup_ratio)
            factor = self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * prog))
        for g, base in zip(optimizer.param_groups, self.base_lrs):
            g["lr"] = base * factor
        self.current_lr = self.base_lrs[0] * factor
        return control

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
        self.t_begin = time.monotonic()  # the pace excludes setup (tokenising, loading)
        self.first_step = state.global_step  # > 0 when resumed
        return control

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
        if self.seconds is not None and self.spent() >= self.seconds:  # the same verdict on every rank
            control.should_training_stop = True
            control.should_save = True
            self.stopped_at = state.global_step
        self._retotal(state)
        return control

    def _retotal(self, state: Any) -> None:
        bar = getattr(self.progress, "training_bar", None)
        done = state.global_step - self.first_step
        if self.seconds is None or bar is None or done <= 0:
            return
        if self.stopped_at is not None:
            total = state.global_step
        else:
            pace = (time.monotonic() - self.t_begin) / done
            local = self.already + time.monotonic() - self.start  # rank 0 alone has a bar: no collective here
            total = state.global_step + int(max(0.0, self.seconds - local) / max(pace, 1e-9)) + 1
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
        spent = self.spent()  # a collective under several ranks: every rank calls it
        if ckpt.is_dir() and state.is_world_process_zero:
            (ckpt / CLOCK_FILE).write_text(json.dumps({"train_seconds": round(spent, 3)}) + "\n")
        return control


def clock_callback(
    seconds: float | None,
    *,
    already: float = 0.0,
    anneal: bool = False,
    warmup_ratio: float = 0.0,
    min_lr_ratio: float = 0.0,
    warmup_start: float = 0.0,
) -> ClockCallback:
    """A ``TrainerCallback`` that budgets training by wall clock.

    * Stops at a step boundary once ``already`` + elapsed seconds reach ``seconds`` (and asks for
      a checkpoint, so ``--resume`` can continue).
    * With ``anneal=True`` it also sets the learning rate from the *fraction of the time budget*
      spent (linear warmup over ``warmup_ratio`` of it from ``warmup_start`` of the peak, then
      cosine down to ``min_lr_ratio``),
      overriding the step-based scheduler: on a machine whose speed is unknown (shared CPUs) a
      run cut by the clock still ends at a low learning rate instead of mid-schedule.
    * Writes the seconds spent into every checkpoint (``sqlcoach_clock.json``), so that a resumed
      run continues the same budget and schedule (``already`` = ``read_clock(checkpoint)``).
    * After ``bind(trainer)``, keeps the progress bar's total at the number of steps the clock
      will allow (from the pace so far), so the bar and its ETA tell the truth instead of counting
      towards a ``max_steps`` ceiling the clock never reaches.
    """
    return ClockCallback(seconds, already, anneal, warmup_ratio, min_lr_ratio, warmup_start)


class WarmupStartCallback(TrainerCallback):
    """Raises the step scheduler's warmup to start at a fraction of the peak (``warmup_start_callback``)."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.get_scheduler: Any = lambda: None
        self.wrapped: Any = None

    def bind(self, trainer: Any) -> None:
        self.get_scheduler = lambda: trainer.lr_scheduler

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
        sched = self.get_scheduler()
        if sched is None or sched is self.wrapped:
            return control
        lambdas = getattr(sched, "lr_lambdas", None)
        if lambdas is None:  # not a LambdaLR (a custom scheduler): leave it as it is, and say so once
            import warnings

            warnings.warn(f"warmup_start={self.start:g} needs a LambdaLR scheduler (transformers' own); "
                          f"{type(sched).__name__} is left unchanged", stacklevel=1)
            self.wrapped = sched
            return control
        warm = args.get_warmup_steps(state.max_steps)
        if warm <= 0:
            self.wrapped = sched
            return control
        start = self.start

        # A plain function, not a callable object: LambdaLR's state_dict stores None for functions
        # (a checkpoint then holds nothing that a weights-only load would refuse); a resumed run
        # wraps the freshly built scheduler again here.
        def raised(inner: Any) -> Any:
            def factor(step: int) -> float:
                f = inner(step)
                return start + (1 - start) * f if step < warm else f
            return factor

        sched.lr_lambdas = [raised(fn) for fn in lambdas]
        step = sched.last_epoch
        lrs = [base * fn(step) for base, fn in zip(sched.base_lrs, sched.lr_lambdas)]
        for group, lr in zip(sched.optimizer.param_groups, lrs):
            group["lr"] = lr
        sched._last_lr = lrs
        self.wrapped = sched
        return control


def warmup_start_callback(start: float) -> WarmupStartCallback:
    """A ``TrainerCallback`` whose warmup starts at ``start`` times the peak learning rate instead
    of 0: during the scheduler's warmup steps the factor ``f`` (``step / warmup_steps`` for
    transformers' linear, cosine and constant-with-warmup schedulers) becomes ``start + (1 - start) * f``;
    after the warmup the schedule is unchanged. It wraps the scheduler the Trainer built, at the
    start of training (after a checkpoint's scheduler state is loaded, so a resumed run continues
    the same schedule); call ``bind(trainer)`` first.

    Why: the demo's 1600-step cosine with a warmup from 0 scored EX 0.688 on its 600 unseen-database
    dev questions; the same schedule with the warmup starting at 14% of the peak scored 0.940
    (docs/training.md, "What the schedule does")."""
    return WarmupStartCallback(start)
