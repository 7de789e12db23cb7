"""Model loading: dtype/device resolution, the QLoRA error on CPU, adapters and merging."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from sqlcoach.errors import ConfigError  # noqa: E402
from sqlcoach.models.load import (  # noqa: E402
    export_merged,
    is_adapter,
    quantization_config,
    resolve_device,
    resolve_dtype,
)

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")


def test_resolve_dtype():
    assert resolve_dtype("float32", "cpu") is torch.float32
    assert resolve_dtype("bfloat16", "cpu") is torch.bfloat16
    assert resolve_dtype("auto", "cpu") is torch.float32
    with pytest.raises(ConfigError, match="dtype must be one of"):
        resolve_dtype("float8", "cpu")


def test_no_quantisation_is_none():
    assert quantization_config(None) is None


@no_cuda
@pytest.mark.parametrize("q", ["4bit", "8bit"])
def test_quantisation_without_cuda_is_a_clear_error(q):
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        quantization_config(q)


@no_cuda
def test_cuda_device_without_cuda_is_an_error():
    assert resolve_device("auto") == "cpu"
    with pytest.raises(ConfigError, match="no CUDA"):
        resolve_device("cuda")


def test_unknown_quantisation():
    with pytest.raises(ConfigError, match="quantization must be one of"):
        quantization_config("3bit")


def test_export_refuses_a_folder_without_adapter(tmp_path):
    assert not is_adapter(tmp_path)
    with pytest.raises(ConfigError, match="not a LoRA adapter"):
        export_merged(tmp_path, tmp_path / "out")


def _tiny_with_adapter(tmp_path):
    """A random tiny Qwen2 in ``base/`` and a LoRA adapter over it with non-zero B in ``adapter/``."""
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0)
    Qwen2ForCausalLM(cfg).save_pretrained(tmp_path / "base")
    peft = get_peft_model(Qwen2ForCausalLM.from_pretrained(tmp_path / "base"),
                          LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_()
    peft.save_pretrained(tmp_path / "adapter")
    return tmp_path / "base", tmp_path / "adapter"


@pytest.mark.parametrize("head", ["causal", "score"])
def test_load_start_merges_an_adapter_start(tmp_path, head):
    """A recipe going on from a LoRA run's final/ gets the start's weights merged (a plain model,
    no peft_config for the recipe's own LoRA to collide with), for a causal LM and a score head."""
    pytest.importorskip("peft")
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from sqlcoach.models.load import load_start

    base, adapter = _tiny_with_adapter(tmp_path)
    merged = export_merged(adapter, tmp_path / "merged", base=base)
    want = AutoModelForCausalLM.from_pretrained(merged).state_dict()
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(want[q], AutoModelForCausalLM.from_pretrained(base).state_dict()[q])
    cls = AutoModelForCausalLM if head == "causal" else AutoModelForSequenceClassification
    kw = {} if head == "causal" else {"num_labels": 1}
    got = load_start(adapter, cls, **kw)
    assert not hasattr(got, "peft_config")
    assert torch.equal(got.state_dict()[q], want[q])
    plain = load_start(base, cls, **kw)  # a plain folder loads as it is
    assert torch.equal(plain.state_dict()[q], AutoModelForCausalLM.from_pretrained(base).state_dict()[q])
