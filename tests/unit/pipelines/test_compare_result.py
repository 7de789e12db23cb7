"""The comparison's typed results (``pipelines.compare.result``) and the report's one table model."""

from __future__ import annotations

import json

from sqlcoach.pipelines.compare.report import Table
from sqlcoach.pipelines.compare.result import CompareReport, EvalResult, MethodRow, TrainResult, summarize_seeds

OK_ROW = {
    "name": "sft", "method": "sft", "config_hash": "abc", "seed": 0, "config": {"name": "sft"}, "status": "ok",
    "train": {"status": "ok", "final_dir": "/x/final", "global_step": 3, "seconds": 1.5, "peak_process_rss_mb": 100.0,
              "reward_curve": [[1, 0.1], [2, 0.3]], "train_hash": "t", "prepare_seconds": None},
    "eval": {"status": "ok", "questions": 4, "summary": {"all": {"ex": 0.5, "em": 0.25, "scored": 4},
                                                        "by_hardness": {"hard": {"ex": 0.0, "em": 0.0}}, "executes": 0.75},
             "per_question": {"ex": [1, 0, 1, 0], "hardness": ["easy", "hard", "medium", "extra"],
                              "db_id": ["a", "a", "b", "b"], "error": [None] * 4},
             "by_db": {"a": {"n": 2, "ex": 0.5}, "b": {"n": 2, "ex": 0.5}}, "process_seconds": 3.0},
}


def test_a_result_file_of_any_age_loads_and_writes_back_what_it_read():
    row = MethodRow.from_dict(json.loads(json.dumps(OK_ROW)))
    assert isinstance(row.train, TrainResult) and isinstance(row.eval, EvalResult)
    assert (row.eval.ex, row.eval.em, row.eval.executes, row.eval.at("hard"), row.train.last_reward()) == (0.5, 0.25, 0.75, 0.0, 0.3)
    assert row.total_seconds() == 3.0  # no preparation, no training process time recorded: the evaluation's
    # a key this version does not know is kept, in place of being dropped
    future = dict(OK_ROW, eval=dict(OK_ROW["eval"], judge_score=0.9))
    assert MethodRow.from_dict(future).as_dict()["eval"]["judge_score"] == 0.9
    # a failed run writes only what it has; an ok one every field of the schema
    failed = MethodRow.from_dict({"name": "ppo", "method": "ppo", "status": "failed: boom",
                                  "train": {"status": "failed: boom", "log": "/x/train.log"}})
    assert failed.as_dict() == {"name": "ppo", "method": "ppo", "status": "failed: boom",
                                "train": {"status": "failed: boom", "log": "/x/train.log"}}
    assert "generated_tokens" in MethodRow.from_dict(OK_ROW).as_dict()["eval"]
    assert "api" not in MethodRow.from_dict(OK_ROW).as_dict()["eval"]  # an optional field stays out while unset


def test_runs_without_per_question_outcomes_are_counted_not_scored():
    old = json.loads(json.dumps(OK_ROW))
    del old["eval"]["per_question"]  # a result written before per-question outcomes were kept
    agg = summarize_seeds([MethodRow.from_dict(OK_ROW), MethodRow.from_dict(dict(old, name="grpo"))], [0], "sft",
                          replicates=50)
    assert [r.name for r in agg.rows] == ["sft"] and agg.failed == {"grpo": 1} and agg.control == "sft"
    assert agg.rows[0].ex["questions"] == 4 and agg.rows[0].complex_ex["questions"] == 2
    rep = CompareReport.of({"methods": [OK_ROW], "across_seeds": agg.as_dict(), "config": {}})
    assert rep.questions() == 4 and rep.across_seeds.rows[0].name == "sft"


def test_one_table_model_two_renderers():
    t = Table(("method", "status", "EX"), [["a", "ok", "1.0"], ["b|c", "failed: x < y", "-"]],
              left=frozenset({0, 1}), bad={(1, 1)})
    md = t.markdown().splitlines()
    assert md[0] == "| method | status | EX |" and md[1] == "|---|---|---|" and md[3] == "| b\\|c | failed: x < y | - |"
    h = t.html("<h2>T</h2>")
    assert h[0] == "<h2>T</h2><table><tr><th>method</th><th>status</th><th>EX</th></tr>"
    assert h[2] == "<tr><td class='l'>b|c</td><td class='l bad'>failed: x &lt; y</td><td>-</td></tr>" and h[-1] == "</table>"
