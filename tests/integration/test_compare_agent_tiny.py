"""compare's evaluation in agent mode on a real (tiny, taught) model, in process: the evaluation
child (``jobs._child_eval``) with an ``agent`` block runs ``predict --agent`` and scores the final
answers. The model was taught bare SQL, so with ``untagged: solution`` and no instruction every
trajectory is one turn: the agent row must then give the single-pass row's prediction file byte
for byte and its EX, with the trajectory figures (1 turn, no query, an answer wherever the single
pass had SQL). About 10 seconds on a CPU."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from sqlcoach.config import build_config  # noqa: E402
from sqlcoach.config.compare import CompareConfig  # noqa: E402
from sqlcoach.pipelines.compare import jobs as J  # noqa: E402
from sqlcoach.pipelines.compare import run as R  # noqa: E402
from taught_world import build_taught_world  # noqa: E402

pytestmark = pytest.mark.integration
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def test_agent_row_equals_single_pass_when_every_turn_answers(tmp_path):
    root = tmp_path / "world"
    root.mkdir()
    _, _, taught = build_taught_world(root)
    agent = {"max_turns": 2, "untagged": "solution", "instruction": False, "max_total_tokens": 64}
    cfg = build_config(CompareConfig, dict(start=str(taught), world=str(root), eval_split="dev", eval_batch_size=8,
                                           max_new_tokens=16, device="cpu", eval_agent=agent,
                                           methods=[{"name": "sft", "method": "sft"}]))
    base = dict(R._job_base(cfg, taught, root), **R._start_prompt(cfg, taught, lambda m: None), model=str(taught))
    single = J._child_eval(dict(base, name="single", pred_path=str(tmp_path / "single" / "pred.sql")))
    as_agent = J._child_eval(dict(base, name="agent", pred_path=str(tmp_path / "agent" / "pred.sql"),
                                  agent=R.dataclasses.asdict(cfg.eval_agent)))
    assert single.status == as_agent.status == "ok" and single.agent is None
    assert (tmp_path / "agent" / "pred.sql").read_text() == (tmp_path / "single" / "pred.sql").read_text()
    assert as_agent.ex == single.ex and as_agent.per_question == single.per_question and single.ex > 0
    a = as_agent.agent
    n = as_agent.questions
    assert a["settings"]["max_turns"] == 2 and a["mean_turns"] == 1.0 and a["queries_run"] == 0
    # a turn with SQL is the answer (the single pass's line); one without any is a malformed turn whose
    # error observation fills the trajectory's tokens: no answer, as the single pass's empty line
    answered = sum(1 for line in (tmp_path / "single" / "pred.sql").read_text().splitlines() if line.strip())
    assert a["answered"] == a["finish"]["solution"] == answered > 0
    assert sum(a["finish"].values()) == n and set(a["finish"]) <= {"solution", "length"}
    assert a["recoveries"] == 0 and a["first_query_failed"] == 0  # no trajectory ran a query first
    assert (tmp_path / "agent" / "pred.jsonl").is_file()  # every turn kept
