"""SFT, DPO, GRPO and PPO as two gloo ranks (``torchrun --nproc_per_node 2``, CPU) against one
process with the same global batch and seed, on a tiny model.

What must hold: every recipe runs as two ranks and writes one ``final/`` and one ``summary.json``
recording ``world_size`` 2 and the global batch; the recipe's bookkeeping is printed once; SFT,
DPO and PPO (greedy rollouts, ``top_k=1``) give the 1-process loss curve and weights within float
tolerance; GRPO sees the same prompts in every global batch (same token counts, same epoch), but
not the same loss: each rank samples its completions from its own random stream, so sampled
rollouts cannot be bitwise those of one process (and greedy rollouts would make every group's
advantage zero). ``--resume`` continues a 2-rank run. The launches: one ``torchrun`` for the four
recipes (``dist_driver.py``, to pay the start-up once), one plain process, one resumed ``torchrun``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("peft")
pytest.importorskip("accelerate")

pytestmark = pytest.mark.integration
HERE = Path(__file__).resolve().parent
RECIPES = ["sft", "dpo", "grpo", "ppo"]


def _env() -> dict[str, str]:
    import sqlcoach

    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    src = str(Path(sqlcoach.__file__).resolve().parents[1])  # this checkout's sqlcoach, in every rank
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def _launch(root: Path, nproc: int, *recipes: str) -> str:
    driver = [str(HERE / "dist_driver.py"), str(root), str(nproc), *recipes]
    cmd = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), *driver]
           if nproc > 1 else [sys.executable, *driver])
    # A rank aborting with SIGABRT gets one relaunch from clean output folders. Seen once in the
    # oldest-pins suite under -n 2 (2026-12-07): "terminate called without an active exception" (a
    # C++ thread left joinable) while the other xdist worker loaded the machine; 4 runs of this file
    # alone passed. The first failure is printed, so the flake stays visible, not hidden.
    for attempt in (1, 2):
        p = subprocess.run(cmd, env=_env(), cwd=root, capture_output=True, text=True, timeout=420)
        out = p.stdout + p.stderr
        if p.returncode == 0 or attempt == 2 or nproc == 1 or "Signal 6 (SIGABRT)" not in out:
            break
        print(f"{' '.join(cmd)}: a rank aborted (SIGABRT); relaunching once. First failure:\n{out[-2000:]}")
        for recipe in recipes:
            shutil.rmtree(root / f"{recipe}-{nproc}", ignore_errors=True)
    assert p.returncode == 0, f"{' '.join(cmd)} failed ({p.returncode}):\n{out[-4000:]}"
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("this torch build has no gloo backend: two CPU ranks cannot form a process group")
    sys.path.insert(0, str(HERE))
    from dist_assets import build

    root = tmp_path_factory.mktemp("dist")
    build(root)
    two = _launch(root, 2, *RECIPES)
    _launch(root, 1, *RECIPES)
    return root, two


def _history(root: Path, recipe: str, nproc: int) -> list[dict]:
    return json.loads((root / f"{recipe}-{nproc}" / "log_history.json").read_text())


def _summary(root: Path, recipe: str, nproc: int) -> dict:
    return json.loads((root / f"{recipe}-{nproc}" / "summary.json").read_text())["summary"]


def _weights(root: Path, recipe: str, nproc: int) -> dict:
    from safetensors.torch import load_file

    final = root / f"{recipe}-{nproc}" / "final"
    (f,) = [p for p in final.glob("*.safetensors")]
    return load_file(str(f))


def _curve(history: list[dict], keys: tuple[str, ...]) -> list[tuple]:
    return [tuple(h[k] for k in keys) for h in history if all(k in h for k in keys) and "train_runtime" not in h]


@pytest.mark.parametrize("recipe", RECIPES)
def test_two_ranks_write_one_model_and_one_summary(runs, recipe):
    root, _ = runs
    from sqlcoach.config import CONFIGS, load_config
    from dist_assets import GLOBAL

    s2, s1 = _summary(root, recipe, 2), _summary(root, recipe, 1)
    assert (s2["world_size"], s2["global_batch"]) == (2, GLOBAL[recipe])
    assert (s1["world_size"], s1["global_batch"]) == (1, GLOBAL[recipe])
    steps = load_config(CONFIGS[recipe], str(root / f"{recipe}.yaml")).max_steps
    assert s2["global_step"] == s1["global_step"] == steps
    out = root / f"{recipe}-2"
    assert sorted(p.name for p in out.glob("summary*.json")) == ["summary.json"]
    assert len(list((out / "final").glob("*.safetensors"))) == 1


@pytest.mark.parametrize("recipe,keys", [("sft", ("step", "loss", "num_tokens")),
                                         ("dpo", ("step", "loss", "rewards/margins")),
                                         ("ppo", ("step", "score", "pg_loss", "vf_loss", "kl", "entropy"))])
def test_loss_curve_and_weights_match_one_process(runs, recipe, keys):
    root, _ = runs
    c2, c1 = _curve(_history(root, recipe, 2), keys), _curve(_history(root, recipe, 1), keys)
    assert len(c1) >= 2 and len(c2) == len(c1)
    flat = lambda c: [float(v) for row in c for v in row]  # noqa: E731
    assert flat(c2) == pytest.approx(flat(c1), rel=1e-4, abs=1e-5)
    w2, w1 = _weights(root, recipe, 2), _weights(root, recipe, 1)
    assert w2.keys() == w1.keys()
    before = None if recipe == "ppo" else _weights_of(root / "model")
    for k in w1:
        assert torch.allclose(w2[k], w1[k], atol=1e-4, rtol=1e-3), k
    if before is not None:  # it trained: the match is not two copies of the start
        assert any(not torch.equal(w1[k], before[k]) for k in w1)


def _weights_of(model_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


def test_grpo_two_ranks_see_the_same_global_batches(runs):
    root, _ = runs
    keys = ("step", "num_tokens", "epoch")
    c2, c1 = _curve(_history(root, "grpo", 2), keys), _curve(_history(root, "grpo", 1), keys)
    assert c2 == c1 and len(c1) == 2
    # the epoch advances by global batch / (prompts x G): 2 prompts of 12 per step, whatever the split
    assert [round(c[2], 4) for c in c2] == [0.1667, 0.3333]
    s2 = _summary(root, "grpo", 2)
    assert s2["prompts_per_step"] == 2 and s2["tokens_generated"] > 0
    samples = (root / "grpo-2" / "samples.jsonl").read_text().splitlines()
    assert len(samples) == 2 * 2  # num_samples rows at steps 1 and 2, written by rank 0 only


def test_bookkeeping_is_printed_once(runs):
    _, out = runs
    # GRPO's and PPO's (one RL layer, train.rl.prompt_rows), each once: rank 0 alone logs
    assert out.count("gold curation: kept") == 2
    assert out.count('"world_size": 2') == 0  # the driver does not print summaries; the CLI prints one
    assert out.count("DPO (full") == 1


def test_resume_continues_two_ranks(runs):
    root, _ = runs
    _launch(root, 2, "--resume", "sft", "ppo")
    for recipe, steps in (("sft", 4), ("ppo", 3)):
        s = _summary(root, recipe, 2)
        assert s["global_step"] == steps and s["resumed_from"] and s["world_size"] == 2
