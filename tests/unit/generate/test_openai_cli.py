"""`sqlcoach predict --backend openai` then `sqlcoach evaluate`, through the CLI, against a fake
OpenAI-compatible endpoint that answers each question with its gold SQL (every 4th with a 503
first): the run finishes, EX is what the answers deserve, token usage is in the JSONL."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from fake_openai import FakeOpenAI, asked, dev_golds, tiny_world  # noqa: E402

from sqlcoach.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return tiny_world(tmp_path_factory.mktemp("w") / "world")


def gold_responder(world):
    golds = dev_golds(world)
    seen: dict[str, int] = {}

    def responder(req, n):
        q = asked(req, golds)
        seen[q] = seen.get(q, 0) + 1
        if list(golds).index(q) % 4 == 0 and seen[q] == 1:
            return ("status", 503, "warming up")
        return ("ok", f"```sql\n{golds[q]}\n```")

    return responder


def test_predict_openai_then_evaluate(world, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-secret")
    out = tmp_path / "api.sql"
    with FakeOpenAI(gold_responder(world)) as srv:
        rc = main(["predict", "--backend", "openai", "--base-url", srv.base_url, "--model", "served", "--data",
                   str(world), "--out", str(out), "--api-key-env", "MY_KEY", "--concurrency", "3",
                   "--max-retries", "2", "--request-timeout", "5"])
        assert rc == 0
        printed = capsys.readouterr().out
        assert "requested 8 examples" in printed and "2 retries" in printed and "errors: none" in printed
        assert "sk-secret" not in printed
        assert all(h["Authorization"] == "Bearer sk-secret" for h in srv.headers)
        assert srv.requests[0]["messages"][0]["role"] in ("system", "user")
    recs = [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines()]
    assert len(recs) == 8 and all(r["usage"]["prompt_tokens"] > 0 for r in recs)
    rc = main(["evaluate", "--gold", str(world / "dev_gold.sql"), "--pred", str(out), "--db", str(world / "database"),
               "--etype", "exec", "--quiet", "--workers", "0"])
    assert rc == 0 and "EX 1.0000" in capsys.readouterr().out


def test_predict_openai_bad_flags(world, tmp_path, capsys, monkeypatch):
    base = ["predict", "--backend", "openai", "--model", "m", "--data", str(world), "--out", str(tmp_path / "p.sql")]
    assert main(base) == 2
    assert "--base-url" in capsys.readouterr().err
    monkeypatch.delenv("NOPE_KEY", raising=False)
    assert main(base + ["--base-url", "http://127.0.0.1:9/v1", "--api-key-env", "NOPE_KEY"]) == 2
    assert "NOPE_KEY" in capsys.readouterr().err
    assert main(base + ["--base-url", "http://127.0.0.1:9/v1", "--n", "3"]) == 2
    assert main(base + ["--base-url", "127.0.0.1:9"]) == 2
