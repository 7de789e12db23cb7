"""SFT on a tiny model built in the test: full and LoRA change the weights, QLoRA fails clearly
without CUDA (and runs with it), --resume continues from the last checkpoint to the same step."""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("peft")

from sqlcoach.errors import ConfigError  # noqa: E402
from sqlcoach.models.tiny import TinySize, init_tiny_model  # noqa: E402
from sqlcoach.config import build_config  # noqa: E402
from sqlcoach.config import SFTRunConfig  # noqa: E402
from sqlcoach.train.run import last_checkpoint
from sqlcoach.train.sft import run_sft  # noqa: E402

pytestmark = pytest.mark.integration
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TABLES = ["singer", "stadium", "concert", "album", "song"]
TINY = TinySize(vocab_size=500, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)


def _rows(n: int = 24) -> list[dict]:
    rows = []
    for i in range(n):
        t = TABLES[i % len(TABLES)]
        q = f"How many {t}s have id above {i}?"
        sql = f"SELECT count(*) FROM {t} WHERE {t}_id > {i}"
        rows.append({"prompt": [{"role": "user", "content": f"Schema: {t}({t}_id, name)\nQuestion: {q}"}],
                     "completion": [{"role": "assistant", "content": sql}]})
    return rows


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny-model")
    corpus = [m["content"] for r in _rows() for m in r["prompt"] + r["completion"]] * 5
    init_tiny_model(out, TINY, corpus, seed=0)
    return out


def _cfg(model, out, **kw) -> SFTRunConfig:
    values = dict(model=str(model), data_path="(rows given in the test)", output_dir=str(out), method="full",
                  max_steps=4, per_device_train_batch_size=4, learning_rate=5e-3, use_cpu=True,
                  dtype="float32", logging_steps=1, save_steps=2, max_length=128, disable_tqdm=True,
                  lora_r=4, lora_alpha=8, lora_dropout=0.0, warmup_ratio=0.0, seed=0)
    values.update(kw)
    return build_config(SFTRunConfig, values)


def _weights(path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def test_full_sft_changes_every_layer(tiny_model, tmp_path):
    before = _weights(tiny_model / "model.safetensors")
    summary = run_sft(_cfg(tiny_model, tmp_path / "full"), rows=_rows(), log=lambda m: None)
    assert summary["global_step"] == 4
    after = _weights(tmp_path / "full" / "final" / "model.safetensors")
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any("layers.0." in k for k in changed) and any("layers.1." in k for k in changed)
    assert (tmp_path / "full" / "loss.png").read_bytes()[:4] == b"\x89PNG"
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(tmp_path / "full" / "final")  # reloads as a plain checkpoint


def test_lora_trains_adapter_only_and_exports(tiny_model, tmp_path):
    from sqlcoach.models.load import export_merged

    summary = run_sft(_cfg(tiny_model, tmp_path / "lora", method="lora", lora_target_modules=["q_proj", "v_proj"]),
                      rows=_rows(), log=lambda m: None)
    base = _weights(tiny_model / "model.safetensors")
    n_base = sum(v.numel() for v in base.values())
    assert 0 < summary["trainable_parameters"] < n_base / 10
    adapter = _weights(tmp_path / "lora" / "final" / "adapter_model.safetensors")
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)  # B starts at zero: non-zero means trained
    merged_dir = export_merged(tmp_path / "lora" / "final", tmp_path / "merged", base=tiny_model)
    merged = _weights(merged_dir / "model.safetensors")
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(merged[q], base[q])
    mlp = "model.layers.0.mlp.up_proj.weight"
    assert torch.equal(merged[mlp], base[mlp])  # not a LoRA target: untouched


def test_lora_from_a_lora_start_keeps_the_start_and_saves_merged(tiny_model, tmp_path):
    """A LoRA start (an SFT adapter folder) is merged before a second LoRA: the saved model holds
    the start's update (q_proj, not targeted the second time, equals the merged start exactly) and
    the new one (k_proj moved). Before the fix the second adapter was saved over the bare base."""
    from sqlcoach.models.load import export_merged

    run_sft(_cfg(tiny_model, tmp_path / "a", method="lora", lora_target_modules=["q_proj"]), rows=_rows(),
            log=lambda m: None)
    start = tmp_path / "a" / "final"
    merged_start = _weights(export_merged(start, tmp_path / "a-merged", base=tiny_model) / "model.safetensors")
    run_sft(_cfg(start, tmp_path / "b", method="lora", lora_target_modules=["k_proj"]), rows=_rows(), log=lambda m: None)
    final = tmp_path / "b" / "final"
    assert (final / "model.safetensors").is_file() and not (final / "adapter_config.json").exists()
    after, base = _weights(final / "model.safetensors"), _weights(tiny_model / "model.safetensors")
    q, k = "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight"
    assert not torch.equal(merged_start[q], base[q])
    assert torch.equal(after[q], merged_start[q])
    assert not torch.equal(after[k], merged_start[k])
    with pytest.raises(ConfigError, match="is a LoRA adapter"):
        run_sft(_cfg(start, tmp_path / "c", method="qlora", use_cpu=False), rows=_rows(), log=lambda m: None)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU error; the CUDA test below runs QLoRA")
def test_qlora_without_cuda_is_a_clear_error(tiny_model, tmp_path):
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        run_sft(_cfg(tiny_model, tmp_path / "q", method="qlora", use_cpu=False), rows=_rows(), log=lambda m: None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="QLoRA needs CUDA (bitsandbytes 4-bit kernels)")
def test_qlora_on_cuda(tiny_model, tmp_path):
    pytest.importorskip("bitsandbytes")
    summary = run_sft(_cfg(tiny_model, tmp_path / "q", method="qlora", use_cpu=False, dtype="bfloat16"),
                      rows=_rows(), log=lambda m: None)
    assert summary["global_step"] == 4
    assert (tmp_path / "q" / "final" / "adapter_model.safetensors").exists()


class _Crash(Exception):
    pass


def test_resume_continues_from_last_checkpoint(tiny_model, tmp_path):
    from transformers import TrainerCallback

    class CrashAfter(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 3:  # checkpoint-2 is on disk, step 3 is lost
                raise _Crash()

    out = tmp_path / "resume"
    cfg = _cfg(tiny_model, out, max_steps=6)
    with pytest.raises(_Crash):
        run_sft(cfg, rows=_rows(), callbacks=[CrashAfter()], log=lambda m: None)
    assert last_checkpoint(out).name == "checkpoint-2"
    summary = run_sft(cfg, rows=_rows(), resume=True, log=lambda m: None)
    assert summary["resumed_from"].endswith("checkpoint-2")
    assert summary["global_step"] == 6 == summary["max_steps"]
    # Same end point as an uninterrupted run (optimizer, scheduler, data order and RNG restored).
    straight = run_sft(_cfg(tiny_model, tmp_path / "straight", max_steps=6), rows=_rows(), log=lambda m: None)
    a = _weights(out / "final" / "model.safetensors")
    b = _weights(tmp_path / "straight" / "final" / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert straight["global_step"] == 6


def test_resume_without_checkpoint_starts_fresh(tiny_model, tmp_path):
    said = []
    summary = run_sft(_cfg(tiny_model, tmp_path / "fresh", max_steps=2), rows=_rows(), resume=True, log=said.append)
    assert summary["global_step"] == 2 and summary["resumed_from"] is None
    assert any("no checkpoint" in s for s in said)


def test_prompts_longer_than_max_length_are_a_clear_error(tiny_model, tmp_path):
    long_rows = [{"prompt": [{"role": "user", "content": "word " * 200}],
                  "completion": [{"role": "assistant", "content": "SELECT 1"}]}] * 4
    with pytest.raises(ConfigError, match="max_length=32"):
        run_sft(_cfg(tiny_model, tmp_path / "long", max_length=32), rows=long_rows, log=lambda m: None)


def test_clock_budget_stops_anneals_and_is_saved(tiny_model, tmp_path):
    import json

    from sqlcoach.train.callbacks import CLOCK_FILE, read_clock

    out = tmp_path / "clock"
    cfg = _cfg(tiny_model, out, max_steps=10_000, max_seconds=3.0, anneal_by_clock=True,
               lr_scheduler_type="constant", warmup_ratio=0.1, save_steps=10_000)
    summary = run_sft(cfg, rows=_rows(), log=lambda m: None)
    assert summary["stopped_by_clock"] and 0 < summary["global_step"] < 10_000
    ckpt = last_checkpoint(out)
    assert ckpt is not None and read_clock(ckpt) >= 3.0
    assert json.loads((ckpt / CLOCK_FILE).read_text())["train_seconds"] >= 3.0
    lrs = [h["learning_rate"] for h in json.loads((out / "log_history.json").read_text()) if "loss" in h]
    # the constant scheduler would log 5e-3 throughout; the clock schedule ends far below its peak
    assert max(lrs) <= 5e-3 + 1e-12 and lrs[-1] < 0.5 * max(lrs)


def _logged_lrs(out) -> list[float]:
    import json

    return [h["learning_rate"] for h in json.loads((out / "log_history.json").read_text()) if "loss" in h]


def test_warmup_start_raises_only_the_warmup_and_survives_resume(tiny_model, tmp_path):
    from transformers import TrainerCallback

    kw = dict(max_steps=8, lr_scheduler_type="cosine", warmup_ratio=0.5, save_steps=2)
    run_sft(_cfg(tiny_model, tmp_path / "from0", **kw), rows=_rows(), log=lambda m: None)
    run_sft(_cfg(tiny_model, tmp_path / "raised", warmup_start=0.25, **kw), rows=_rows(), log=lambda m: None)
    peak = 5e-3
    base, raised = _logged_lrs(tmp_path / "from0"), _logged_lrs(tmp_path / "raised")
    assert len(base) == len(raised) == 8
    # each logged rate is the one its step used: steps 1-4 are the 4-step warmup (from 0 without it)
    assert base[0] == 0 and raised[0] == pytest.approx(0.25 * peak, rel=1e-9)
    for b, r in zip(base[:4], raised[:4]):
        assert r == pytest.approx(peak * (0.25 + 0.75 * b / peak), rel=1e-9) and r > b
    assert raised[4:] == pytest.approx(base[4:], rel=1e-9)  # the anneal is the same
    assert not all(torch.equal(a, b) for a, b in zip(_weights(tmp_path / "from0" / "final" / "model.safetensors").values(),
                                                       _weights(tmp_path / "raised" / "final" / "model.safetensors").values()))

    class CrashAfter(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 3:  # checkpoint-2 is on disk, inside the warmup
                raise _Crash()

    out = tmp_path / "resumed"
    cfg = _cfg(tiny_model, out, warmup_start=0.25, **kw)
    with pytest.raises(_Crash):
        run_sft(cfg, rows=_rows(), callbacks=[CrashAfter()], log=lambda m: None)
    run_sft(cfg, rows=_rows(), resume=True, log=lambda m: None)
    a = _weights(out / "final" / "model.safetensors")
    b = _weights(tmp_path / "raised" / "final" / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert _logged_lrs(out)[-5:] == pytest.approx(raised[-5:], rel=1e-9)


def test_warmup_start_out_of_range_is_a_config_error(tiny_model, tmp_path):
    with pytest.raises(ConfigError, match="warmup_start must be in"):
        _cfg(tiny_model, tmp_path / "bad", warmup_start=1.5)
