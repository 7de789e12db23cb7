"""What the page of `sqlcoach serve` uses besides /v1/sql: the schema of a served database, the
user's own (edited) SQL run in the same sandbox, and the 404 that names every served database;
and the request fields the server does not implement, answered 400 instead of silently ignored."""

from __future__ import annotations

import sqlite3

import pytest
from test_serve_sql import HOSTILE_SQL, checksums

import serve_fixture as sf


def test_schema_of_a_served_database(tiny_dir, make_client):
    client, _ = make_client(tiny_dir)
    s = client.get("/v1/databases/concert/schema").json()
    assert s["database"] == "concert" and [t["name"] for t in s["tables"]] == ["singer"]
    singer = s["tables"][0]
    assert singer["rows"] == len(sf.SINGER_ROWS)
    assert [(c["name"], c["type"], c["primary_key"]) for c in singer["columns"]] == [
        ("singer_id", "INTEGER", True), ("name", "TEXT", False), ("age", "INTEGER", False), ("country", "TEXT", False)]
    assert set(singer["columns"][1]["samples"]) <= {n for _, n, _, _ in sf.SINGER_ROWS}
    assert singer["columns"][1]["samples"]
    assert s["foreign_keys"] == []


@pytest.mark.parametrize("name", ["nope", "..", "concert.sqlite", "%2e%2e%2fdbs"])
def test_schema_of_an_unknown_database_is_404(tiny_dir, make_client, name):
    client, _ = make_client(tiny_dir)
    r = client.get(f"/v1/databases/{name}/schema")
    assert r.status_code == 404, r.text
    assert r.json()["error"]["code"] in ("database_not_found", None)


def test_the_404_names_every_database(tiny_dir, make_client, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    names = [f"db{i:02d}" for i in range(23)]
    for n in names:
        sqlite3.connect(folder / f"{n}.sqlite").close()
    client, _ = make_client(tiny_dir, databases=str(folder))
    r = client.post("/v1/sql", json={"database": "nope", "question": "x"})
    assert r.status_code == 404
    msg = r.json()["error"]["message"]
    assert all(n in msg for n in names), msg


def test_edited_sql_runs_in_the_sandbox(tiny_dir, make_client):
    client, _ = make_client(tiny_dir)
    a = client.post("/v1/sql/execute", json={"database": "concert",
                                              "sql": "SELECT name FROM singer WHERE age > 30 ORDER BY name"}).json()
    assert a["error"] is None and a["columns"] == ["name"] and a["rows"] == [["Ana"], ["Chen"]]
    assert a["generation_seconds"] == 0 and a["seconds"] == a["execution_seconds"] >= 0
    bad = client.post("/v1/sql/execute", json={"database": "concert", "sql": "SELECT nope FROM singer"}).json()
    assert bad["rows"] == [] and bad["error"].startswith("exec_error")
    for body in ({"database": "concert", "sql": ""}, {"database": "concert"}, {"sql": "SELECT 1"}):
        r = client.post("/v1/sql/execute", json=body)
        assert r.status_code == 400, (body, r.text)
    r = client.post("/v1/sql/execute", json={"database": "../concert", "sql": "SELECT 1"})
    assert r.status_code == 404


def test_hostile_edited_sql_changes_nothing(tiny_dir, make_client, databases, tmp_path):
    outside = sf.make_databases(tmp_path / "outside") / "shop.sqlite"
    outside_new = tmp_path / "outside" / "new.sqlite"
    client, _ = make_client(tiny_dir, sql_timeout=1.0)
    before, outside_before = checksums(databases), checksums(outside.parent)
    for sql in HOSTILE_SQL:
        sql = sql.format(outside=outside, outside_new=outside_new)
        r = client.post("/v1/sql/execute", json={"database": "concert", "sql": sql})
        assert r.status_code == 200, r.text
        a = r.json()
        assert a["error"] and a["rows"] == [], (sql, a)  # refused, or stopped by a cap or the deadline
    assert checksums(databases) == before
    assert checksums(outside.parent) == outside_before and not outside_new.exists()


CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


@pytest.mark.parametrize("extra, param", [
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"functions": [{"name": "f"}]}, "functions"),
    ({"logprobs": True}, "logprobs"),
    ({"top_logprobs": 3}, "top_logprobs"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}}, "response_format"),
    ({"presence_penalty": 0.5}, "presence_penalty"),
    ({"frequency_penalty": -1.0}, "frequency_penalty"),
    ({"logit_bias": {"42": 10}}, "logit_bias"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "tool", "content": "42", "tool_call_id": "c1"}]},
     "messages"),
    ({"messages": [{"role": "user", "content": "hi"},
                   {"role": "assistant", "content": None,
                    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]},
     "messages"),
])
def test_unsupported_chat_fields_are_400(tiny_dir, make_client, extra, param):
    client, _ = make_client(tiny_dir)
    r = client.post("/v1/chat/completions", json={**CHAT, **extra})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and err["code"] == "unsupported_parameter" and err["type"] == "invalid_request_error"
    assert "not supported" in err["message"]


@pytest.mark.parametrize("extra, param", [
    ({"echo": True}, "echo"), ({"suffix": "x"}, "suffix"), ({"best_of": 3}, "best_of"), ({"logprobs": 2}, "logprobs"),
    ({"presence_penalty": 1}, "presence_penalty"),
])
def test_unsupported_completion_fields_are_400(tiny_dir, make_client, extra, param):
    client, _ = make_client(tiny_dir)
    r = client.post("/v1/completions", json={"model": "tiny", "prompt": "SELECT", "max_tokens": 4, **extra})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


def test_neutral_values_of_unsupported_fields_are_accepted(tiny_dir, make_client):
    """What clients send by default (LangChain, DB-GPT): zero penalties, no tools, text format."""
    client, _ = make_client(tiny_dir)
    r = client.post("/v1/chat/completions", json={
        **CHAT, "presence_penalty": 0, "frequency_penalty": 0.0, "logprobs": False, "tools": [], "tool_choice": "none",
        "response_format": {"type": "text"}, "logit_bias": {}, "seed": 3})
    assert r.status_code == 200, r.text


def test_a_seeded_sampled_request_is_reproducible(tiny_dir, make_client):
    client, server = make_client(tiny_dir)
    body = {**CHAT, "max_tokens": 24, "temperature": 1.5}
    texts = [client.post("/v1/chat/completions", json={**body, "seed": s}).json()["choices"][0]["message"]["content"]
             for s in (7, 7, 8, 7)]
    assert texts[0] == texts[1] == texts[3] and len(texts[0]) > 0
    assert len({client.post("/v1/chat/completions", json={**body, "seed": s}).json()["choices"][0]["message"]["content"]
                for s in range(5)}) > 1  # the seed matters: a random-init model samples different texts


def test_seeded_jobs_are_generated_alone():
    """Two seeded sampled jobs never share a batch (their text would depend on each other)."""
    from sqlcoach.serve.engine import Engine, GenParams, Job, JobResult

    batches: list[int] = []
    done: list[object] = []

    def fake(model, tok, jobs):
        batches.append(len(jobs))
        return [JobResult("x", "stop", 1, 1, 0.0) for _ in jobs]

    import threading
    import time

    gate = threading.Event()

    def slow_first(model, tok, jobs):
        gate.wait(5)
        return fake(model, tok, jobs)

    eng = Engine(None, None, max_batch=8, batch_fn=slow_first)
    try:
        mk = lambda seed: Job([1], GenParams(4, temperature=1.0, seed=seed), time.monotonic() + 30, done.append)  # noqa: E731
        eng.submit(Job([1], GenParams(4), time.monotonic() + 30, done.append))  # greedy: holds the thread
        time.sleep(0.2)
        for seed in (1, 1, 2, None, None):
            eng.submit(mk(seed))
        gate.set()
        deadline = time.monotonic() + 10
        while len(done) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        eng.close()
    assert len(done) == 6
    assert batches == [1, 1, 1, 1, 2]  # greedy alone, each seeded job alone, the two unseeded together
