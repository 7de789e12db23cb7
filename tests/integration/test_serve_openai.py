"""A real `sqlcoach serve` process on 127.0.0.1 and the official `openai` client: models list,
chat, streaming, completions, the API key; `sqlcoach ask` against it (--url) and on its own (--model)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import serve_fixture as sf  # noqa: E402
from serve_process import ServeProcess  # noqa: E402

from sqlcoach.cli import main  # noqa: E402

pytestmark = pytest.mark.integration
KEY = "test-key-123"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-openai")
    model = sf.taught_model(root / "model")
    dbs = sf.make_databases(root / "dbs")
    with ServeProcess(model, "--databases", str(dbs), "--api-key", KEY, "--served-model-name", "taught",
                      "--max-tokens", "32", log=root / "serve.log") as srv:
        yield srv, model, dbs


def test_openai_client_models_chat_stream_completions(setup):
    srv, _, _ = setup
    client = openai.OpenAI(base_url=srv.url + "/v1", api_key=KEY, max_retries=0, timeout=60)
    assert [m.id for m in client.models.list().data] == ["taught"]
    chat = client.chat.completions.create(model="taught", messages=[{"role": "user", "content": "Hello?"}],
                                          max_tokens=16, temperature=0)
    text = chat.choices[0].message.content
    assert isinstance(text, str) and chat.usage.completion_tokens <= 16
    assert chat.choices[0].finish_reason in ("stop", "length")
    pieces = []
    for ev in client.chat.completions.create(model="taught", messages=[{"role": "user", "content": "Hello?"}],
                                             max_tokens=16, temperature=0, stream=True):
        if ev.choices and ev.choices[0].delta.content:
            pieces.append(ev.choices[0].delta.content)
    assert "".join(pieces) == text and len(pieces) >= 2  # streamed in pieces, the same greedy text
    comp = client.completions.create(model="taught", prompt="SELECT", max_tokens=5)
    assert comp.usage.completion_tokens <= 5
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="taught", messages=[{"role": "user", "content": "x"}], max_tokens=10**6)
    bad = openai.OpenAI(base_url=srv.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_binds_to_loopback_by_default(setup):
    psutil = pytest.importorskip("psutil")
    srv, _, _ = setup
    listening = [c.laddr for c in psutil.Process(srv.proc.pid).net_connections() if c.status == "LISTEN"]
    assert listening and all(a.ip == "127.0.0.1" for a in listening), listening
    assert "on http://127.0.0.1:" in srv.log.read_text()


def test_ask_against_the_server_prints_sql_and_table(setup, capsys):
    srv, _, dbs = setup
    db = str(dbs / "concert" / "concert.sqlite")
    assert main(["ask", "--db", db, "Who are the singers, youngest first?", "--url", srv.url, "--api-key", KEY]) == 0
    out = capsys.readouterr().out
    assert f"SQL: {sf.TAUGHT_SQL}" in out and "| name" in out and "| Bo " in out and "4 rows" in out
    assert main(["ask", "--db", db, "ages?", "--url", srv.url, "--api-key", KEY, "--json"]) == 0
    a = json.loads(capsys.readouterr().out)
    assert a["columns"] == ["name", "age"] and a["rows"][0] == ["Bo", 25] and a["error"] is None
    assert main(["ask", "--db", db, "x", "--url", srv.url, "--api-key", "nope"]) == 2
    assert "401" in capsys.readouterr().err


def test_ask_with_a_local_model_and_a_questions_file(setup, tmp_path, capsys):
    _, model, dbs = setup
    qs = tmp_path / "q.txt"
    qs.write_text("# my questions\nWho sings?\n\nList the singers by age\n")
    db = str(dbs / "concert" / "concert.sqlite")
    assert main(["ask", "--db", db, "--questions", str(qs), "--model", str(model), "--json",
                 "--max-new-tokens", "24"]) == 0
    docs = json.loads(capsys.readouterr().out)
    assert [d["question"] for d in docs] == ["Who sings?", "List the singers by age"]
    assert all(d["sql"] == sf.TAUGHT_SQL and len(d["rows"]) == 4 for d in docs)


def test_unsupported_fields_are_400_through_the_openai_client(setup):
    """What the openai client sends for tools, tool results, logprobs, JSON mode and penalties is
    refused with OpenAI's error shape (BadRequestError carrying param and code), not ignored."""
    srv, _, _ = setup
    client = openai.OpenAI(base_url=srv.url + "/v1", api_key=KEY, max_retries=0, timeout=60)
    user = [{"role": "user", "content": "How many singers?"}]
    call = {"id": "call_1", "type": "function", "function": {"name": "run_sql", "arguments": "{\"sql\": \"SELECT 1\"}"}}
    tool = {"type": "function", "function": {"name": "run_sql", "description": "run SQL",
                                             "parameters": {"type": "object", "properties": {"sql": {"type": "string"}}}}}
    cases = [
        ({"tools": [tool]}, "tools"),
        ({"messages": [*user, {"role": "assistant", "content": None, "tool_calls": [call]},
                       {"role": "tool", "tool_call_id": "call_1", "content": "4"}]}, "messages"),
        ({"logprobs": True, "top_logprobs": 2}, "logprobs"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
    ]
    for extra, param in cases:
        kwargs = {"model": "taught", "messages": user, "max_tokens": 8, **extra}
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(**kwargs)
        err = info.value
        assert err.status_code == 400 and err.param == param and err.code == "unsupported_parameter", (extra, err.body)
        assert "not supported" in err.message
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="taught", prompt="SELECT", max_tokens=4, echo=True)
    assert info.value.param == "echo"
    # seed is implemented: a sampled, seeded request gives the same text twice; penalties at 0 pass
    same = [client.chat.completions.create(model="taught", messages=user, max_tokens=12, temperature=1.5, seed=11,
                                           presence_penalty=0, frequency_penalty=0).choices[0].message.content
            for _ in range(2)]
    assert same[0] == same[1]
