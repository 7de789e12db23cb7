"""GRPO on a tiny model built in the test: 2 steps on a handful of prompts over a generated
database change the weights, log each reward component and the zero-variance share, write the
sample log, the summary and a loadable final model; LoRA saves an adapter; --resume continues."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("peft")

from sqlcoach.models.tiny import TinySize, init_tiny_model  # noqa: E402
from sqlcoach.config import build_config  # noqa: E402
from sqlcoach.train.grpo import run_grpo
from sqlcoach.train.run import SUMMARY_FILE
from sqlcoach.train.samples import SAMPLES_FILE  # noqa: E402
from sqlcoach.config import GRPORunConfig  # noqa: E402
from sqlcoach.train.run import last_checkpoint  # noqa: E402
from sqlcoach.types import Example  # noqa: E402

pytestmark = pytest.mark.integration
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY = TinySize(vocab_size=400, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512)
QUESTIONS = [
    ("How many singers are there?", "SELECT count(*) FROM singer"),
    ("List the names of all singers.", "SELECT name FROM singer"),
    ("What is the average age of singers?", "SELECT avg(age) FROM singer"),
    ("Which singers are older than 30?", "SELECT name FROM singer WHERE age > 30"),
    ("Show the empty table.", "SELECT x FROM empty_t"),  # dropped by gold curation
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("grpo-world")
    db = root / "concert" / "concert.sqlite"
    db.parent.mkdir()
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, age INTEGER)")
    con.executemany("INSERT INTO singer VALUES (?, ?, ?)", [(1, "Ann", 25), (2, "Bo", 41), (3, "Cy", 33)])
    con.execute("CREATE TABLE empty_t (x INTEGER)")
    con.commit()
    con.close()
    examples = [Example(id=f"q{i}", db_id="concert", question=q, gold_sql=s, db_path=str(db))
                for i, (q, s) in enumerate(QUESTIONS)]
    model_dir = root / "model"
    corpus = [f"{q} {s} CREATE TABLE singer (singer_id, name, age) empty_t" for q, s in QUESTIONS] * 20
    init_tiny_model(model_dir, TINY, corpus, seed=0)
    return examples, model_dir


def _cfg(model, out, **kw) -> GRPORunConfig:
    values = dict(model=str(model), data_path="(examples given in the test)", output_dir=str(out),
                  method="full", num_generations=4, per_device_train_batch_size=8, max_steps=2,
                  max_completion_length=12, learning_rate=5e-2, temperature=1.0, use_cpu=True,
                  dtype="float32", logging_steps=1, sample_every=1, num_samples=3, save_steps=1,
                  disable_tqdm=True, reward_workers=0, rewards=["execution", {"name": "format", "weight": 0.5}],
                  lora_r=4, lora_alpha=8, seed=0)
    values.update(kw)
    return build_config(GRPORunConfig, values)


def brevity(prompts=None, completions=(), completion_ids=None, **columns):
    """A reward with variance even for a random model (shorter is better), so that groups have
    signal; the execution and format rewards are still computed and logged beside it."""
    return [1.0 - len(ids) / 12 for ids in completion_ids]


def _weights(model_dir):
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


def test_two_steps_change_the_weights_and_log_everything(world, tmp_path):
    examples, model_dir = world
    out = tmp_path / "full"
    lines: list[str] = []
    summary = run_grpo(_cfg(model_dir, out), examples=examples, log=lines.append, extra_rewards=[brevity])
    assert summary["global_step"] == 2
    # Gold curation dropped the empty-result question.
    assert summary["curation"]["gold"]["dropped"]["gold_empty"] == 1 and summary["rows"] == 4
    before, after = _weights(model_dir), _weights(out / "final")
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed, "no weight changed after 2 GRPO steps"
    # One curve point per step, with each component's mean and the execution reward's EX.
    curve = summary["reward_curve"]
    assert [p["step"] for p in curve] == [1, 2]
    for p in curve:
        assert set(p) >= {"step", "reward", "execution", "format", "brevity", "execution/ex"}
        assert p["reward"] == pytest.approx(p["execution"] + p["format"] + p["brevity"], abs=1e-4)
    assert [p["step"] for p in summary["zero_std_frac_curve"]] == [1, 2]
    assert all(0.0 <= p["frac"] <= 1.0 for p in summary["zero_std_frac_curve"])
    assert summary["tokens_generated"] > 0 and summary["median_step_seconds"] > 0
    assert summary["peak_memory_mb"] > 0
    # The sample log: num_samples rows per logged step, with SQL, result and rewards.
    rows = [json.loads(line) for line in (out / SAMPLES_FILE).read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 1, 1, 2, 2, 2]
    for r in rows:
        assert r["question"] in {q for q, _ in QUESTIONS}
        assert set(r["rewards"]) == {"execution", "format", "brevity"} and "sql" in r and r["result"]
    assert any(line.startswith("--- step 1") for line in lines)
    saved = json.loads((out / SUMMARY_FILE).read_text())
    assert saved["summary"]["global_step"] == 2 and saved["config"]["num_generations"] == 4
    assert (out / "reward.png").is_file()
    # The final model loads and generates with the project's loader.
    from sqlcoach.models.load import load_model

    model, tok = load_model(out / "final", device="cpu")
    assert tok.chat_template


def test_lora_saves_an_adapter_and_resume_continues(world, tmp_path):
    examples, model_dir = world
    out = tmp_path / "lora"
    cfg = _cfg(model_dir, out, method="lora", max_steps=1, rewards="execution_binary")
    first = run_grpo(cfg, examples=examples, log=lambda s: None, extra_rewards=[brevity])
    assert first["global_step"] == 1
    assert (out / "final" / "adapter_config.json").is_file()
    assert last_checkpoint(out) is not None
    cfg2 = _cfg(model_dir, out, method="lora", max_steps=2, rewards="execution_binary")
    second = run_grpo(cfg2, resume=True, examples=examples, log=lambda s: None, extra_rewards=[brevity])
    assert second["global_step"] == 2 and second["resumed_from"].endswith("checkpoint-1")
    steps = [json.loads(line)["step"] for line in (out / SAMPLES_FILE).read_text().splitlines()]
    assert steps[0] == 1 and steps[-1] == 2  # resume appends to the sample log


def test_dynamic_sampling_leaves_uniform_groups_out_of_the_loss(world, tmp_path):
    """The random tiny model never matches the gold: every group's binary outcome is all-miss, so
    with dynamic sampling no completion reaches the loss and the weights stay put, although the
    brevity reward (shaped, with variance) would move them (the test above)."""
    examples, model_dir = world
    out = tmp_path / "dyn"
    summary = run_grpo(_cfg(model_dir, out, dynamic_sampling=True, save_steps=10), examples=examples,
                       log=lambda m: None, extra_rewards=[brevity])
    assert summary["global_step"] == 2
    assert [p.get("skipped") for p in summary["zero_std_frac_curve"]] == [1.0, 1.0]
    before, after = _weights(model_dir), _weights(out / "final")
    assert all(torch.equal(before[k], after[k]) for k in before), "a skipped group moved the weights"


def test_uniform_groups_reads_the_binary_outcome_per_group():
    from sqlcoach.train.grpo import uniform_groups

    nan = float("nan")
    flags = torch.tensor([1, 1, 1, 1,  0, 0, 0, 0,  1, 0, 0, 0,  nan, 1, 1, nan,  nan, nan, nan, nan,  nan, 0, 1, nan])
    got = uniform_groups(flags, 4).view(-1, 4)[:, 0].tolist()
    assert got == [True, True, False, True, True, False]


class _Judged:
    """A reward that says which completions 'match the gold' by position: in each group of 4, the
    first ``solved`` do (so dynamic sampling sees mixed groups when 0 < solved < 4)."""

    __name__ = "judged"

    def __init__(self, solved: int):
        self.solved = solved
        self.last_outcomes = []

    def __call__(self, prompts=None, completions=(), completion_ids=None, **columns):
        from types import SimpleNamespace

        eq = [i % 4 < self.solved for i in range(len(completions))]
        self.last_outcomes = [SimpleNamespace(gold_ok=True, equal=e, error=None, message="", sql="", jaccard=0.0) for e in eq]
        return [1.0 - len(ids) / 12 for ids in completion_ids]  # shaped: variance in every group


@pytest.mark.parametrize("solved, skipped, moves", [(2, 0.0, True), (4, 1.0, False)])
def test_dynamic_sampling_keeps_mixed_groups(world, tmp_path, solved, skipped, moves):
    examples, model_dir = world
    out = tmp_path / f"judged{solved}"
    summary = run_grpo(_cfg(model_dir, out, dynamic_sampling=True, rewards=["format"], save_steps=10),
                       examples=examples, log=lambda m: None, extra_rewards=[_Judged(solved)])
    assert [p.get("skipped") for p in summary["zero_std_frac_curve"]] == [skipped, skipped]
    before, after = _weights(model_dir), _weights(out / "final")
    assert any(not torch.equal(before[k], after[k]) for k in before) is moves


def test_dynamic_sampling_without_an_execution_reward_is_a_config_error(world, tmp_path):
    from sqlcoach.errors import ConfigError

    examples, model_dir = world
    with pytest.raises(ConfigError, match="none of the rewards.*executes SQL"):
        run_grpo(_cfg(model_dir, tmp_path / "x", dynamic_sampling=True, rewards=["format"]), examples=examples,
                 log=lambda m: None)
