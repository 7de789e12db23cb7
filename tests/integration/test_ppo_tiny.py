"""PPO on a tiny model built in the test, with the real execution reward on a generated SQLite
database: 2 PPO steps change the weights (LoRA: only the adapter and value head; full: the model),
and --resume continues the step count from the last checkpoint."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("accelerate")

from sqlcoach.models.tiny import TinySize, init_tiny_model  # noqa: E402
from sqlcoach.config import build_config  # noqa: E402
from sqlcoach.train.ppo import STATE_FILE, run_ppo
from sqlcoach.train.run import last_checkpoint  # noqa: E402
from sqlcoach.config import PPORunConfig  # noqa: E402

pytestmark = pytest.mark.integration
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY = TinySize(vocab_size=400, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("ppo-world")
    db = root / "shop.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE item (item_id INTEGER PRIMARY KEY, name TEXT, price REAL)")
    con.executemany("INSERT INTO item VALUES (?, ?, ?)", [(i, f"thing{i}", float(i * 3)) for i in range(1, 9)])
    con.commit()
    con.close()
    rows = []
    for i in range(8):
        q = f"Names of items with price above {i}?"
        rows.append({
            "prompt": [{"role": "user", "content": f"Schema: item(item_id, name, price)\nQuestion: {q}"}],
            "id": str(i), "db_id": "shop", "db_path": str(db), "question": q,
            "gold_sql": f"SELECT name FROM item WHERE price > {i}", "hardness": "easy",
            "format_template": "sql_terminal",
        })
    corpus = [r["prompt"][0]["content"] + " " + r["gold_sql"] for r in rows] * 10
    model = root / "model"
    init_tiny_model(model, TINY, corpus, seed=0)
    return model, rows


def _cfg(model, out, **kw) -> PPORunConfig:
    values = dict(model=str(model), data_path="(rows given in the test)", output_dir=str(out), method="lora",
                  rollout_batch_size=4, per_device_train_batch_size=2, gradient_accumulation_steps=2, ppo_epochs=2,
                  max_completion_length=12, temperature=1.0, learning_rate=1e-2, max_steps=2, use_cpu=True,
                  dtype="float32", reward_workers=0, save_steps=1, save_total_limit=None, sample_every=1,
                  num_samples=1, lora_r=4, lora_alpha=8, lora_target_modules=["q_proj", "v_proj"],
                  missing_eos_penalty=0.5, seed=0)
    values.update(kw)
    return build_config(PPORunConfig, values)


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path))


def test_lora_ppo_changes_adapter_and_logs(world, tmp_path):
    model, rows = world
    from sqlcoach.train.callbacks import step_timer

    timer = step_timer()  # RecipeFn's callbacks: PPO calls their step hooks around each PPO step
    s = run_ppo(_cfg(model, tmp_path), rows=rows, callbacks=[timer], log=lambda m: None)
    assert s["global_step"] == 2 and len(s["reward_curve"]) == 2 and len(timer.seconds) == 2
    assert s["tokens_generated"] > 0 and s["peak_memory_mb"] > 0 and s["median_step_seconds"] > 0
    rec = s["reward_curve"][0]
    for key in ("reward", "kl", "entropy", "vf_loss", "clipfrac", "approxkl", "rewards/execution"):
        assert key in rec
    assert rec["kl"] == pytest.approx(0.0, abs=1e-6)  # LoRA B starts at 0: policy == reference
    adapter = _weights(tmp_path / "final" / "adapter_model.safetensors")
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)  # B was zero-initialised
    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert {"question", "sql", "result", "gold_sql", "reward", "rewards"} <= set(samples[0])
    assert set(samples[0]["rewards"]) == {"execution"} and samples[0]["result"]  # the execution outcome, as GRPO's rows
    from sqlcoach.models.load import load_model

    load_model(tmp_path / "final", device="cpu", dtype="float32")  # the adapter reloads on its base


def test_full_ppo_changes_model_weights(world, tmp_path):
    model, rows = world
    before = _weights(model / "model.safetensors")
    s = run_ppo(_cfg(model, tmp_path, method="full", learning_rate=1e-3), rows=rows, log=lambda m: None)
    assert s["global_step"] == 2
    after = _weights(tmp_path / "final" / "model.safetensors")
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any("layers.0." in k for k in changed) and any("layers.1." in k for k in changed)


def test_kl_coef_zero_loads_and_runs_no_reference(world, tmp_path, monkeypatch):
    """kl_coef 0 (as GRPO's beta 0): no frozen copy, no reference forward, kl logged as not measured;
    the same seed with the penalty on does run the reference."""
    from sqlcoach.train import ppo_core

    calls = []
    real = ppo_core.reference_logits
    monkeypatch.setattr(ppo_core, "reference_logits", lambda *a, **k: calls.append(1) or real(*a, **k))
    model, rows = world
    msgs: list[str] = []
    s = run_ppo(_cfg(model, tmp_path / "a", method="full", kl_coef=0.0), rows=rows, log=msgs.append)
    assert s["global_step"] == 2 and not calls
    assert all(r["kl"] is None for r in s["reward_curve"])
    assert any("reference: none (kl_coef 0" in m for m in msgs)
    s = run_ppo(_cfg(model, tmp_path / "b", method="full", kl_coef=0.05), rows=rows, log=lambda m: None)
    assert calls and all(isinstance(r["kl"], float) for r in s["reward_curve"])


def test_resume_continues_step_count(world, tmp_path):
    model, rows = world
    first = run_ppo(_cfg(model, tmp_path, max_steps=1), rows=rows, log=lambda m: None)
    assert first["global_step"] == 1 and last_checkpoint(tmp_path, STATE_FILE).name == "checkpoint-1"
    msgs: list[str] = []
    second = run_ppo(_cfg(model, tmp_path, max_steps=3), rows=rows, resume=True, log=msgs.append)
    assert second["resumed_from"].endswith("checkpoint-1")
    assert second["global_step"] == 3 and [r["step"] for r in second["reward_curve"]] == [1, 2, 3]
    assert any("resuming from" in m for m in msgs)
    assert last_checkpoint(tmp_path, STATE_FILE).name == "checkpoint-3"


def test_resumed_run_matches_uninterrupted_run(world, tmp_path):
    model, rows = world
    straight = run_ppo(_cfg(model, tmp_path / "a", max_steps=2), rows=rows, log=lambda m: None)
    run_ppo(_cfg(model, tmp_path / "b", max_steps=1), rows=rows, log=lambda m: None)
    resumed = run_ppo(_cfg(model, tmp_path / "b", max_steps=2), rows=rows, resume=True, log=lambda m: None)
    assert [r["reward"] for r in resumed["reward_curve"]] == [r["reward"] for r in straight["reward_curve"]]
    a = _weights(tmp_path / "a" / "final" / "adapter_model.safetensors")
    b = _weights(tmp_path / "b" / "final" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_reward_model_in_place_of_execution(world, tmp_path):
    # A reward model as `sqlcoach train rm` writes it: a one-label sequence classifier + tokenizer
    # (untrained here: the test checks the plumbing, not the RM's quality).
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model, rows = world
    rm_dir = tmp_path / "rm"
    rm = AutoModelForSequenceClassification.from_pretrained(str(model), num_labels=1)
    rm.save_pretrained(rm_dir)
    AutoTokenizer.from_pretrained(str(model)).save_pretrained(rm_dir)
    s = run_ppo(_cfg(model, tmp_path / "ppo", rewards=[], reward_model=str(rm_dir), reward_model_weight=2.0,
                     max_steps=1), rows=rows, log=lambda m: None)
    rec = s["reward_curve"][0]
    assert "rewards/reward_model" in rec and "rewards/execution" not in rec
    assert rec["unscored"] == 0.0 and rec["score"] != 0.0
