"""The demo trains by steps, with one schedule shared with the comparison's start, and reports its
EX as a real table with a chart and the thread count it ran with."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sqlcoach.pipelines import demo


def test_the_demo_trains_by_steps_not_by_the_clock(tmp_path):
    cfg = demo.demo_sft_config(tmp_path)
    assert cfg.max_seconds is None and not cfg.anneal_by_clock  # nothing depends on the machine's speed
    assert cfg.max_steps == 1600 and cfg.lr_scheduler_type == "cosine" and cfg.warmup_ratio > 0
    assert cfg.seed == 0


def test_the_comparisons_start_is_the_demos_model(tmp_path, monkeypatch):
    """``start_schedule: cosine`` builds the start with the demo's recipe unchanged but for its
    steps (the same schedule, batch, rate, prompt) and the demo's tokenizer vocabulary."""
    from sqlcoach.pipelines.compare import jobs

    seen = {}

    def fake_start(world, base, cfg, *, size, seed, n_train=None, n_dev=None, log=print, **kw):
        seen.update(cfg=cfg, kw=kw)
        return {"final_dir": str(base / "sft" / "final"), "global_step": cfg.max_steps, "seconds": 0.0}

    original = demo.build_tiny_start
    monkeypatch.setattr(demo, "build_tiny_start", fake_start)
    job = {"world": str(tmp_path / "world"), "start_dir": str(tmp_path / "start"), "start_sft_steps": 1600,
           "seed": 0, "start_size": "tiny", "start_schedule": "cosine", "template": "anonymized",
           "schema_style": "compact", "schema_sample_values": 0}
    jobs._child_start(job)
    start = seen["cfg"]
    own = demo.demo_sft_config(tmp_path / "start", overrides={"data_path": str(tmp_path / "world"), "disable_tqdm": True})
    for key in ("max_steps", "lr_scheduler_type", "warmup_ratio", "learning_rate", "per_device_train_batch_size",
                "gradient_accumulation_steps", "max_seconds", "anneal_by_clock", "seed", "max_length", "weight_decay"):
        assert getattr(start, key) == getattr(own, key), key
    from sqlcoach.prompts.recipe import prompt_settings

    assert prompt_settings(start) == prompt_settings(own)  # the same prompts (None = the default, as rows are built)
    assert "vocab_size" not in seen["kw"]  # build_tiny_start's default: the demo's vocabulary
    import inspect

    assert inspect.signature(original).parameters["vocab_size"].default == demo.DEMO_VOCAB_SIZE
    assert demo.DemoOptions().vocab_size == demo.DEMO_VOCAB_SIZE
    # the half-trained start keeps its constant rate
    jobs._child_start({**job, "start_schedule": "constant", "start_sft_steps": 400})
    assert seen["cfg"].lr_scheduler_type == "constant" and seen["cfg"].warmup_ratio == 0.0


def _stage(ex: float, count: int, n: int = 1) -> dict:
    block = {"ex": ex, "em": ex / 2, "count": count}
    return {"summary": {"all": block, "by_hardness": {"easy": block, "medium": block}}, "n": n, "count": count,
            "samples": [], "throughput": {}}


def test_the_report_page_has_an_ex_table_a_chart_and_the_threads(tmp_path):
    report = {
        "total_seconds": 500.0, "cpu_count": 2, "threads": 2, "omp_num_threads": None,
        "model": {"parameters": 1116288, "vocab_size": 1024},
        "sft": {"global_step": 1600, "train_loss": 0.3, "seconds": 470.0},
        "sft_config": {"lr_scheduler_type": "cosine", "seed": 0},
        "stages": {"untrained": _stage(0.0, 50), "sft_greedy": _stage(0.853, 600), "sft_self_consistency": _stage(0.9, 100, 8)},
        "timings": {"sft": 470.0}, "memory": {}, "world": {},
    }
    page = demo._html(report, tmp_path)
    table = re.search(r"<table class='ex'>.*?</table>", page, re.S).group(0)
    assert table.count("<tr>") == 2 + 3  # two header rows, one row per stage
    assert "<td class='l'>sft_greedy</td><td>1</td><td>600</td>" in table and "<td>0.853</td>" in table
    assert "<pre>stage" not in page  # no preformatted text table
    assert re.search(r"<img alt='EX by hardness[^']*' src='data:image/png;base64,", page)
    assert "2 torch thread(s) (OMP_NUM_THREADS unset: one per core)" in page
    assert "OMP_NUM_THREADS=None" not in page
    report["omp_num_threads"], report["threads"] = "1", 1
    assert "1 torch thread(s) (OMP_NUM_THREADS=1)" in demo._html(report, tmp_path)


def test_expected_time_line():
    line = demo.expected_time_line(21, 0.3, 1600, elapsed=30.0, predict=40.0)
    assert "0.300 s per step (median of steps 2-21)" in line
    assert "SFT ~8.0 min for 1600 steps + prediction ~0.7 min" in line
    # 30 s so far + 1579 steps left x 0.3 s + 40 s of prediction = 543.7 s
    assert "~9.1 min in all" in line
    assert "prediction (not estimated)" in demo.expected_time_line(21, 0.3, 1600, elapsed=0.0, predict=None)
    # a recipe with a clock (the pretrained model's): the clock, not max_steps, ends the training
    clocked = demo.expected_time_line(21, 2.0, 5000, elapsed=60.0, predict=None, clock_left=280.0)
    assert "SFT stopped by its clock in ~4.7 min (~161 steps)" in clocked and "~5.7 min in all" in clocked


def test_pace_callback_reports_once_after_its_steps():
    pytest.importorskip("transformers")
    from types import SimpleNamespace

    from sqlcoach.train.callbacks import pace_callback

    calls = []
    cb = pace_callback(3, lambda step, sec, total: calls.append((step, sec, total)))
    state = SimpleNamespace(global_step=0, max_steps=10)
    for i in range(8):
        cb.on_step_begin(None, state, None)
        state.global_step = i + 1
        cb.on_step_end(None, state, None)
    assert len(calls) == 1 and calls[0][0] == 4 and calls[0][2] == 10 and calls[0][1] >= 0


def test_demo_yaml_is_the_one_schedule():
    """The schedule lives in configs/sft/demo.yaml only: the comparison's start code sets no
    scheduler of its own for the cosine start."""
    src = (Path(demo.__file__).resolve().parent / "compare" / "jobs.py").read_text()
    body = src[src.index("def _child_start"):src.index("def child_main")]
    assert "cosine" not in body.split('"""', 2)[2]  # only the docstring names it
