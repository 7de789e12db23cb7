"""`sqlcoach compare` end to end on a tiny model: two runs with the same seed give the same EX
(and the same predictions and loss curve); a third call on a finished folder trains nothing.

The start checkpoint is a tiny random Qwen2 built here on a small world (configs/compare/tiny.yaml
with start/world pointed at it, SFT only, 2 steps), so that the test measures the comparison's
machinery: child processes, budget, evaluation, report files, resume.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")

from sqlcoach.pipelines.compare import load_compare_config, run_compare  # noqa: E402

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    from sqlcoach.data.world import build_world
    from sqlcoach.models.tiny import init_tiny_model, world_corpus

    base = tmp_path_factory.mktemp("compare-start")
    build_world(base / "world", seed=0, n_train=60, n_dev=20, progress=False)
    init_tiny_model(base / "model", "tiny", world_corpus(base / "world"), seed=0)
    return base


def _run(start: Path, out: Path) -> dict:
    cfg = load_compare_config(ROOT / "configs" / "compare" / "tiny.yaml",
                              {"start": str(start / "model"), "world": str(start / "world"), "eval_limit": "6"})
    cfg.methods = [m for m in cfg.methods if m.name == "sft"]
    cwd = os.getcwd()
    os.chdir(ROOT)  # recipe config paths in the YAML are relative to the repository
    try:
        return run_compare(cfg, out, log=lambda m: None).as_dict()  # the shape report.json has
    finally:
        os.chdir(cwd)


def test_same_seed_same_ex_and_resume(start, tmp_path):
    a = _run(start, tmp_path / "a")
    b = _run(start, tmp_path / "b")
    ra, rb = a["methods"][0], b["methods"][0]
    assert ra["status"] == rb["status"] == "ok", (ra.get("status"), ra.get("train", {}).get("log"))
    assert ra["train"]["global_step"] == 2 and ra["eval"]["questions"] == 6
    # identical EX figures (overall and per hardness), predictions and loss curve
    assert ra["eval"]["summary"]["all"] == rb["eval"]["summary"]["all"]
    assert ra["eval"]["summary"]["by_hardness"] == rb["eval"]["summary"]["by_hardness"]
    sa, sb = ra["eval"]["seen"]["summary"], rb["eval"]["seen"]["summary"]  # ("seconds" is scoring time: not compared)
    assert ra["eval"]["seen"]["questions"] == 4
    assert (sa["all"], sa["by_hardness"], sa["executes"]) == (sb["all"], sb["by_hardness"], sb["executes"])
    assert ra["eval"]["summary"]["executes"] == rb["eval"]["summary"]["executes"]
    assert (tmp_path / "a/methods/sft/pred.sql").read_text() == (tmp_path / "b/methods/sft/pred.sql").read_text()
    assert ra["train"]["loss_curve"] == rb["train"]["loss_curve"] and len(ra["train"]["loss_curve"]) == 2
    # training changed the model: the final weights differ from the start's
    from safetensors.torch import load_file

    before = load_file(str(start / "model" / "model.safetensors"))
    after = load_file(str(Path(ra["train"]["final_dir"]) / "model.safetensors"))
    assert any(not (before[k] == after[k]).all() for k in before)
    assert ra["train"]["peak_process_rss_mb"] > 100 and ra["train"]["median_step_seconds"] > 0
    # the report files, and resume: a finished folder is not trained or evaluated again
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert report["methods"][0]["eval"]["summary"]["all"] == ra["eval"]["summary"]["all"]
    assert "| sft | ok | 2 |" in (tmp_path / "a" / "report.md").read_text()
    mtime = (tmp_path / "a/methods/sft/result.json").stat().st_mtime_ns
    c = _run(start, tmp_path / "a")
    assert c["methods"][0]["eval"]["summary"] == ra["eval"]["summary"]
    assert (tmp_path / "a/methods/sft/result.json").stat().st_mtime_ns == mtime
    assert c["seconds_this_run"] < 10
