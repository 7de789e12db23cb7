"""Reward model on a tiny model built in the test: trains a few steps (full and LoRA, the LoRA
result saved merged), ``evaluate_rm`` returns a pairwise accuracy, the result is a GRPO reward."""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("peft")

from sqlcoach.models.tiny import TinySize, init_tiny_model  # noqa: E402
from sqlcoach.config import build_config  # noqa: E402
from sqlcoach.train.pairs import write_pairs  # noqa: E402
from sqlcoach.config import RMRunConfig  # noqa: E402
from sqlcoach.train.rm import evaluate_rm, run_rm  # noqa: E402

pytestmark = pytest.mark.integration
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TABLES = ["singer", "stadium", "concert", "album"]
TINY = TinySize(vocab_size=400, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)


def _pairs(n: int = 24) -> list[dict]:
    rows = []
    for i in range(n):
        t = TABLES[i % len(TABLES)]
        rows.append({
            "prompt": [{"role": "user", "content": f"Schema: {t}({t}_id, name)\nQuestion: how many {t}s? ({i})"}],
            "chosen": [{"role": "assistant", "content": f"SELECT count(*) FROM {t}"}],
            "rejected": [{"role": "assistant", "content": f"SELECT nme FRM {t} WHERE"}],
            "rejected_kind": "parse_error" if i % 2 else "exec_error",
        })
    return rows


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny-rm")
    corpus = [m["content"] for r in _pairs() for m in r["prompt"] + r["chosen"] + r["rejected"]] * 5
    init_tiny_model(out, TINY, corpus, seed=0)
    return out


def _cfg(model, out, **kw) -> RMRunConfig:
    values = dict(model=str(model), pairs_path="(rows given in the test)", output_dir=str(out), method="full",
                  max_steps=12, per_device_train_batch_size=8, learning_rate=3e-3, use_cpu=True, dtype="float32",
                  logging_steps=2, save_steps=100, max_length=96, disable_tqdm=True, lora_r=4, lora_alpha=8,
                  lora_dropout=0.0, warmup_ratio=0.0, seed=0)
    values.update(kw)
    return build_config(RMRunConfig, values)


def test_full_rm_trains_and_evaluates(tiny_model, tmp_path):
    held = write_pairs(tmp_path / "pairs_eval.jsonl", _pairs(8))
    before = evaluate_rm(tiny_model, held, device="cpu")  # a causal checkpoint loads with a random head
    summary = run_rm(_cfg(tiny_model, tmp_path / "rm"), rows=_pairs(), log=lambda m: None)
    assert summary["global_step"] == 12 and summary["rows"] == 24
    after = evaluate_rm(summary["final_dir"], held, device="cpu")
    assert after["pairs"] == 8 and 0.0 <= after["accuracy"] <= 1.0
    assert set(after["by_rejected_kind"]) == {"parse_error", "exec_error"}
    assert after["mean_margin"] > before["mean_margin"]  # training separated chosen from rejected
    assert after["accuracy"] == 1.0  # an easy, consistent preference after 12 steps
    assert (tmp_path / "rm" / "rm.png").read_bytes()[:4] == b"\x89PNG"
    from sqlcoach.rewards import build_rewards

    (reward,) = build_rewards(["reward_model"], reward_model={"model_dir": summary["final_dir"], "device": "cpu"})
    r = _pairs(1)[0]
    good, bad = reward(prompts=[r["prompt"]] * 2, completions=[r["chosen"], r["rejected"]])
    assert good > bad


def test_lora_rm_is_saved_merged(tiny_model, tmp_path):
    summary = run_rm(_cfg(tiny_model, tmp_path / "lora", method="lora", max_steps=3),
                     rows=_pairs(), eval_rows=_pairs(4), log=lambda m: None)
    final = tmp_path / "lora" / "final"
    assert not (final / "adapter_config.json").exists() and (final / "model.safetensors").exists()
    assert summary["eval"]["pairs"] == 4 and 0 <= summary["eval"]["accuracy"] <= 1
    n_total = sum(v.numel() for v in __import__("safetensors.torch", fromlist=["load_file"]).load_file(str(final / "model.safetensors")).values())
    assert 0 < summary["trainable_parameters"] < n_total / 2
