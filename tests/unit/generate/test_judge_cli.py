"""`sqlcoach judge` through the CLI against a fake judge endpoint (tests/fake_openai.py): the
plumbing (prompt filled from the template, replies parsed, malformed ones counted, EX computed
by the scorer, confusion table, resume) is real; the fake's scores are not judgement."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from fake_openai import FakeOpenAI, judge_responder, script  # noqa: E402

from sqlcoach.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from sqlcoach.data.world import build_world

    out = tmp_path_factory.mktemp("w") / "world"
    build_world(out, seed=0, n_train=20, n_dev=10, progress=False)
    return out


def _preds(world, tmp_path):
    golds = [ln.split("\t")[0] for ln in (world / "dev_gold.sql").read_text().splitlines()]
    preds = [g if i % 2 == 0 else "SELECT 1" for i, g in enumerate(golds)]  # half right, half wrong
    p = tmp_path / "pred.sql"
    p.write_text("\n".join(preds) + "\n")
    return p


def test_judge_cli_with_fake_judge(world, tmp_path, capsys):
    pred = _preds(world, tmp_path)
    out = tmp_path / "judge"
    args = ["judge", "--pred", str(pred), "--gold", str(world / "dev_gold.sql"), "--questions", str(world / "dev.json"),
            "--db", str(world / "database"), "--table", str(world / "tables.json"), "--model", "judge",
            "--out", str(out), "--concurrency", "1"]
    with FakeOpenAI(judge_responder) as srv:
        assert main([*args, "--url", srv.base_url]) == 0
        printed = capsys.readouterr().out
        prompt = srv.requests[0]["messages"][0]["content"]
        assert "Question: " in prompt and "Gold SQL: SELECT" in prompt
        schema_text = prompt.split("Schema:\n", 1)[1].split("\n\nQuestion:", 1)[0]
        assert len(schema_text) > 20  # the database's schema was read and shown
        n_req = len(srv.requests)
        assert n_req == 10
        # resume: every reply is kept (the malformed one too: it was a reply), nothing asked again
        assert main([*args, "--url", srv.base_url, "--resume"]) == 0
        assert len(srv.requests) == n_req
    summary = json.loads((out / "summary.json").read_text())
    assert summary["examples"] == 10 and summary["judged"] == 9 and summary["malformed_replies"] == 1
    assert summary["ex"] == 0.5
    c = summary["confusion"]
    assert c["compared"] == 9 and c["agreement"] == 1.0  # the fake scores by string match with the gold
    assert "judged 9 of 10 outputs; malformed replies 1" in printed and "Cohen's kappa" in printed
    recs = [json.loads(x) for x in (out / "judge.jsonl").read_text().splitlines()]
    assert len(recs) == 10 and sum(1 for r in recs if not r["scores"]["ok"]) == 1


def test_judge_request_errors_are_counted_and_resumed(world, tmp_path, capsys):
    pred = _preds(world, tmp_path)
    out = tmp_path / "judge2"
    args = ["judge", "--pred", str(pred), "--gold", str(world / "dev_gold.sql"), "--questions", str(world / "dev.json"),
            "--db", str(world / "database"), "--model", "judge", "--out", str(out), "--limit", "4",
            "--max-retries", "0"]
    with FakeOpenAI(script(("status", 500, "down"))) as srv:
        assert main([*args, "--url", srv.base_url]) == 0
    assert "request errors: server_error 4" in capsys.readouterr().out
    with FakeOpenAI(judge_responder) as srv:
        # a different URL is a different judge: everything is asked (and nothing was kept anyway)
        assert main([*args, "--url", srv.base_url, "--resume"]) == 0
        assert len(srv.requests) == 4
    assert json.loads((out / "summary.json").read_text())["judged"] == 4


def test_judge_bad_inputs(world, tmp_path, capsys):
    pred = _preds(world, tmp_path)
    base = ["judge", "--pred", str(pred), "--gold", str(world / "dev_gold.sql"), "--db", str(world / "database"),
            "--url", "http://127.0.0.1:9/v1", "--model", "m", "--out", str(tmp_path / "j")]
    short = tmp_path / "q.txt"
    short.write_text("only one question\n")
    assert main([*base, "--questions", str(short)]) == 2
    assert "1 questions for 10 gold queries" in capsys.readouterr().err
    tpl = tmp_path / "t.txt"
    tpl.write_text("nothing to fill")
    assert main([*base, "--questions", str(world / "dev.json"), "--template", str(tpl)]) == 2
    assert "{prediction}" in capsys.readouterr().err
