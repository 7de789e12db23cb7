"""Multi-turn GRPO end to end on a tiny model: `sqlcoach train grpo` with configs/grpo/demo-agent.yaml
for 2 steps (the pass-rate filter sampling trajectories, the sample log showing them), then
`predict` on the result runs as an agent by default (its recipe records the agent block) and
`--single-pass` answers in one pass."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")

from sqlcoach.cli import main  # noqa: E402

pytestmark = pytest.mark.integration
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "grpo" / "demo-agent.yaml"


def model_tokens(prompts=None, completions=(), completion_ids=None, **_):
    """The share of distinct tokens in the trajectory (in [0, 1]): variance for a random policy."""
    return [len(set(ids)) / max(1, len(ids)) for ids in completion_ids]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from sqlcoach.data.world import build_world

    root = tmp_path_factory.mktemp("grpo-agent")
    world = root / "world"
    build_world(world, seed=0, n_train=20, n_dev=4, progress=False)
    model = root / "model"
    assert main(["model", "init", str(model), "--size", "tiny", "--corpus", str(world), "--vocab-size", "600"]) == 0
    out = root / "grpo"
    from sqlcoach.config import GRPORunConfig, load_config
    from sqlcoach.train.grpo import run_grpo

    cfg = load_config(GRPORunConfig, CONFIG, {
        "model": str(model), "data_path": str(world), "output_dir": str(out), "max_steps": 2, "max_examples": 6,
        "num_generations": 2, "per_device_train_batch_size": 4, "pass_rate_k": 2, "pass_rate_max_prompts": 4,
        "drop_never": False, "drop_always": False, "reward_workers": 0, "max_completion_length": 160,
        "sample_every": 1, "num_samples": 2, "save_steps": 10, "disable_tqdm": True,
        "agent": {"max_turns": 2, "max_turn_tokens": 16, "observation_budget": 160, "per_observation": 60,
                  "instruction": False}})
    # an untrained model's answers all score 0: a reward with variance (distinct tokens) gives the groups a signal, so that the 2 steps change the weights
    run_grpo(cfg, extra_rewards=[model_tokens])
    return world, model, out


def test_two_steps_of_multi_turn_grpo(trained):
    _, model, out = trained
    summary = json.loads((out / "summary.json").read_text())["summary"]
    assert summary["global_step"] == 2
    agent = summary["agent"]
    # 2 steps x 4 trajectories, plus the pass-rate filter's 4 prompts x 2
    assert agent["trajectories"] == 16 and 1 <= agent["mean_turns"] <= 2
    assert agent["settings"]["max_turns"] == 2 and agent["settings"]["max_total_tokens"] == 160
    assert summary["curation"]["pass_rate"]["in"] == 4
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert rows and all({"turns", "queries", "finish"} <= set(r) for r in rows)
    assert all(r["finish"] in ("solution", "turn_limit", "observation_budget", "length") for r in rows)
    recipe = json.loads((out / "final" / "sqlcoach_recipe.json").read_text())
    assert recipe["agent"]["max_turns"] == 2 and recipe["agent"]["instruction"] is False and recipe["source"] == "grpo"
    from safetensors.torch import load_file

    before, after = load_file(str(model / "model.safetensors")), load_file(str(out / "final" / "model.safetensors"))
    assert any(not (before[k] == after[k]).all() for k in before)  # the policy moved


def test_predict_runs_the_trained_model_as_an_agent(trained, tmp_path, capsys):
    world, _, out = trained
    common = ["--model", str(out / "final"), "--data", str(world), "--split", "dev", "--limit", "2",
              "--max-new-tokens", "8", "--workers", "0", "--device", "cpu"]
    assert main(["predict", *common, "--out", str(tmp_path / "agent.sql")]) == 0
    printed = capsys.readouterr().out
    assert "was trained as an agent" in printed and "predicting as an agent" in printed
    assert "agent: 2 trajectories" in printed and "of 2" in printed  # the recorded max_turns
    recs = [json.loads(line) for line in (tmp_path / "agent.jsonl").read_text().splitlines()]
    assert all(r["agent"] is True and 1 <= len(r["turns"]) <= 2 for r in recs)

    assert main(["predict", *common, "--single-pass", "--out", str(tmp_path / "one.sql")]) == 0
    printed = capsys.readouterr().out
    assert "answering in one pass as asked" in printed and "agent:" not in printed.replace("as an agent", "")
    recs = [json.loads(line) for line in (tmp_path / "one.jsonl").read_text().splitlines()]
    assert all("turns" not in r for r in recs)
