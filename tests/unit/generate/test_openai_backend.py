"""The OpenAI-compatible client and the API prediction backend against a fake endpoint
(tests/fake_openai.py): retries on 429 (Retry-After honoured) and 5xx, garbage JSON, a hung
connection cut by the deadline, a dropped connection, token usage, resume keyed by content."""

from __future__ import annotations

import json
import random
import sqlite3
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from fake_openai import FakeOpenAI, script  # noqa: E402

from sqlcoach.errors import ConfigError  # noqa: E402
from sqlcoach.generate.api_backend import predict_api  # noqa: E402
from sqlcoach.generate.openai_client import ChatClient, parse_retry_after, run_requests  # noqa: E402
from sqlcoach.types import Example  # noqa: E402

MSG = [{"role": "user", "content": "say hi"}]


def fast_client(url, **kw):
    kw.setdefault("timeout", 2.0)
    kw.setdefault("max_retries", 3)
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("backoff_max", 0.05)
    return ChatClient(url, "fake-model", rng=random.Random(0), **kw)


@pytest.fixture()
def db(tmp_path):
    path = tmp_path / "shop.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, price INTEGER)")
    con.executemany("INSERT INTO item VALUES (?, ?, ?)", [(1, "pen", 3), (2, "cup", 7)])
    con.commit()
    con.close()
    return str(path)


def _examples(db, n=6):
    return [Example(id=f"e{i}", db_id="shop", question=f"question number {i}", gold_sql="SELECT 1", db_path=db)
            for i in range(n)]


def test_ok_records_text_usage_and_sends_the_openai_body():
    with FakeOpenAI(script(("ok", "SELECT 1", {"prompt_tokens": 11, "completion_tokens": 3}))) as srv:
        res = fast_client(srv.base_url, api_key="sk-test").chat(MSG, max_tokens=17, temperature=0.0, seed=5)
    assert res.ok and res.text == "SELECT 1" and res.attempts == 1
    assert (res.prompt_tokens, res.completion_tokens) == (11, 3)
    req = srv.requests[0]
    assert req["model"] == "fake-model" and req["messages"] == MSG and req["max_tokens"] == 17 and req["seed"] == 5
    assert srv.headers[0]["Authorization"] == "Bearer sk-test"


def test_429_then_200_retries_and_honours_retry_after():
    slept = []
    with FakeOpenAI(script(("status", 429, '{"error":"slow down"}', {"Retry-After": "0.2"}), ("ok", "SELECT 2"))) as srv:
        c = fast_client(srv.base_url, sleep=lambda s: (slept.append(s), time.sleep(s)))
        res = c.chat(MSG)
    assert res.ok and res.text == "SELECT 2" and res.attempts == 2
    assert res.waits == [0.2]  # Retry-After, not the (much shorter) jittered backoff
    assert len(srv.requests) == 2


def test_500_every_time_gives_server_error_after_all_retries():
    with FakeOpenAI(script(("status", 500, "boom"))) as srv:
        res = fast_client(srv.base_url, max_retries=2).chat(MSG)
    assert res.error == "server_error" and res.attempts == 3 and res.status == 500
    assert len(res.waits) == 2 and all(0 <= w <= 0.05 for w in res.waits)
    assert "after 3 attempts" in res.message


def test_garbage_json_is_bad_response_not_retried():
    with FakeOpenAI(script(("garbage", b"<html>oops</html>"))) as srv:
        res = fast_client(srv.base_url).chat(MSG)
    assert res.error == "bad_response" and res.attempts == 1 and "not JSON" in res.message
    with FakeOpenAI(script(("garbage", b'{"choices": []}'))) as srv:
        res = fast_client(srv.base_url).chat(MSG)
    assert res.error == "bad_response"


def test_hung_connection_is_cut_at_the_deadline():
    with FakeOpenAI(script(("hang", 5.0))) as srv:
        t0 = time.monotonic()
        res = fast_client(srv.base_url, timeout=0.3, max_retries=1).chat(MSG)
        took = time.monotonic() - t0
    assert res.error == "timeout" and res.attempts == 2
    assert took < 2.0  # two attempts of 0.3 s plus a short backoff, not 5 s each


def test_dropped_connection_and_refused_port_are_connection_errors():
    with FakeOpenAI(script(("drop",), ("ok", "SELECT 3"))) as srv:
        res = fast_client(srv.base_url).chat(MSG)
    assert res.ok and res.attempts == 2
    with FakeOpenAI(script(("ok", "x"))) as srv:
        url = srv.base_url
    res = fast_client(url, max_retries=1).chat(MSG)  # the server is gone: refused
    assert res.error == "connection" and res.attempts == 2


def test_404_is_not_retried_and_hints_at_v1():
    with FakeOpenAI(script(("status", 404, "nope"))) as srv:
        res = fast_client(srv.base_url).chat(MSG)
    assert res.error == "http_error" and res.attempts == 1 and "/v1" in res.message


def test_retry_after_parsing_and_bad_urls():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("garbage") is None and parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: no wait
    with pytest.raises(ConfigError, match="http"):
        ChatClient("localhost:8000", "m")
    with pytest.raises(ConfigError, match="model"):
        ChatClient("http://127.0.0.1:1/v1", "")


def test_run_requests_bounds_concurrency():
    import threading

    live, peak, lock = [0], [0], threading.Lock()

    def call(job):
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.02)
        with lock:
            live[0] -= 1
        if job == 3:
            raise RuntimeError("bug in a job")
        from sqlcoach.generate.openai_client import ChatResult

        return ChatResult(text=str(job))

    got = {}
    run_requests(range(12), call, lambda j, r: got.__setitem__(j, r), concurrency=3)
    assert sorted(got) == list(range(12)) and peak[0] <= 3
    assert got[3].error == "bad_response" and got[5].text == "5"


def test_max_rps_spaces_request_starts():
    with FakeOpenAI(script(("ok", "SELECT 1"))) as srv:
        c = fast_client(srv.base_url, max_rps=20)
        t0 = time.monotonic()
        for _ in range(5):
            c.chat(MSG)
        assert time.monotonic() - t0 >= 4 / 20 - 0.01


_Q0_SEEN: list[int] = []


def _faulty(req, n):
    """Per question: q0 429 then ok, q1 always 500, q2 garbage, q3 hangs, others ok."""
    q = json.dumps(req["messages"])
    if "question number 0" in q:
        _Q0_SEEN.append(n)
        return ("status", 429, "", {"Retry-After": "0.05"}) if len(_Q0_SEEN) == 1 else ("ok", "SELECT name FROM item")
    if "question number 1" in q:
        return ("status", 500, "boom")
    if "question number 2" in q:
        return ("garbage", b"not json at all")
    if "question number 3" in q:
        return ("hang", 3.0)
    return ("ok", "```sql\nSELECT price\nFROM item\n```", {"prompt_tokens": 40, "completion_tokens": 9})


def test_predict_api_fault_run_finishes_and_resume_loses_nothing(tmp_path, db):
    exs = _examples(db, 6)
    out = tmp_path / "pred.sql"
    healthy = [False]
    _Q0_SEEN.clear()

    def responder(req, n):
        return ("ok", "SELECT id FROM item") if healthy[0] else _faulty(req, n)

    with FakeOpenAI(responder) as srv:
        c = fast_client(srv.base_url, timeout=0.4, max_retries=2)
        s = predict_api(c, exs, out, concurrency=3, progress=False)
        lines = out.read_text().split("\n")[:6]
        recs = {r["index"]: r for r in map(json.loads, out.with_suffix(".jsonl").read_text().splitlines())}
        assert sorted(recs) == list(range(6))  # every example has a record
        assert recs[0]["error"] is None and recs[0]["attempts"] == 2 and lines[0] == "SELECT name FROM item"
        assert recs[1]["error"] == "server_error" and recs[1]["attempts"] == 3 and lines[1] == ""
        assert recs[2]["error"] == "bad_response" and lines[2] == ""
        assert recs[3]["error"] == "timeout" and lines[3] == ""
        assert recs[4]["sql"] == "SELECT price\nFROM item" and lines[4] == "SELECT price FROM item"
        assert recs[4]["usage"] == {"prompt_tokens": 40, "completion_tokens": 9}
        assert s.errors["server_error"] == 1 and s.errors["timeout"] == 1 and s.errors["bad_response"] == 1
        assert s.usage_known == 3 and s.completion_tokens == 9 + 9 + len("SELECT name FROM item".split())
        # resume once the endpoint is healthy: exactly the three failures are asked again
        healthy[0] = True
        before = len(srv.requests)
        s2 = predict_api(c, exs, out, concurrency=2, progress=False, resume=True)
        assert (s2.resumed, s2.predicted_now) == (3, 3) and len(srv.requests) == before + 3
        assert not any(s2.errors.values())
        lines = out.read_text().split("\n")[:6]
        assert lines[0] == "SELECT name FROM item" and lines[1] == lines[2] == lines[3] == "SELECT id FROM item"
        assert lines[4] == lines[5] == "SELECT price FROM item"
        assert len(out.with_suffix(".jsonl").read_text().splitlines()) == 6  # one record per example


def test_resume_reuses_only_successes_with_the_same_key(tmp_path, db):
    exs = _examples(db, 5)
    out = tmp_path / "pred.sql"
    calls = []

    def responder(req, n):
        q = json.dumps(req["messages"])
        calls.append(q)
        if "question number 2" in q and len(calls) <= 5:
            return ("status", 503, "busy")
        return ("ok", "SELECT name FROM item")

    with FakeOpenAI(responder) as srv:
        c = fast_client(srv.base_url, max_retries=0)
        s1 = predict_api(c, exs, out, concurrency=1, progress=False)
        assert s1.errors["server_error"] == 1
        n1 = len(srv.requests)
        # resume: the failed example only
        s2 = predict_api(c, exs, out, concurrency=1, progress=False, resume=True)
        assert (s2.resumed, s2.predicted_now) == (4, 1) and len(srv.requests) == n1 + 1
        assert s2.errors["server_error"] == 0
        assert out.read_text().split("\n")[:5] == ["SELECT name FROM item"] * 5
        # examples reordered and one added: matched by content, not position
        exs2 = [exs[4], exs[0], Example(id="new", db_id="shop", question="brand new", db_path=db), *exs[1:4]]
        s3 = predict_api(c, exs2, out, concurrency=1, progress=False, resume=True)
        assert (s3.resumed, s3.predicted_now) == (5, 1)
        # other decoding settings: a different key, nothing reused
        s4 = predict_api(c, exs2, out, concurrency=1, progress=False, resume=True, max_tokens=99)
        assert s4.resumed == 0 and s4.dropped == 6
        # a torn last line is reported and that example asked again
        jl = out.with_suffix(".jsonl")
        jl.write_text(jl.read_text() + '{"index": 9, "key": "tor')
        s5 = predict_api(c, exs2, out, concurrency=1, progress=False, resume=True, max_tokens=99)
        assert s5.resumed == 6 and len(s5.bad_lines) == 1 and "pred.jsonl:7" in s5.bad_lines[0]
