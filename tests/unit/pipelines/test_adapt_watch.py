"""The adapt watch's stop rules, the per-database report and the reward entries (``pipelines.adapt``), without a model."""

from __future__ import annotations

import pytest

from sqlcoach.pipelines.adapt import AdaptOptions, Watch, grpo_config, per_database, split_held
from sqlcoach.types import Example


def _watch(**kw):
    return Watch([], tokenizer=None, run_sql=lambda rows, sqls: [], opts=AdaptOptions(**kw), decisions=list,
                 log=lambda m: None)


def _feed(w, points):
    out = []
    for p in points:
        w.curve.append(p)
        out.append(w._stop(p))
    return out


def test_agreement_drop_from_its_best_stops():
    w = _watch(stop_drop=0.15)
    assert _feed(w, [{"step": 0, "agreement": 0.6}, {"step": 5, "agreement": 0.8}, {"step": 10, "agreement": 0.7}]) == [None] * 3
    assert "fell to 0.6" in _feed(w, [{"step": 15, "agreement": 0.6}])[0]


def test_identical_answers_and_empty_rise_stop():
    w = _watch(max_identical=0.5)
    assert _feed(w, [{"step": 0, "greedy_identical": 0.1, "greedy_empty": 0.2}]) == [None]
    assert "identical" in _feed(w, [{"step": 5, "greedy_identical": 0.6, "greedy_empty": 0.2}])[0]
    w = _watch(max_empty_rise=0.25)
    _feed(w, [{"step": 0, "greedy_empty": 0.2}])
    assert _feed(w, [{"step": 5, "greedy_empty": 0.45}]) == [None]
    assert "empty" in _feed(w, [{"step": 10, "greedy_empty": 0.5}])[0]


def test_per_database_counts_used_and_skipped_questions():
    train = [Example(id=f"q{i}", db_id="a" if i < 3 else "b", question=f"q{i}") for i in range(5)]
    held = [Example(id="h", db_id="b", question="h")]
    d = [{"db_id": "a", "id": "q0", "reason": None, "share": 0.5}, {"db_id": "a", "id": "q0", "reason": "tie: 2 groups of 2/8", "share": 0.0},
         {"db_id": "a", "id": "q1", "reason": "largest group 1/8 < min_share 0.4", "share": 0.0}]
    rep = per_database(d, train, held)
    assert rep["a"]["used"] == 1 and rep["a"]["skipped"] == 1 and rep["a"]["rounds_skipped"] == 2
    assert rep["a"]["skip_reasons"] == {"tie": 1, "below min_share": 1} and rep["a"]["mean_vote_share"] == 0.5
    assert rep["b"] == {**rep["b"], "questions": 2, "held_aside": 1, "used": 0, "sampled": 0, "mean_vote_share": None}


def test_split_is_fixed_and_config_anchors_to_the_start(tmp_path):
    exs = [Example(id=str(i), db_id="a", question=f"question number {i}") for i in range(40)]
    train, held = split_held(exs, 25)
    assert train and held and split_held(list(reversed(exs)), 25)[1] == list(reversed(held))
    cfg = grpo_config("m", tmp_path, AdaptOptions())
    assert cfg.task == "consensus" and cfg.beta > 0 and cfg.method == "lora" and not cfg.curate_gold
    assert cfg.rewards[0]["name"] == "consensus" and cfg.per_device_train_batch_size == 16


def test_roll_back_swaps_weights_of_the_same_kind_only(tmp_path):
    from sqlcoach.pipelines.adapt import roll_back

    final, best = tmp_path / "final", tmp_path / "best"
    final.mkdir()
    best.mkdir()
    (final / "adapter_model.safetensors").write_bytes(b"last")
    (final / "sqlcoach_recipe.json").write_text("{}")
    (best / "adapter_model.safetensors").write_bytes(b"best")
    assert roll_back(final, best) and (final / "adapter_model.safetensors").read_bytes() == b"best"
    (best / "adapter_model.safetensors").unlink()
    (best / "model.safetensors").write_bytes(b"full")  # final holds an adapter: not the same kind
    assert not roll_back(final, best) and not (final / "model.safetensors").exists()


def test_verifier_reward_gets_its_folder_and_weights(tmp_path):
    from fake_verifier import verifier_folder_stub

    from sqlcoach.pipelines.adapt import MONITOR, reward_entries, reward_record

    v = verifier_folder_stub(tmp_path / "v")
    alone = reward_entries(AdaptOptions(reward=["verifier"], verifier=str(v), use_cpu=True), tmp_path)
    # consensus is not trained on: a weight-0 monitor writes the decisions the watch and report read
    assert alone[0] == ["consensus", {"name": MONITOR, "weight": 0.0, "min_share": 0.4,
                                      "decisions_path": str(tmp_path / "consensus_decisions.jsonl")}]
    assert alone[1] == {"name": "verifier", "verifier_path": str(v), "device": "cpu"}
    rec = reward_record(alone)
    assert rec["rewards"] == ["verifier"] and rec["reward_weights"] == {"verifier": 1.0} and rec["monitor"] == MONITOR
    assert rec["verifier"]["path"] == str(v.resolve()) and len(rec["verifier"]["weights_sha256"]) == 64

    both = reward_entries(AdaptOptions(reward=["consensus", "verifier"], reward_weights=[1, 0.5], verifier=str(v)), tmp_path)
    assert [r["name"] for r in both] == ["consensus", "verifier"] and [r["weight"] for r in both] == [1.0, 0.5]
    assert both[0]["min_share"] == 0.4 and "monitor" not in reward_record(both)
    cfg = grpo_config("m", tmp_path, AdaptOptions(reward=["consensus", "verifier"], verifier=str(v)))
    assert [r["name"] for r in cfg.rewards] == ["consensus", "verifier"]
    # the same weights give the same record; other weight bytes another sha
    (v / "model.safetensors").write_bytes(b"other weights")
    assert reward_record(both)["verifier"]["weights_sha256"] != rec["verifier"]["weights_sha256"]


@pytest.mark.parametrize("kw, message", [
    (dict(reward=["verifier"]), "needs a verifier folder: --verifier DIR"),
    (dict(reward=["consensus"], verifier="V"), "no reward reads it: add verifier"),
    (dict(reward=["consensus", "verifier"], verifier="V", reward_weights=[1.0]), "one weight per reward"),
    (dict(reward=[{"name": "verifier", "weight": 2}], verifier="V", reward_weights=[1.0]), "give it once"),
    (dict(reward=["verifier"], verifier="NOTAVERIFIER"), "is not a verifier: no sqlcoach_verifier.json"),
    (dict(reward=["verifier"], verifier="MISSING"), "verifier folder not found"),
])
def test_bad_verifier_options_are_one_line_errors(tmp_path, kw, message):
    from fake_verifier import verifier_folder_stub

    from sqlcoach.errors import ConfigError

    verifier_folder_stub(tmp_path / "V")
    (tmp_path / "NOTAVERIFIER").mkdir()
    kw = {**kw, "verifier": str(tmp_path / kw["verifier"]) if "verifier" in kw else None}
    with pytest.raises(ConfigError, match=message) as err:
        grpo_config("m", tmp_path, AdaptOptions(**kw))
    assert "\n" not in str(err.value)
