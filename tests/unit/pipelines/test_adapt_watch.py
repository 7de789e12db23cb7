"""The adapt watch's stop rules and the per-database report (``pipelines.adapt``), without a model."""

from __future__ import annotations

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
