"""The demo's model does not depend on the machine: the demo's own start (``build_tiny_start``:
world, tokenizer, random Qwen2, the demo's SFT recipe by steps) trained with 1 and with 2 CPU
threads gives the same weights, bit for bit, so the demo's EX cannot depend on OMP_NUM_THREADS
or on how busy the machine is (only its time does). A shortened run of the real recipe."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from sqlcoach.pipelines.demo import build_tiny_start, demo_sft_config  # noqa: E402

pytestmark = pytest.mark.integration
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _weights(final_dir: str) -> str:
    return hashlib.sha256((Path(final_dir) / "model.safetensors").read_bytes()).hexdigest()


def test_one_and_two_threads_train_the_same_model(tmp_path):
    before = torch.get_num_threads()
    digests = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            base = tmp_path / f"t{threads}-{len(digests)}"
            cfg = demo_sft_config(base, overrides={"data_path": str(tmp_path / "world"), "max_steps": 6,
                                                   "per_device_train_batch_size": 4, "max_examples": 48,
                                                   "save_steps": 1000, "logging_steps": 2, "disable_tqdm": True})
            summary = build_tiny_start(tmp_path / "world", base, cfg, size="tiny", seed=0, n_train=60, n_dev=10,
                                       log=lambda m: None)
            assert summary["global_step"] == 6
            digests[f"{threads}-{len(digests)}"] = _weights(summary["final_dir"])
    finally:
        torch.set_num_threads(before)
    assert len(set(digests.values())) == 1, digests
