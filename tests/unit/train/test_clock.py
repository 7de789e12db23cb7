"""The wall-clock callback keeps the progress bar's total at what the clock allows."""

from __future__ import annotations

import time
from types import SimpleNamespace

from tqdm import tqdm
from transformers import TrainerControl, TrainerState
from transformers.trainer_callback import ProgressCallback

from sqlcoach.train.callbacks import clock_callback


def test_progress_bar_total_follows_the_clock_not_max_steps():
    clock = clock_callback(0.3)
    progress = ProgressCallback()
    progress.training_bar = tqdm(total=5000, disable=True)
    other = object()
    trainer = SimpleNamespace(optimizer=None, callback_handler=SimpleNamespace(callbacks=[progress, other, clock]))
    clock.bind(trainer)
    assert trainer.callback_handler.callbacks[0] is clock  # runs before the console printer
    state, control = TrainerState(max_steps=5000), TrainerControl()
    clock.on_train_begin(None, state, control)
    for step in range(1, 1000):
        time.sleep(0.01)
        state.global_step = step
        clock.on_step_end(None, state, control)
        if control.should_training_stop:
            break
        if step == 5:  # 0.05 s for 5 steps, ~0.25 s left: about 25 more, far below 5000
            assert 10 < progress.training_bar.total < 100
    assert control.should_training_stop
    assert progress.training_bar.total == state.global_step  # the bar ends full


def test_logged_learning_rate_is_the_one_used():
    clock = clock_callback(10.0, anneal=True)
    clock.current_lr = 1e-4
    state = TrainerState()
    state.log_history = [{"loss": 1.0, "learning_rate": 2e-3}]
    logs = {"loss": 1.0, "learning_rate": 2e-3}
    clock.on_log(None, state, TrainerControl(), logs=logs)
    assert state.log_history[-1]["learning_rate"] == logs["learning_rate"] == 1e-4


def test_step_timer_records_wall_and_thread_cpu_seconds_per_step():
    import time

    from sqlcoach.train.callbacks import step_timer

    timer = step_timer()
    for work in (False, True):
        timer.on_step_begin(None, None, "control")
        if work:
            t = time.thread_time()
            while time.thread_time() - t < 0.05:  # busy: CPU time
                pass
        else:
            time.sleep(0.05)  # idle: wall time only
        timer.on_step_end(None, None, "control")
    assert len(timer.seconds) == len(timer.cpu_seconds) == 2
    assert timer.seconds[0] >= 0.05 and timer.cpu_seconds[0] < 0.03  # a sleeping step uses no CPU
    assert timer.cpu_seconds[1] >= 0.05
