"""compare's `verifier` and `adapt` method types: config validation (one clear error per rule),
the adapt options a row runs with (budget, fixed keys), the fixed half A / half B split of the
evaluation questions, the hash rules that keep older results resuming, and the report's
selection, headroom and adaptation tables with their across-seeds rows (no torch)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sqlcoach.config import build_config
from sqlcoach.config.compare import ADAPT_KINDS, METHOD_KINDS, CompareConfig, MethodSpec
from sqlcoach.errors import ConfigError
from sqlcoach.pipelines.compare import jobs as J
from sqlcoach.pipelines.compare import report as P
from sqlcoach.pipelines.compare import run as R
from sqlcoach.pipelines.compare.result import CompareReport, EvalResult, MethodRow, TrainResult, summarize_seeds


def _cfg(tmp_path: Path, methods: list[dict], **kw) -> CompareConfig:
    start = tmp_path / "start"
    start.mkdir(exist_ok=True)
    (start / "config.json").write_text("{}")
    (tmp_path / "world").mkdir(exist_ok=True)
    values = dict(start=str(start), world=str(tmp_path / "world"), budget="steps", budget_value=3, methods=methods)
    values.update(kw)
    return build_config(CompareConfig, values)


SFT = {"name": "sft", "method": "sft"}


def test_the_new_kinds_are_known():
    assert "verifier" in METHOD_KINDS and ADAPT_KINDS == ("adapt",)
    from sqlcoach.train.recipes import RECIPES

    assert "verifier" in RECIPES  # trained by its recipe, like sft/dpo/grpo/ppo


@pytest.mark.parametrize("entry, message", [
    ({"n": 1}, "method v: n must be an integer >= 2"),
    ({"n": 2.5}, "n must be an integer, got 2.5"),
    ({"temperature": 0}, "method v: temperature must be > 0"),
    ({"select": "vote"}, r"method v: select must be one of \('verifier', 'vote\+verifier'\)"),
    ({"select": "best"}, "method v: select must be one of"),
])
def test_verifier_selection_settings_are_checked(tmp_path, entry, message):
    with pytest.raises(ConfigError, match=message):
        _cfg(tmp_path, [SFT, {"name": "v", "method": "verifier", **entry}])


def test_selection_settings_belong_to_the_verifier_only(tmp_path):
    with pytest.raises(ConfigError, match="method sft2: n, temperature and select are for method: verifier only"):
        _cfg(tmp_path, [{"name": "sft2", "method": "sft", "n": 8}])
    with pytest.raises(ConfigError, match="for method: verifier only"):
        _cfg(tmp_path, [{"name": "a", "method": "adapt", "select": "verifier"}])


def test_verifier_selection_defaults(tmp_path):
    cfg = _cfg(tmp_path, [SFT, {"name": "v", "method": "verifier"}, {"name": "w", "method": "verifier", "n": 4,
                                                                      "temperature": 1.0, "select": "verifier"}])
    assert cfg.methods[1].selection() == {"n": 8, "temperature": 0.8, "select": "vote+verifier"}
    assert cfg.methods[2].selection() == {"n": 4, "temperature": 1.0, "select": "verifier"}
    assert cfg.eval_half == "all"  # no adapt row: every question is scored


def test_adapt_scores_every_row_on_half_b(tmp_path):
    cfg = _cfg(tmp_path, [SFT, {"name": "a", "method": "adapt"}])
    assert cfg.eval_half == "b"
    assert _cfg(tmp_path, [SFT, {"name": "a", "method": "adapt"}], eval_half="b").eval_half == "b"
    with pytest.raises(ConfigError, match=r"eval_half='all' with the adapt method\(s\) \['a'\].*half A"):
        _cfg(tmp_path, [SFT, {"name": "a", "method": "adapt"}], eval_half="all")
    with pytest.raises(ConfigError, match="eval_half must be one of"):
        _cfg(tmp_path, [SFT], eval_half="a")
    assert _cfg(tmp_path, [SFT], eval_half="b").eval_half == "b"  # allowed alone: to set rows beside an earlier adapt run


@pytest.mark.parametrize("kw, message", [
    (dict(headroom_n=1), "headroom_n must be 0 \\(off\\) or >= 2"),
    (dict(headroom_n=-2), "headroom_n must be 0"),
    (dict(headroom_n=8, headroom_temperature=0), "headroom_temperature must be > 0"),
])
def test_headroom_settings_are_checked(tmp_path, kw, message):
    with pytest.raises(ConfigError, match=message):
        _cfg(tmp_path, [SFT], **kw)


def test_headroom_sampling_is_an_evaluation_setting(tmp_path):
    sft = _cfg(tmp_path, [SFT]).methods[0]
    on = _cfg(tmp_path, [SFT], headroom_n=8)
    assert "headroom_n" not in R._shared_settings(_cfg(tmp_path, [SFT]))  # off: older results resume
    assert R.method_hash(on, sft) != R.method_hash(_cfg(tmp_path, [SFT]), sft)
    assert R.method_hash(on, sft, training_only=True) == R.method_hash(_cfg(tmp_path, [SFT]), sft, training_only=True)


def _adapt_job(tmp_path, **kw):
    job = dict(name="a", config="", overrides={}, seed=3, device="cpu", budget="steps", budget_value=5,
               template="sql_terminal", schema_style="compact", schema_sample_values=0)
    job.update(kw)
    return job


def test_adapt_options_take_the_budget_and_the_prompt(tmp_path):
    o = J.adapt_options(_adapt_job(tmp_path, overrides={"min_share": 0.3, "overrides": {"beta": 0.1}}))
    assert o.max_steps == 5 and o.seed == 3 and o.use_cpu and o.min_share == 0.3
    assert o.overrides["beta"] == 0.1 and o.overrides["template"] == "sql_terminal" and o.overrides["disable_tqdm"]
    o = J.adapt_options(_adapt_job(tmp_path, budget="seconds", budget_value=60, overrides={"max_steps": 500}))
    assert o.overrides["max_seconds"] == 60.0 and o.max_steps == 500  # the clock stops it; max_steps is the cap
    # samples are completions: 8 generations x 2 questions = 16 per step
    o = J.adapt_options(_adapt_job(tmp_path, budget="samples", budget_value=40))
    assert o.max_steps == 3
    y = tmp_path / "adapt.yaml"
    y.write_text("num_generations: 4\nquestions_per_step: 1\n")
    assert J.adapt_options(_adapt_job(tmp_path, config=str(y), budget="samples", budget_value=40)).max_steps == 10


def test_adapt_options_take_the_verifier_reward(tmp_path):
    from fake_verifier import verifier_folder_stub

    v = verifier_folder_stub(tmp_path / "verifier")
    method = {"reward": "consensus,verifier", "reward_weights": "1,0.5", "verifier": str(v)}
    o = J.adapt_options(_adapt_job(tmp_path, overrides=method))
    assert o.reward == ["consensus", "verifier"] and o.reward_weights == [1.0, 0.5] and o.verifier == str(v)
    R.check_methods(_cfg(tmp_path, [SFT, {"name": "a", "method": "adapt", "overrides": method}]))  # builds: no error
    y = tmp_path / "adapt.yaml"
    y.write_text(f"reward: [verifier]\nverifier: {v}\n")
    assert J.adapt_options(_adapt_job(tmp_path, config=str(y))).verifier == str(v)


@pytest.mark.parametrize("overrides, message", [
    ({"group": 8}, r"a \(adapt\) options.*unknown key.*group"),
    ({"seed": 1}, "seed is set by the comparison"),
    ({"use_cpu": False}, "use_cpu is set by the comparison"),
    ({"overrides": {"betaa": 0.1}}, r"method a \(adapt\): .*unknown key.*betaa"),
    ({"overrides": [1]}, "overrides.overrides must be a mapping"),
    ({"reward": "nonesuch"}, r"method a \(adapt\): .*nonesuch"),
    ({"reward": 3}, "reward must be a reward name"),
    ({"reward": "verifier"}, r"method a \(adapt\): the verifier reward needs a verifier folder"),
    ({"reward": "consensus", "verifier": "/nonexistent"}, r"method a \(adapt\): .*no reward reads it"),
    ({"reward": "verifier", "verifier": "/nonexistent"}, r"method a \(adapt\): verifier folder not found"),
    ({"reward": "consensus,verifier", "reward_weights": "1"}, r"method a \(adapt\): .*one weight per reward"),
])
def test_bad_adapt_options_fail_before_anything_runs(tmp_path, overrides, message):
    cfg = _cfg(tmp_path, [SFT, {"name": "a", "method": "adapt", "overrides": overrides}])
    with pytest.raises(ConfigError, match=message):
        R.check_methods(cfg)
    with pytest.raises(ConfigError, match=message):
        R.run_compare(cfg, tmp_path / "out", log=lambda m: None)
    assert not (tmp_path / "out").exists()  # refused before the output folder was made


def test_missing_adapt_yaml_is_an_error(tmp_path):
    cfg = _cfg(tmp_path, [{"name": "a", "method": "adapt", "config": str(tmp_path / "nope.yaml")}])
    with pytest.raises(ConfigError, match="method a: recipe config .*nope.yaml not found"):
        R.check_methods(cfg)


def test_half_a_and_half_b_split_the_questions(tmp_path):
    from sqlcoach.data.questions import in_half_a, question_bucket
    from sqlcoach.data.world import build_world

    build_world(tmp_path / "w", seed=0, n_train=10, n_dev=40, progress=False)
    job = dict(data_kind="spider", world=str(tmp_path / "w"), eval_split="dev", eval_limit=None, eval_half="b")
    b = J.eval_examples(job)
    a = J.adapt_questions(job)
    every = J.eval_examples(dict(job, eval_half="all"))
    assert a and b and len(a) + len(b) == len(every) == 40
    assert not {e.question for e in a} & {e.question for e in b}
    assert all(question_bucket(e.question) < 50 for e in a) and not any(in_half_a(e.question) for e in b)
    limited = J.eval_examples(dict(job, eval_limit=5))
    assert len(limited) == 5 and {e.question for e in limited} <= {e.question for e in b}
    assert J.adapt_questions(dict(job, eval_limit=5)) == a  # eval_limit cuts the scored half only


def test_hash_rules_keep_old_results_and_follow_new_settings(tmp_path):
    cfg = _cfg(tmp_path, [SFT, {"name": "v", "method": "verifier"}])
    sft, v = cfg.methods
    # a setting at its default and an unset selection field are not hashed: older results resume
    assert "eval_half" not in R._shared_settings(cfg)
    assert "eval_half" in R._shared_settings(_cfg(tmp_path, [SFT], eval_half="b"))
    assert R.method_hash(cfg, sft) != R.method_hash(_cfg(tmp_path, [SFT], eval_half="b"), sft)
    assert R.method_hash(cfg, sft, training_only=True) == R.method_hash(_cfg(tmp_path, [SFT], eval_half="b"), sft,
                                                                        training_only=True)
    assert R.method_hash(cfg, v) != R.method_hash(cfg, MethodSpec(name="v", method="verifier", n=4))
    # adapt trains on the evaluation split's half A: its training hash follows eval_split
    ad = MethodSpec(name="a", method="adapt")
    c1 = _cfg(tmp_path, [ad])
    c2 = _cfg(tmp_path, [ad], eval_split="test")
    assert R.method_hash(c1, ad, training_only=True) != R.method_hash(c2, ad, training_only=True)
    assert R.method_hash(c1, sft, training_only=True) == R.method_hash(c2, sft, training_only=True)


# ---- the report -------------------------------------------------------------------------------

def _pq(ex):
    n = len(ex)
    return {"ex": ex, "db_id": ["d1", "d2"] * (n // 2), "hardness": ["easy", "hard"] * (n // 2), "error": [None] * n}


def _summary(ex):
    return {"all": {"ex": sum(ex) / len(ex), "em": 0.0, "scored": len(ex)}, "executes": 1.0, "by_hardness": {}}


def _headroom():
    cell = {"mean": 0.5, "lo": 0.2, "hi": 0.8, "questions": 4, "runs": 1}
    return {"n": 4, "questions": 4, "levels": ["all"], "greedy": "a separate greedy file", "left_out": {},
            "rows": [{"name": "greedy", "what": "", "cells": {"all": cell}},
                     {"name": "vote@4", "what": "", "cells": {"all": cell},
                      "vs_greedy": {"mean": 0.25, "lo": 0.0, "hi": 0.5, "questions": 4, "runs": 1,
                                    "p_bootstrap": 0.3, "p_mcnemar": 0.5, "a_only": 1, "b_only": 0}},
                     {"name": "pass@4", "what": "", "cells": {"all": dict(cell, mean=0.75)}}]}


def _rows():
    sft = MethodRow(name="sft", method="sft", status="ok", seed=0,
                    train=TrainResult(status="ok", global_step=3, seconds=2.0),
                    eval=EvalResult(status="ok", questions=4, summary=_summary([0, 1, 0, 0]), per_question=_pq([0, 1, 0, 0])))
    sels = {name: {"summary": _summary(ex), "per_question": _pq(ex), "by_db": {"d1": {"n": 2, "ex": 0.5}}}
            for name, ex in (("vote+verifier", [1, 1, 0, 1]), ("vote", [1, 1, 0, 0]), ("greedy", [0, 1, 0, 0]))}
    ver = MethodRow(name="verifier", method="verifier", status="ok", seed=0,
                    train=TrainResult(status="ok", global_step=3, seconds=5.0, peak_rss_mb_training=321.0),
                    eval=EvalResult(status="ok", questions=4, summary=_summary([1, 1, 0, 1]), per_question=_pq([1, 1, 0, 1]),
                                    selections=sels, headroom=_headroom(),
                                    sampling={"n": 4, "temperature": 0.8, "select": "vote+verifier", "questions": 4,
                                              "generations": 16, "greedy_seconds": 2.0, "sample_seconds": 8.0,
                                              "select_seconds": 4.0}))
    ad = MethodRow(name="adapt", method="adapt", status="ok", seed=0,
                   train=TrainResult(status="ok", global_step=2, seconds=9.0, recipe_config={"half_a_questions": 11},
                                     recipe_summary={"adapt": {"adapted": {"questions": 9, "held_aside": 2,
                                                                           "rewards": ["consensus"], "steps": 2},
                                                               "early_stop": None, "changed_count": 1, "held_count": 2}}),
                   eval=EvalResult(status="ok", questions=4, summary=_summary([0, 1, 1, 0]), per_question=_pq([0, 1, 1, 0])))
    sft.eval.selections = {"vote": {"summary": _summary([1, 1, 0, 0]), "per_question": _pq([1, 1, 0, 0])},
                           "greedy": {"summary": _summary([0, 1, 0, 0]), "per_question": _pq([0, 1, 0, 0])}}
    sft.eval.sampling = {"n": 4, "temperature": 0.8, "select": "greedy", "questions": 4, "generations": 16,
                         "greedy_seconds": 1.0, "sample_seconds": 6.0, "select_seconds": 1.0}
    return [sft, ver, ad]


def test_selections_get_intervals_and_paired_tests_against_the_control():
    agg = summarize_seeds(_rows(), [0], "sft", replicates=200)
    names = [r.name for r in agg.rows]
    # a greedy row's headline is greedy itself: only its other selections get a row
    assert names == ["sft", "sft [vote]", "verifier", "verifier [vote]", "verifier [greedy]", "adapt"]
    by = {r.name: r for r in agg.rows}
    assert by["verifier"].ex["mean"] == 0.75 and by["verifier [vote]"].ex["mean"] == 0.5
    assert by["verifier [vote]"].vs_control["mean"] == pytest.approx(0.25)
    assert by["verifier [greedy]"].vs_control["mean"] == 0.0  # the start's greedy is the same file here
    assert by["verifier [vote]"].train_seconds == 5.0  # the row's training figures
    assert by["sft [vote]"].vs_control["mean"] == pytest.approx(0.25)


def test_report_shows_selection_headroom_and_adaptation(tmp_path):
    rows = _rows()
    rep = CompareReport(config={"budget": "steps", "budget_value": 3, "eval_split": "dev", "eval_half": "b",
                                "control": "sft"},
                        methods=rows, across_seeds=summarize_seeds(rows, [0], "sft", replicates=200))
    md = P.markdown(rep)
    assert "of half B (question_bucket >= 50" in md
    assert "## Selection among samples" in md
    assert "| verifier | vote+verifier * | 75.0 | 100.0 | 4 x 4 (T=0.8) | 16 | 8.0 | 2.000 |" in md
    assert "| verifier | vote | 50.0 | 100.0 | 4 x 4 (T=0.8) | 16 | 8.0 | 2.000 |" in md
    assert "| verifier | greedy | 25.0 | 100.0 | 1 x 4 | 4 | 2.0 | 0.500 |" in md
    assert "| sft | greedy * | 25.0 | 100.0 | 1 x 4 | 4 | 1.0 | 0.250 |" in md  # a trained row's EX is greedy
    assert "| sft | vote | 50.0 | 100.0 | 4 x 4 (T=0.8) | 16 | 6.0 | 1.500 |" in md
    assert "### Headroom: verifier: 4 questions, 4 samples each" in md
    assert "| vote@4 | 0.500 [0.20, 0.80] | +0.250 [+0.000, +0.500] p=0.5 |" in md
    assert "| pass@4 | 0.750 [0.20, 0.80] |  |" in md
    assert "## Label-free adaptation" in md and "| adapt | 11 | 9 | 2 | consensus | 2 | no | - | 1 of 2 |" in md
    assert "| verifier [vote] | 1 | 50.0" in md  # the across-seeds row of a selection
    page = P.html_page(rep)
    assert "<h2>Selection among samples</h2>" in page and "<h2>Label-free adaptation</h2>" in page
    assert "Headroom: verifier" in page
    # report.json round-trips the new fields
    paths = P.write_reports(rep, tmp_path)
    back = CompareReport.of(json.loads(paths["json"].read_text()))
    assert back.methods[1].eval.sampling["generations"] == 16 and back.methods[1].eval.headroom["n"] == 4
    assert P.markdown(back) == md


def test_a_report_without_the_new_rows_has_none_of_their_tables():
    rows = _rows()[:1]
    rows[0].eval.selections = rows[0].eval.sampling = None  # a plain greedy row (headroom_n: 0)
    md = P.markdown(CompareReport(config={"eval_half": "all"}, methods=rows, across_seeds=summarize_seeds(rows, [0], "sft")))
    assert "Selection among samples" not in md and "Headroom" not in md and "adaptation" not in md
    assert "half B" not in md


def test_adapt_table_shows_reward_weights_other_than_one():
    rows = _rows()
    rows[2].train.recipe_summary["adapt"]["adapted"].update(rewards=["consensus", "verifier"],
                                                            reward_weights={"consensus": 1.0, "verifier": 0.5})
    md = P.markdown(CompareReport(config={"budget": "steps", "budget_value": 3, "control": "sft"}, methods=rows))
    assert "| adapt | 11 | 9 | 2 | consensus, verifier x0.5 | 2 |" in md
