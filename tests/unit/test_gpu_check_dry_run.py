"""The GPU check cannot rot: its dry run (no GPU, no install, no model) runs here on every CI run.

``benchmarks/gpu_check.sh`` runs once per lent GPU machine, in one call with no package index
(docs/gpu.md). Its dry run checks what can be checked without the GPU: the wheel and image lists
against pyproject's pins, the model shapes against their published parameter counts, every part's
sqlcoach config, and the shell plumbing (caps, the results file, the JSON it collects).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tomllib", reason="gpu_bundle.py reads pyproject.toml with tomllib (Python 3.11+)")

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import gpu_bundle  # noqa: E402
import gpu_check  # noqa: E402


def test_dry_run_plans_every_part(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_DRY_RUN": "1", "GPU_CHECK_WORK": str(tmp_path),
           "OUT": str(tmp_path / "out"), "WHEELS": str(tmp_path / "no-wheels")}
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    for name in gpu_check.PUBLISHED_PARAMETERS:
        assert f"shape {name}:" in out and "(as published)" in out
    for part in ("sft", "grpo", "ppo", "dpo", "fsdp"):
        assert f"configs: {part}:" in out
    doc = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    for part in gpu_check.PARTS:
        assert f"{part}.cap_s" in doc["figures"], part  # every part went through the shell loop
    assert doc["figures"]["sft.plan"] == "4_config(s)_ok"
    assert (tmp_path / "out" / "gpu_check.log").is_file()
    assert (tmp_path / "fsdp.yaml").is_file()  # the fsdp part's training config, written by its plan


def test_model_shapes_match_published_parameter_counts():
    for name, count in gpu_check.PUBLISHED_PARAMETERS.items():
        assert gpu_check.shape_parameters(gpu_check.shape(name)) == count


def test_flops_per_token_lora_below_full():
    cfg = gpu_check.shape("qwen2.5-0.5b")
    full = gpu_check.flops_per_token(cfg, 512, lora=False)
    assert gpu_check.flops_per_token(cfg, 512, lora=True) < full
    assert full > 6 * gpu_check.PUBLISHED_PARAMETERS["qwen2.5-0.5b"]


def test_bundle_lists_meet_pyproject_pins():
    lines = gpu_bundle.check_lists()
    assert any(line.startswith("pin ok: transformers==") for line in lines)
    names = {n for n, _, _ in gpu_bundle.wheel_list()}
    assert "torch" not in names  # the machine's CUDA torch is never replaced
    assert {"transformers", "trl", "datasets", "sqlglot"} <= names


def test_bundle_list_refuses_two_versions(tmp_path, monkeypatch):
    (tmp_path / "wheels.txt").write_text("trl==1.16.0\ntrl==1.15.0\n")
    (tmp_path / "image.txt").write_text("torch==2.11.0\n")
    monkeypatch.setattr(gpu_bundle, "LISTS", tmp_path)
    with pytest.raises(gpu_bundle.BundleError, match="listed twice"):
        gpu_bundle.wheel_list()


def test_verify_finds_an_unmet_requirement(tmp_path, monkeypatch):
    """A bundle whose wheel needs a package neither carried nor in the image does not verify."""
    import zipfile

    (tmp_path / "wheels.txt").write_text("demo==1.0\n")
    (tmp_path / "image.txt").write_text("numpy==2.5.2\n")
    monkeypatch.setattr(gpu_bundle, "LISTS", tmp_path)
    wheels = tmp_path / "whl"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "demo-1.0-py3-none-any.whl", "w") as zf:
        zf.writestr("demo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"
                    "Requires-Dist: numpy>=3\nRequires-Dist: nothere\nRequires-Dist: tomli; python_version < '3.11'\n")
    with pytest.raises(gpu_bundle.BundleError) as err:
        gpu_bundle.verify(wheels)
    assert "numpy>=3" in str(err.value) and "nothere" in str(err.value)
    assert "tomli" not in str(err.value)  # its marker is false on Python 3.12
