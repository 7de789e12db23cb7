"""compare in agent mode: a method's ``agent:`` and the comparison's ``eval_agent`` (validation,
which rows they reach, hashing that keeps older results resuming), the evaluation job that
carries them, and the report's [agent] mark and agent table (no torch)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlcoach.config.agent import AgentEval
from sqlcoach.config.compare import MethodSpec
from sqlcoach.errors import ConfigError
from sqlcoach.pipelines.compare import jobs as J
from sqlcoach.pipelines.compare import report as P
from sqlcoach.pipelines.compare import run as R
from sqlcoach.pipelines.compare.result import CompareReport, EvalResult, MethodRow
from test_compare_rows import _cfg  # the comparison of a start and a world in tmp_path, with these methods

SFT = {"name": "sft", "method": "sft"}
API = {"name": "api", "method": "api", "base_url": "http://127.0.0.1:1/v1", "model": "m"}


def test_a_method_agent_block_is_typed_and_reaches_only_its_row(tmp_path):
    cfg = _cfg(tmp_path, [dict(SFT, agent={"max_turns": 3, "protocol": "tools", "untagged": "solution"}),
                          {"name": "grpo", "method": "grpo"}, dict(SFT, name="sft1", agent=True)])
    sft, grpo, sft1 = cfg.methods
    assert sft.agent == AgentEval(max_turns=3, protocol="tools", untagged="solution")
    assert sft.agent_eval(cfg.eval_agent).env().max_turns == 3 and sft1.agent_eval() == AgentEval()
    assert grpo.agent_eval(cfg.eval_agent) is None and cfg.eval_agent is None


def test_eval_agent_reaches_every_local_row_but_the_opted_out(tmp_path):
    cfg = _cfg(tmp_path, [SFT, dict(SFT, name="single", agent=False), dict(SFT, name="own", agent={"max_turns": 2}), API],
               eval_agent={"max_turns": 4})
    sft, single, own, api = cfg.methods
    assert cfg.eval_agent == AgentEval(max_turns=4)
    assert sft.agent_eval(cfg.eval_agent) == AgentEval(max_turns=4)
    assert single.agent_eval(cfg.eval_agent) is None  # agent: false
    assert own.agent_eval(cfg.eval_agent).max_turns == 2  # its own block wins
    assert api.agent_eval(cfg.eval_agent) is None  # an endpoint is never run turn by turn
    assert _cfg(tmp_path, [dict(SFT, agent="false")]).methods[0].agent is False  # the override string


@pytest.mark.parametrize("entry, kw, message", [
    ({"agent": {"max_turn": 3}}, {}, r"method sft: agent: unknown key\(s\) \['max_turn'\]; known: "),
    ({"agent": {"max_turns": 0}}, {}, "agent max_turns must be an int >= 1, got 0"),
    ({"agent": {"protocol": "xml"}}, {}, "agent protocol must be one of tags, tools, review, got 'xml'"),
    ({"agent": {"max_total_tokens": 0}}, {}, "agent max_total_tokens must be an int >= 1"),
    ({"agent": {"instruction": "yes"}}, {}, "agent instruction must be true or false"),
    ({"agent": [3]}, {}, "method sft: agent must be a mapping of agent settings"),
    ({"agent": True}, {"headroom_n": 4}, r"headroom_n samples single-pass answers; the rows \['sft'\] are evaluated as agents"),
    ({}, {"eval_agent": {"on_limit": "gold"}}, "agent on_limit must be one of last_query, none"),
    ({}, {"eval_agent": True, "headroom_n": 2}, r"the rows \['start', 'sft'\] are evaluated as agents"),
])
def test_agent_settings_are_checked(tmp_path, entry, kw, message):
    with pytest.raises(ConfigError, match=message):
        _cfg(tmp_path, [dict(SFT, **entry)], **kw)


def test_agent_is_refused_where_no_policy_runs(tmp_path):
    with pytest.raises(ConfigError, match="method api: agent evaluation runs a local policy turn by turn; method api"):
        _cfg(tmp_path, [dict(API, agent=True)])
    with pytest.raises(ConfigError, match="method v: agent evaluation .* method verifier cannot take it"):
        _cfg(tmp_path, [{"name": "v", "method": "verifier", "agent": {"max_turns": 2}}])
    # headroom with eval_agent is fine when every agent row opted out and the start is not evaluated
    cfg = _cfg(tmp_path, [dict(SFT, agent=False)], eval_agent=True, headroom_n=2, eval_start=False)
    assert cfg.methods[0].agent_eval(cfg.eval_agent) is None


def test_agent_settings_are_evaluation_settings_in_the_hashes(tmp_path):
    plain = _cfg(tmp_path, [SFT])
    sft = plain.methods[0]
    # unset: not hashed (a comparison from before agent mode resumes)
    assert "eval_agent" not in R._shared_settings(plain)
    assert R.method_hash(plain, sft) == R.method_hash(plain, MethodSpec(name="sft", method="sft"))
    agented = _cfg(tmp_path, [SFT], eval_agent={"max_turns": 3})
    assert R._shared_settings(agented)["eval_agent"]["max_turns"] == 3
    assert R.method_hash(plain, sft) != R.method_hash(agented, sft)  # re-evaluated ...
    assert R.method_hash(plain, sft, training_only=True) == R.method_hash(agented, sft, training_only=True)  # ... not retrained
    own = _cfg(tmp_path, [dict(SFT, agent={"max_turns": 3})]).methods[0]
    assert R.method_hash(plain, own) != R.method_hash(plain, sft)
    assert R.method_hash(plain, own) != R.method_hash(plain, MethodSpec(name="sft", method="sft", agent={"max_turns": 4}))


class _Children:
    """``run_child`` stand-in: records each evaluation job's ``agent`` and answers as an agent run would."""

    def __init__(self):
        self.agent: dict[str, object] = {}

    def __call__(self, mode, job, job_dir, *, log=print, threads=1):
        name = job.get("name", "start")
        if mode == "train":
            final = Path(job["output_dir"]) / "final"
            final.mkdir(parents=True, exist_ok=True)
            return {"status": "ok", "final_dir": str(final), "global_step": 3, "seconds": 1.0}
        self.agent[name] = job.get("agent")
        out = {"status": "ok", "questions": 4, "summary": {"all": {"count": 4, "scored": 4, "ex": 0.5, "em": 0.0},
                                                           "executes": 0.75}}
        if job.get("agent"):
            out["agent"] = {"settings": job["agent"], "mean_turns": 1.75, "queries_run": 3, "answered": 4,
                            "finish": {"solution": 4}, "recoveries": 1, "first_query_failed": 2,
                            "generation_seconds": 2.5, "execution_seconds": 0.04}
        return out


def test_the_evaluation_job_carries_the_rows_agent_settings(tmp_path, monkeypatch):
    kids = _Children()
    monkeypatch.setattr(J, "run_child", kids)
    logs: list[str] = []
    cfg = _cfg(tmp_path, [SFT, dict(SFT, name="single", agent=False)], eval_agent={"max_turns": 3, "untagged": "solution"})
    rep = R.run_compare(cfg, tmp_path / "out", log=logs.append)
    assert kids.agent["start"]["max_turns"] == 3 and kids.agent["sft"]["untagged"] == "solution"
    assert kids.agent["single"] is None
    assert any("sft: evaluating" in m and "as an agent (tags, at most 3 turns)" in m for m in logs)
    assert any("agent: mean turns 1.75, 3 queries run, recoveries 1 of 2" in m for m in logs)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| sft (sft) [agent] |" not in md and "| sft [agent] |" in md and "| single |" in md
    assert "## Agent evaluation" in md
    assert "| sft | 50.0 | tags | 3 | 1.75 | 3 | 4 | 1 of 2 | solution 4 | 2.5 | 0.04 |" in md
    assert rep.methods[1].eval.agent["recoveries"] == 1


def test_the_child_refuses_headroom_with_an_agent():
    # the config layer refuses it first; a hand-written job gets the same one-line error
    with pytest.raises(ConfigError, match="cannot be combined with headroom_n"):
        J._child_eval({"name": "x", "agent": {"max_turns": 2}, "headroom_n": 4, "data_kind": "spider",
                       "world": "/nonexistent", "eval_split": "dev", "pred_path": "/tmp/x.sql", "device": "cpu"})


def test_a_report_without_agent_rows_has_no_agent_table():
    row = MethodRow(name="sft", method="sft", status="ok",
                    eval=EvalResult(status="ok", questions=2, summary={"all": {"ex": 0.5}}))
    md = P.markdown(CompareReport(config={}, methods=[row]))
    assert "Agent evaluation" not in md and "[agent]" not in md
