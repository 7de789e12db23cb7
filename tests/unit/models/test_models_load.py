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
