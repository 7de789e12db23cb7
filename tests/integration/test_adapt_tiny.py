"""`sqlcoach adapt` on a tiny model built in the test (a random Qwen2 taught four SQL answers by a
few dozen plain gradient steps, so that its samples run and sometimes agree: ``taught_world``).

The key property: adapt never reads gold SQL. A Spider file whose ``query`` fields are replaced
by garbage gives byte-identical reward decisions, the same logged rewards and the same adapted
weights (sha256 of the saved adapter) as the original file. Also: the recipe records what the
model was adapted on, the report is written, and a run where no question reaches consensus
writes no model. The same with the verifier in the reward (alone, and beside consensus), on an
untrained verifier folder."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("peft")

from sqlcoach.errors import DataError  # noqa: E402
from sqlcoach.pipelines.adapt import DECISIONS_FILE, AdaptOptions, adapt  # noqa: E402
from taught_world import PAIRS, QUESTIONS, build_taught_world  # noqa: E402

pytestmark = pytest.mark.integration
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapt-world")
    _, raw, taught = build_taught_world(root)
    gold = dict(PAIRS)
    spider = [{"db_id": "concert", "question": q, "query": gold.get(q, "SELECT 1"), "query_toks": []} for q in QUESTIONS]
    original = root / "dev.json"
    original.write_text(json.dumps(spider))
    garbage = root / "dev_garbage.json"
    garbage.write_text(json.dumps([{**r, "query": f"DROP TABLE singer; garbage {i} ;;"} for i, r in enumerate(spider)]))
    return root, raw, taught, original, garbage


def _opts(**kw):
    values = dict(num_generations=4, questions_per_step=2, max_steps=2, learning_rate=1e-2, max_completion_length=12,
                  min_share=0.25, held_percent=30, check_every=1, use_cpu=True, reward_workers=0, seed=0,
                  stop_drop=1.0, max_identical=1.0, max_empty_rise=1.0,  # 2 steps at lr 1e-2: no stop rule here
                  overrides={"disable_tqdm": True, "logging_steps": 1})
    values.update(kw)
    return AdaptOptions(**values)


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rewards_logged(out):
    return [(h["step"], h.get("rewards/consensus/mean")) for h in json.loads((out / "log_history.json").read_text())
            if "step" in h and "rewards/consensus/mean" in h]


def test_gold_sql_is_never_read(world, tmp_path):
    root, _, taught, original, garbage = world
    a, b = tmp_path / "a", tmp_path / "b"
    ra = adapt(str(taught), str(original), str(a), databases=str(root / "database"), opts=_opts(), log=lambda m: None)
    rb = adapt(str(taught), str(garbage), str(b), databases=str(root / "database"), opts=_opts(), log=lambda m: None)
    da, db_ = (a / DECISIONS_FILE).read_bytes(), (b / DECISIONS_FILE).read_bytes()
    assert da == db_ and da  # byte-identical reward decisions
    decisions = [json.loads(x) for x in da.decode().splitlines()]
    assert any(d["reason"] is None for d in decisions)  # something earned a reward: the test has teeth
    assert _rewards_logged(a) == _rewards_logged(b) and _rewards_logged(a)
    wa, wb = a / "final" / "adapter_model.safetensors", b / "final" / "adapter_model.safetensors"
    assert _sha(wa) == _sha(wb)  # the same adapted model
    from safetensors.torch import load_file

    assert any(float(t.abs().sum()) > 0 for k, t in load_file(str(wa)).items() if "lora_B" in k)  # it did train

    recipe = json.loads((a / "final" / "sqlcoach_recipe.json").read_text())
    assert recipe["source"] == "adapt" and recipe["adapted"]["databases"] == ["concert"]
    assert recipe["adapted"]["questions_sha256"] == _sha(original) and recipe["adapted"]["rewards"] == ["consensus"]
    assert recipe["adapted"]["rounds"] >= 1
    assert ra["per_database"]["concert"]["used"] >= 1 and rb["per_database"] == ra["per_database"]
    assert (a / "report.md").is_file() and (a / "report.json").is_file()
    assert not list(a.glob("checkpoint-*"))  # final/ is the model; the trainer's checkpoints are gone
    assert ra["collapse_curve"][0]["step"] == 0 and ra["collapse_curve"][-1]["step"] >= 1

    from sqlcoach.prompts.recipe import recipe_of

    assert recipe_of(a / "final").adapted["questions_sha256"] == _sha(original)  # what predict / serve read


def _trl_before_1_16() -> bool:
    import trl
    from packaging.version import Version

    return Version(trl.__version__) < Version("1.16")


# On trl 1.13 (the oldest pin) two verifier-reward adapt runs in one process differ from each other
# even when both read the *same* question file (checked 2026-12-07: the first and second run write
# adapters b027cb11... and 75995361... whichever file each reads), so a first-run/second-run
# comparison there cannot isolate the gold; the consensus-only test above still checks it on that pin.
@pytest.mark.skipif(_trl_before_1_16(), reason="trl < 1.16: two verifier-reward runs in one process are "
                    "not bit-identical even on the same file, so the comparison cannot isolate the gold")
@pytest.mark.parametrize("reward, weights", [(["verifier"], None), (["consensus", "verifier"], [1.0, 0.5])])
def test_gold_sql_is_never_read_with_the_verifier(world, tmp_path, reward, weights):
    # an untrained verifier scores every completion (a random head, but a real model reading the
    # question, schema, SQL and result): with it in the reward, garbage gold still changes nothing
    from fake_verifier import untrained_verifier

    root, _, taught, original, garbage = world
    verifier = untrained_verifier(taught, tmp_path / "verifier")
    opts = _opts(reward=reward, reward_weights=weights, verifier=str(verifier))
    a, b = tmp_path / "a", tmp_path / "b"
    ra = adapt(str(taught), str(original), str(a), databases=str(root / "database"), opts=opts, log=lambda m: None)
    rb = adapt(str(taught), str(garbage), str(b), databases=str(root / "database"), opts=opts, log=lambda m: None)
    assert (a / DECISIONS_FILE).read_bytes() == (b / DECISIONS_FILE).read_bytes()  # consensus (or its monitor)
    logged = [(h["step"], h["rewards/verifier/mean"], h.get("rewards/consensus/mean"))
              for h in json.loads((a / "log_history.json").read_text()) if "rewards/verifier/mean" in h]
    assert logged and logged == [(h["step"], h["rewards/verifier/mean"], h.get("rewards/consensus/mean"))
                                 for h in json.loads((b / "log_history.json").read_text()) if "rewards/verifier/mean" in h]
    assert all(0.0 < v <= max(weights or [1.0]) for _, v, _ in logged)  # the verifier scored every round
    wa, wb = a / "final" / "adapter_model.safetensors", b / "final" / "adapter_model.safetensors"
    assert _sha(wa) == _sha(wb)
    from safetensors.torch import load_file

    assert any(float(t.abs().sum()) > 0 for k, t in load_file(str(wa)).items() if "lora_B" in k)  # it did train
    monitor = [h for h in json.loads((a / "log_history.json").read_text()) if "rewards/consensus_monitor/mean" in h]
    assert bool(monitor) == ("consensus" not in reward) and all(h["rewards/consensus_monitor/mean"] in (0.0, None)
                                                                  for h in monitor)  # weight 0: it adds nothing
    adapted = json.loads((a / "final" / "sqlcoach_recipe.json").read_text())["adapted"]
    assert adapted["rewards"] == reward and adapted["verifier"]["path"] == str(verifier.resolve())
    assert len(adapted["verifier"]["weights_sha256"]) == 64
    assert adapted["reward_weights"]["verifier"] == (weights[1] if weights else 1.0)
    assert ("monitor" in adapted) == ("consensus" not in reward)
    assert ra["collapse_curve"][-1].get("train_entropy") is not None  # the watch's batch signals, from the decisions
    assert rb["per_database"] == ra["per_database"]


def test_no_consensus_writes_no_model(world, tmp_path):
    root, raw, _, original, _ = world
    out = tmp_path / "none"
    with pytest.raises(DataError, match="no question reached consensus"):
        adapt(str(raw), str(original), str(out), databases=str(root / "database"),
              opts=_opts(max_steps=1, held_percent=0), log=lambda m: None)
    assert not (out / "final").exists() and not list(out.glob("checkpoint-*"))


def test_early_stop_without_a_better_check_writes_no_model(world, tmp_path):
    # lr 1e-2 moves the tiny policy off its own held-aside consensus at once (agreement 1.0 -> 0.0):
    # the watch stops, no check after the start beat the start, so nothing is kept
    root, _, taught, original, _ = world
    out = tmp_path / "stopped"
    with pytest.raises(DataError, match="no check after the start beat"):
        adapt(str(taught), str(original), str(out), databases=str(root / "database"),
              opts=_opts(stop_drop=0.15, max_identical=0.5, max_empty_rise=0.25), log=lambda m: None)
    assert not (out / "final").exists() and not (out / "best-check").exists()
