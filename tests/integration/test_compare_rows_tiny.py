"""`sqlcoach compare` with a `verifier` row and an `adapt` row beside the SFT control, a couple of
steps each, on a tiny model taught four answers (``taught_world``: its samples run and often agree,
so that the verifier has right and wrong candidates to learn from and adapt has consensus).

Checks: every row trains and is scored (and, with ``headroom_n``, also samples for its headroom
table while its EX stays greedy); the verifier row scores the START with every selection
from the same samples (headline, rules, greedy), carries its headroom table and its inference
cost; the adapt row adapted on half A only and every row is scored on half B (no question in
both); the report shows the selection, headroom and adaptation tables, and every selection has
its paired test against the control."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("peft")

from sqlcoach.config import build_config  # noqa: E402
from sqlcoach.config.compare import CompareConfig  # noqa: E402
from sqlcoach.pipelines.compare import jobs as J  # noqa: E402
from sqlcoach.pipelines.compare import run_compare  # noqa: E402
from taught_world import build_taught_world  # noqa: E402

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _config(root: Path, taught: Path) -> CompareConfig:
    return build_config(CompareConfig, dict(
        start=str(taught), world=str(root), budget="steps", budget_value=2, seed=0, eval_split="dev",
        eval_batch_size=8, max_new_tokens=16, eval_start=True, seen_eval_limit=0, device="cpu", threads=1,
        headroom_n=2,
        methods=[
            {"name": "sft", "method": "sft", "config": "configs/sft/demo.yaml",
             "overrides": {"per_device_train_batch_size": 4, "logging_steps": 1, "disable_tqdm": True,
                           "lr_scheduler_type": "constant", "max_examples": 8}},
            {"name": "verifier", "method": "verifier", "config": "configs/verifier/demo.yaml", "n": 4, "temperature": 1.0,
             "overrides": {"k": 8, "temperature": 0.8, "max_new_tokens": 16, "per_device_train_batch_size": 4,
                           "logging_steps": 1, "max_length": 256, "result_budget": 64, "holdout": 0.25,
                           "ran_only": False, "generation_batch_size": 8, "disable_tqdm": True}},
            {"name": "adapt", "method": "adapt",
             "overrides": {"num_generations": 4, "questions_per_step": 2, "max_completion_length": 12,
                           "learning_rate": 1e-3, "min_share": 0.25, "held_percent": 30, "check_every": 1,
                           "stop_drop": 1.0, "max_identical": 1.0, "max_empty_rise": 1.0, "reward_workers": 0,
                           "overrides": {"logging_steps": 1}}},
        ]))


def test_verifier_and_adapt_rows_beside_sft(tmp_path):
    root = tmp_path / "world"
    root.mkdir()
    _, _, taught = build_taught_world(root)
    cfg = _config(root, taught)
    assert cfg.eval_half == "b"
    cwd = os.getcwd()
    os.chdir(ROOT)  # recipe config paths are relative to the repository
    try:
        report = run_compare(cfg, tmp_path / "out", log=print)
    finally:
        os.chdir(cwd)
    rows = {r.name: r for r in report.methods}
    for r in rows.values():
        assert r.ok, (r.name, r.status, (r.train.log if r.train else None), (r.eval.log if r.eval else None))

    job = dict(data_kind="spider", world=str(root), eval_split="dev", eval_limit=None, eval_half="b")
    half_b = J.eval_examples(job)
    half_a = [json.loads(x)["question"] for x in (tmp_path / "out/methods/adapt/half_a.jsonl").read_text().splitlines()]
    assert half_a and not set(half_a) & {e.question for e in half_b}  # never scored on what it adapted on
    assert set(half_a) == {e.question for e in J.adapt_questions(job)}
    assert "SELECT" not in (tmp_path / "out/methods/adapt/half_a.jsonl").read_text()  # no SQL in the file at all
    assert all(r.eval.questions == len(half_b) for r in rows.values())  # every row on half B

    v = rows["verifier"]
    assert v.train.global_step == 2 and v.train.seconds is not None and v.train.peak_process_rss_mb > 100
    assert v.train.recipe_summary["mined"]["rows"] > 0
    sels = v.eval.selections
    assert set(sels) == {"first", "vote", "vote-nonempty", "verifier", "vote+verifier", "greedy"}
    assert v.eval.ex == sels["vote+verifier"]["summary"]["all"]["ex"]  # the headline selection is the row's EX
    sp = v.eval.sampling
    assert sp["n"] == 4 and sp["generations"] == 4 * len(half_b) and sp["sample_seconds"] > 0
    assert v.eval.headroom["n"] == 4 and {r["name"] for r in v.eval.headroom["rows"]} >= {
        "greedy", "vote@4", "verifier@4", "vote+verifier@4", "pass@1", "pass@4"}
    # each selection's scored picks agree with the headroom table's row of the same rule (two code paths)
    head = {r["name"]: r["cells"]["all"]["mean"] for r in v.eval.headroom["rows"]}
    for sel in ("first", "vote", "vote-nonempty", "verifier", "vote+verifier"):
        assert sels[sel]["summary"]["all"]["ex"] == pytest.approx(head[f"{sel}@4"]), sel
    assert head["greedy"] == pytest.approx(sels["greedy"]["summary"]["all"]["ex"])
    # the greedy selection is the start's greedy answer: the same outcomes as the start row
    assert sels["greedy"]["per_question"]["ex"] == rows["start"].eval.per_question["ex"]
    samples = [json.loads(x) for x in (tmp_path / "out/methods/verifier/pred.jsonl").read_text().splitlines()]
    assert all(len(s["samples"]) == 4 for s in samples)

    a = rows["adapt"]
    assert a.train.global_step >= 1 and a.train.recipe_summary["adapt"]["adapted"]["questions"] >= 1
    assert Path(a.train.final_dir).is_dir() and a.train.reward_curve

    # headroom_n: every other row also sampled, its EX stays greedy, its headroom table is there
    for name in ("start", "sft", "adapt"):
        ev = rows[name].eval
        assert ev.sampling["n"] == 2 and ev.sampling["select"] == "greedy" and ev.headroom["n"] == 2, name
        assert ev.ex == ev.selections["greedy"]["summary"]["all"]["ex"]
        assert set(ev.selections) == {"first", "vote", "vote-nonempty", "greedy"}
        head = {r["name"]: r["cells"]["all"]["mean"] for r in ev.headroom["rows"]}
        assert ev.selections["vote"]["summary"]["all"]["ex"] == pytest.approx(head["vote@2"])

    names = {r.name: r for r in report.across_seeds.rows}
    assert {"verifier", "verifier [vote]", "verifier [greedy]", "adapt", "sft [vote]", "start [vote]"} <= set(names)
    assert "sft [greedy]" not in names  # a greedy row's own EX is not repeated
    assert names["verifier [vote]"].vs_control is not None and names["adapt"].vs_control is not None
    md = (tmp_path / "out" / "report.md").read_text()
    for heading in ("## Selection among samples", "### Headroom: verifier", "### Headroom: sft", "## Label-free adaptation",
                    "of half B"):
        assert heading in md
    print(md)
