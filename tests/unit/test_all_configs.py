"""Every file under configs/ loads through its typed config (unknown keys are errors there) and
starts with the command that runs it (DESIGN.md: "each file's first line is the command")."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG_FILES = sorted((ROOT / "configs").rglob("*.yaml"))


def _loader(kind: str):
    from sqlcoach.config import load_config

    if kind == "sft":
        from sqlcoach.config import SFTRunConfig

        return lambda p: load_config(SFTRunConfig, p)
    if kind == "grpo":
        from sqlcoach.config import GRPORunConfig

        import importlib.util

        # use_vllm is checked against the installed packages when the config is built; on a
        # machine without vLLM (CPU, CI) the rest of a vLLM recipe is still checked
        no_vllm = {"use_vllm": False} if importlib.util.find_spec("vllm") is None else {}
        return lambda p: load_config(GRPORunConfig, p, no_vllm)
    if kind == "verifier":
        from sqlcoach.config import VerifierRunConfig

        return lambda p: load_config(VerifierRunConfig, p)
    if kind == "ppo":
        from sqlcoach.config import PPORunConfig

        return lambda p: load_config(PPORunConfig, p)
    if kind == "dpo":
        from sqlcoach.config import DPORunConfig

        return lambda p: load_config(DPORunConfig, p)
    if kind == "rm":
        from sqlcoach.config import RMRunConfig

        return lambda p: load_config(RMRunConfig, p)
    if kind == "accelerate":
        pytest.importorskip("accelerate")
        from accelerate.commands.config.config_args import ClusterConfig

        # accelerate's own reader: an unknown key or a bad value fails here as at launch
        return ClusterConfig.from_yaml_file
    if kind == "compare":
        from sqlcoach.pipelines.compare import load_compare_config

        return load_compare_config
    raise AssertionError(f"configs/{kind}/ has no loader in this test: add one")


def test_there_are_configs():
    assert len(CONFIG_FILES) >= 6


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_config_loads_and_names_its_command(path):
    kind = path.parent.name
    first = path.read_text().splitlines()[0]
    if kind == "accelerate":  # a launch config: its first line launches a recipe with it
        assert first.startswith(f"# accelerate launch --config_file configs/accelerate/{path.name} "), first
        assert "-m sqlcoach.cli train " in first, first
        assert _loader(kind)(path) is not None
        return
    assert first.startswith("# sqlcoach "), f"{path}: first line must be the command that runs it"
    # the verb in the command matches the folder (train sft / train grpo / compare ...)
    assert kind in first.split()[:4], first
    assert _loader(kind)(path) is not None
