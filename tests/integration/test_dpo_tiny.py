"""DPO on a tiny model built in the test: LoRA (reference = adapters off) and full (frozen copy)
change the weights in 2-3 steps, the policy moves towards the chosen answers, --resume continues."""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("peft")

from sqlcoach.models.tiny import TinySize, init_tiny_model  # noqa: E402
from sqlcoach.config import build_config  # noqa: E402
from sqlcoach.train.dpo import run_dpo  # noqa: E402
from sqlcoach.config import DPORunConfig  # noqa: E402
from sqlcoach.train.run import last_checkpoint  # noqa: E402

pytestmark = pytest.mark.integration
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TABLES = ["singer", "stadium", "concert", "album"]
TINY = TinySize(vocab_size=400, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)


def _pairs(n: int = 16) -> list[dict]:
    rows = []
    for i in range(n):
        t = TABLES[i % len(TABLES)]
        rows.append({
            "prompt": [{"role": "user", "content": f"Schema: {t}({t}_id, name)\nQuestion: how many {t}s?"}],
            "chosen": [{"role": "assistant", "content": f"SELECT count(*) FROM {t}"}],
            "rejected": [{"role": "assistant", "content": f"SELECT name FROM {TABLES[(i + 1) % len(TABLES)]}"}],
        })
    return rows


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny-dpo")
    corpus = [m["content"] for r in _pairs() for m in r["prompt"] + r["chosen"] + r["rejected"]] * 5
    init_tiny_model(out, TINY, corpus, seed=0)
    return out


def _cfg(model, out, **kw) -> DPORunConfig:
    values = dict(model=str(model), pairs_path="(rows given in the test)", output_dir=str(out), method="full",
                  max_steps=3, per_device_train_batch_size=4, learning_rate=5e-3, use_cpu=True, dtype="float32",
                  logging_steps=1, save_steps=2, max_length=96, disable_tqdm=True, lora_r=4, lora_alpha=8,
                  lora_dropout=0.0, warmup_ratio=0.0, seed=0, beta=0.1)
    values.update(kw)
    return build_config(DPORunConfig, values)


def _weights(path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def test_full_dpo_changes_weights_and_prefers_chosen(tiny_model, tmp_path):
    before = _weights(tiny_model / "model.safetensors")
    summary = run_dpo(_cfg(tiny_model, tmp_path / "full"), rows=_pairs(), eval_rows=_pairs(4), log=lambda m: None)
    assert summary["global_step"] == 3 and summary["rows"] == 16
    after = _weights(tmp_path / "full" / "final" / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before if "layers.1." in k)
    assert summary["last_metrics"]["rewards/margins"] > 0  # chosen log-ratio rose above rejected
    assert summary["eval"]["eval_rewards/accuracies"] > 0.5
    assert summary["median_step_seconds"] > 0 and summary["peak_memory_mb"] > 0
    assert (tmp_path / "full" / "dpo.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "full" / "summary.json").is_file()


@pytest.mark.parametrize("loss", ["ipo", "hinge"])
def test_lora_dpo_trains_adapters_with_other_losses(tiny_model, tmp_path, loss):
    summary = run_dpo(_cfg(tiny_model, tmp_path / loss, method="lora", loss_type=loss, max_steps=2),
                      rows=_pairs(), log=lambda m: None)
    n_base = sum(v.numel() for v in _weights(tiny_model / "model.safetensors").values())
    assert summary["global_step"] == 2 and 0 < summary["trainable_parameters"] < n_base / 5
    adapter = _weights(tmp_path / loss / "final" / "adapter_model.safetensors")
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)  # B starts at zero: non-zero means trained


def test_resume_continues_to_the_same_step(tiny_model, tmp_path):
    out = tmp_path / "resume"
    first = run_dpo(_cfg(tiny_model, out, max_steps=2), rows=_pairs(), log=lambda m: None)
    assert first["global_step"] == 2 and last_checkpoint(out).name == "checkpoint-2"
    said = []
    second = run_dpo(_cfg(tiny_model, out, max_steps=4), rows=_pairs(), resume=True, log=said.append)
    assert second["resumed_from"].endswith("checkpoint-2") and second["global_step"] == 4
    assert any("resuming from" in s for s in said)


@pytest.fixture(scope="module")
def world_model(tmp_path_factory):
    """A small demo world and a tiny model whose tokenizer was trained on it."""
    from sqlcoach.data.world import build_world
    from sqlcoach.models.tiny import training_corpus

    base = tmp_path_factory.mktemp("iter-dpo")
    build_world(base / "world", seed=0, n_train=40, n_dev=5, progress=False)
    init_tiny_model(base / "model", TINY, training_corpus(base / "world"), seed=0)
    return base / "world", base / "model"


@pytest.mark.parametrize("method", ["full", "lora"])
def test_iterative_dpo_mines_each_round_from_the_current_policy(world_model, tmp_path, method):
    world, model = world_model
    out = tmp_path / f"iter-{method}"
    lines: list[str] = []
    summary = run_dpo(_cfg(model, out, method=method, pairs_path="", rounds=2, mine_data_path=str(world),
                           mine_limit=6, mine_k=2, mine_max_new_tokens=8, max_steps=4, max_length=1024, save_steps=100),
                      log=lines.append)
    rounds = summary["rounds"]
    assert [r["round"] for r in rounds] == [0, 1] and all(r["pairs"] > 0 for r in rounds)
    assert [r["steps"] for r in rounds] == [2, 2] and summary["global_step"] == 4
    # each round mined its own, new questions, with the policy of that moment
    import json

    q = [{json.loads(line)["question"] for line in (out / f"round{r}" / "pairs.jsonl").read_text().splitlines()} for r in (0, 1)]
    assert q[0] and q[1] and not q[0] & q[1]
    hist = json.loads((out / "log_history.json").read_text())
    assert {h["round"] for h in hist} == {0, 1} and max(h["step"] for h in hist if "loss" in h) == 4
    final = out / "final"
    assert (final / "config.json").is_file() and not (final / "adapter_config.json").exists()  # LoRA saved merged
    before = _weights(model / "model.safetensors")
    after = _weights(final / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before if k in after)


def test_iterative_dpo_config_rules(tiny_model, tmp_path):
    from sqlcoach.errors import ConfigError

    with pytest.raises(ConfigError, match="mine_data_path"):
        _cfg(tiny_model, tmp_path, pairs_path="", rounds=2)
    with pytest.raises(ConfigError, match="pairs_path is required"):
        _cfg(tiny_model, tmp_path, pairs_path="", rounds=1)
    with pytest.raises(ConfigError, match="mine_temperature"):
        _cfg(tiny_model, tmp_path, rounds=2, mine_data_path="x", mine_temperature=0)
