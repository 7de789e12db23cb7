"""POST /v1/sql with ``n`` candidates and a selection rule (a verifier loaded at start-up), and with
``"agent": true`` (turns through the engine, queries in the sandbox). The "model" is a scripted
batch function (``Engine``'s ``batch_fn``), so what each candidate or turn says is known; the
verifier is a fake with ``Verifier.score``. Bad values are 400s in OpenAI's error shape."""

from __future__ import annotations

import threading
import time

import pytest

import serve_fixture as sf
from fake_verifier import FakeVerifier, untrained_verifier
from test_serve_sql import checksums

Q = {"database": "concert", "question": "Who are the singers?"}


@pytest.fixture(scope="module")
def long_dir(tmp_path_factory):
    """The tiny model with room for the agent's prompt (its instruction is long in a 500-word vocabulary)."""
    return sf.tiny_model(tmp_path_factory.mktemp("serve-tiny-2k"), max_position_embeddings=2048)


class Script:
    """A batch_fn answering each job with the next scripted text (jobs are taken first in, first
    out); records the jobs' settings."""

    def __init__(self, texts, delay=0.0):
        self.texts = list(texts)
        self.delay = delay
        self.params = []
        self.lock = threading.Lock()

    def __call__(self, model, tok, jobs):
        from sqlcoach.serve.engine import JobResult

        time.sleep(self.delay)
        out = []
        with self.lock:
            for j in jobs:
                self.params.append(j.params)
                text = self.texts.pop(0) if self.texts else "<sql>SELECT 1</sql>"
                out.append(JobResult(text, "stop", len(j.prompt_ids), 3, 0.01))
        return out


OLD = "SELECT name FROM singer WHERE age > 30"
CANDIDATES = [OLD, "SELECT nme FROM singer", OLD, "SELECT name FROM singer"]


def assert_openai_400(r, param):
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert set(err) >= {"message", "type", "param", "code"} and err["message"]
    assert err["param"] == param, err
    return err


def test_n_candidates_voted_by_result(tiny_dir, make_client):
    script = Script(CANDIDATES)
    client, _ = make_client(tiny_dir, batch_fn=script)
    a = client.post("/v1/sql", json={**Q, "n": 4, "select": "vote"}).json()
    assert (a["select"], a["chosen"], a["sql"]) == ("vote", 0, OLD)
    assert a["votes"] == [2, 0, 2, 1] and a["score"] is None
    assert a["rows"] == [["Ana"], ["Chen"]] and a["error"] is None
    assert [c["error"] for c in a["candidates"]] == [None, "exec_error", None, None]
    assert [c["rows"] for c in a["candidates"]] == [2, None, 2, 4]
    assert all(p.temperature == 0.8 for p in script.params)  # n > 1 samples (as predict --n)
    # n = 1 (the default) keeps the plain answer: no selection fields
    one = client.post("/v1/sql", json=Q).json()
    assert "select" not in one and "candidates" not in one


def test_verifier_selection_reads_results_and_never_picks_a_failing_candidate(tiny_dir, make_client):
    fake = FakeVerifier({"SELECT nme FROM singer": 9.0, "SELECT name FROM singer": 2.5, OLD: -1.0})
    client, server = make_client(tiny_dir, batch_fn=Script(CANDIDATES * 2), loaded_verifier=fake)
    a = client.post("/v1/sql", json={**Q, "n": 4, "select": "verifier", "temperature": 0.7}).json()
    assert (a["select"], a["chosen"], a["score"]) == ("verifier", 3, 2.5)  # the failing one (9 to the fake) lost
    assert a["votes"] == [2, 0, 2, 1] and [c["score"] for c in a["candidates"]] == [-1.0, None, -1.0, 2.5]  # failed: not scored
    assert len(a["rows"]) == 4
    question, schema, _, result = fake.read[0]
    assert question == Q["question"] and "singer" in schema and result is not None
    b = client.post("/v1/sql", json={**Q, "n": 4, "select": "vote+verifier"}).json()
    assert b["select"] == "vote+verifier" and b["chosen"] in (0, 2, 3) and b["score"] is not None


@pytest.mark.parametrize("body,param", [
    ({"n": 4, "select": "verifier"}, "select"),  # no verifier loaded
    ({"n": 4, "select": "vote+verifier"}, "select"),
    ({"n": 17}, "n"),  # over the cap (--max-n 16)
    ({"n": 0}, "n"),
    ({"n": -3}, "n"),
    ({"n": "4"}, "n"),
    ({"n": 2.5}, "n"),
    ({"n": True}, "n"),
    ({"n": 10**30}, "n"),
    ({"n": 4, "select": "best"}, "select"),
    ({"n": 4, "select": ""}, "select"),
    ({"n": 4, "select": 3}, "select"),
    ({"select": "vote"}, "select"),  # select without n >= 2
    ({"n": 4, "temperature": 0}, "temperature"),
    ({"n": 4, "temperature": 5}, "temperature"),
    ({"agent": "yes"}, "agent"),
    ({"agent": 1}, "agent"),
    ({"agent": True, "max_turns": 11}, "max_turns"),  # over --max-agent-turns 10
    ({"agent": True, "max_turns": 0}, "max_turns"),
    ({"max_turns": 3}, "max_turns"),  # without agent
])
def test_bad_selection_and_agent_values_are_400s(tiny_dir, make_client, body, param):
    script = Script([])
    client, _ = make_client(tiny_dir, batch_fn=script)
    err = assert_openai_400(client.post("/v1/sql", json={**Q, **body}), param)
    if body.get("select") in ("verifier", "vote+verifier"):
        assert err["code"] == "verifier_not_loaded" and "--verifier" in err["message"]
    assert script.params == []  # refused before anything was generated


def test_nan_temperature_is_a_400_not_a_500(tiny_dir, make_client):
    client, _ = make_client(tiny_dir, batch_fn=Script([]))
    r = client.post("/v1/sql", content=b'{"database": "concert", "question": "q", "n": 2, "temperature": NaN}',
                    headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text


def test_the_cap_is_the_servers(tiny_dir, make_client):
    client, _ = make_client(tiny_dir, batch_fn=Script(["SELECT 1"] * 3), max_n=3)
    assert client.post("/v1/sql", json={**Q, "n": 3}).status_code == 200
    assert "at most 3" in assert_openai_400(client.post("/v1/sql", json={**Q, "n": 4}), "n")["message"]


def test_a_full_queue_cancels_the_queued_candidates(tiny_dir, make_client):
    client, server = make_client(tiny_dir, batch_fn=Script([], delay=0.5), max_queue=2, max_batch=1)
    r = client.post("/v1/sql", json={**Q, "n": 8})
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    time.sleep(1.5)
    assert server.engine.queued() == 0
    assert client.post("/v1/sql", json=Q).status_code == 200  # the server goes on


# ------------------------------------------------------------------ agent


def test_agent_runs_a_query_reads_it_and_answers(long_dir, make_client, databases):
    script = Script(["Let me look. <sql>SELECT count(*) FROM singer</sql>", "<solution>SELECT name FROM singer</solution>"])
    client, _ = make_client(long_dir, batch_fn=script)
    r = client.post("/v1/sql", json={**Q, "agent": True, "max_turns": 3})
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["agent"] is True and a["finish"] == "solution"
    assert a["sql"] == "SELECT name FROM singer" and len(a["rows"]) == 4 and a["error"] is None
    first, second = a["turns"]
    assert (first["kind"], first["sql"], first["error"]) == ("sql", "SELECT count(*) FROM singer", None)
    assert "4" in first["observation"] and "turns left: 2" in first["observation"]
    assert second["kind"] == "solution" and second["observation"] == ""
    assert "<observation>" in a["raw"] and a["raw"].endswith("</solution>")
    p = script.params[0]
    assert p.include_stop and set(p.stop) == {"</sql>", "</solution>"} and p.temperature == 0.0


def test_agent_turns_that_fail_are_observations_and_hostile_sql_changes_nothing(long_dir, make_client, databases):
    before = checksums(databases)
    script = Script(["no tags at all", "<sql>DROP TABLE singer</sql>", "<sql>SELECT nme FROM singer</sql>",
                     "<sql>DELETE FROM singer</sql>"])
    client, _ = make_client(long_dir, batch_fn=script)
    a = client.post("/v1/sql", json={**Q, "agent": True, "max_turns": 4}).json()
    kinds = [(t["kind"], t["error"]) for t in a["turns"]]
    assert kinds[0] == ("malformed", "malformed_turn") and "malformed_turn" in a["turns"][0]["observation"]
    assert kinds[1][0] == "sql" and kinds[1][1] is not None
    assert "no such column" in a["turns"][2]["observation"]
    assert a["finish"] == "turn_limit" and a["sql"] == "DELETE FROM singer" and a["error"] and a["rows"] == []
    assert checksums(databases) == before


def test_agent_self_consistency_over_trajectories(long_dir, make_client):
    # three trajectories side by side: the engine takes their turns first in, first out
    script = Script(["<solution>SELECT name FROM singer WHERE age > 30</solution>",
                     "<solution>SELECT nme FROM singer</solution>",
                     "<sql>SELECT 1</sql>",
                     "<solution>SELECT name FROM singer WHERE age > 30</solution>"])
    client, _ = make_client(long_dir, batch_fn=script)
    a = client.post("/v1/sql", json={**Q, "agent": True, "n": 3, "select": "vote"}).json()
    assert a["select"] == "vote" and a["sql"] == OLD and a["votes"] == [2, 0, 2]
    assert [t["finish"] for t in a["trajectories"]] == ["solution", "solution", "solution"]
    assert [len(t["turns"]) for t in a["trajectories"]] == [1, 1, 2]
    assert a["turns"] == a["trajectories"][a["chosen"]]["turns"]


def test_agent_verifier_selection(long_dir, make_client):
    fake = FakeVerifier({"SELECT name FROM singer": 3.0})
    script = Script([f"<solution>{s}</solution>" for s in CANDIDATES])
    client, _ = make_client(long_dir, batch_fn=script, loaded_verifier=fake)
    a = client.post("/v1/sql", json={**Q, "agent": True, "n": 4, "select": "verifier"}).json()
    assert (a["chosen"], a["score"], a["sql"]) == (3, 3.0, "SELECT name FROM singer")


def test_agent_stops_at_the_deadline_and_the_server_stays_responsive(long_dir, make_client):
    """A model that queries forever, slowly: the trajectory ends at the request's deadline (one
    turn past it at most), and /health is answered meanwhile."""
    client, _ = make_client(long_dir, batch_fn=Script([], delay=0.3), request_timeout=1.0, max_agent_turns=50)
    out = {}

    def ask():
        t0 = time.monotonic()
        out["r"] = client.post("/v1/sql", json={**Q, "agent": True, "max_turns": 50})
        out["s"] = time.monotonic() - t0

    th = threading.Thread(target=ask)
    th.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    assert client.get("/health").status_code == 200
    health_s = time.monotonic() - t0
    th.join(10)
    a = out["r"].json()
    assert out["r"].status_code == 200, a
    assert a["finish"] == "deadline" and a["sql"] == "SELECT 1" and a["rows"] == [[1]]
    assert 1.0 <= out["s"] < 3.5 and len(a["turns"]) < 10  # the deadline plus about one slow turn
    assert health_s < 1.0


def test_agent_on_a_real_model_never_crashes(long_dir, make_client):
    """The random tiny model writes no tags: every turn is malformed, the trajectory ends at the
    turn limit without an answer, and the response says so."""
    client, _ = make_client(long_dir, max_tokens=8)
    a = client.post("/v1/sql", json={**Q, "agent": True, "max_turns": 2}).json()
    assert a["finish"] in ("turn_limit", "length", "observation_budget")
    assert len(a["turns"]) <= 2 and a["sql"] == "" and a["error"].startswith("no_sql")


def test_taught_model_answers_through_the_sql_route_with_n(taught_dir, make_client):
    client, _ = make_client(taught_dir)
    a = client.post("/v1/sql", json={**Q, "n": 3, "select": "vote-nonempty", "temperature": 0.1}).json()
    assert a["select"] == "vote-nonempty" and len(a["candidates"]) == 3
    assert a["sql"] == sf.TAUGHT_SQL and a["columns"] == ["name", "age"]


def test_serve_loads_a_verifier_folder_at_start_up(taught_dir, make_client, tmp_path):
    """``--verifier DIR`` through ``open_server``: a real (untrained, random-head) verifier folder is
    loaded and scores every candidate; a folder that is not a verifier stops the start, one line."""
    from sqlcoach.errors import ConfigError

    folder = untrained_verifier(taught_dir, tmp_path / "verifier")
    client, server = make_client(taught_dir, verifier=str(folder))
    assert server.verifier is not None and server.verifier.path == str(folder.resolve())
    a = client.post("/v1/sql", json={**Q, "n": 3, "select": "verifier", "temperature": 0.1}).json()
    assert a["select"] == "verifier" and isinstance(a["score"], float)
    assert all(isinstance(c["score"], float) for c in a["candidates"])
    with pytest.raises(ConfigError, match="is not a verifier"):
        make_client(taught_dir, verifier=str(taught_dir))


def test_agent_trajectories_that_do_not_fit_the_queue_are_a_503_and_stop(long_dir, make_client):
    script = Script([], delay=0.3)
    client, server = make_client(long_dir, batch_fn=script, max_queue=2, max_batch=1)
    with client:  # one event loop for the whole test, as a real server has: orphaned turns would go on
        r = client.post("/v1/sql", json={**Q, "agent": True, "n": 6, "max_turns": 5})
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        time.sleep(1.0)
        calls = len(script.params)
        time.sleep(1.0)
        assert server.engine.queued() == 0 and len(script.params) == calls  # nothing more was generated for it
        assert client.post("/v1/sql", json=Q).status_code == 200


# ------------------------------------------------------------------ agent, native tool calls


@pytest.fixture(scope="module")
def tools_dir(long_dir, tmp_path_factory):
    """``long_dir``'s model with a Qwen2.5-style chat template that renders tool calls."""
    import shutil

    from tool_template import with_tool_template
    from transformers import AutoTokenizer

    d = tmp_path_factory.mktemp("serve-tools") / "model"
    shutil.copytree(long_dir, d)
    with_tool_template(AutoTokenizer.from_pretrained(str(d))).save_pretrained(str(d))
    return d


def test_agent_with_native_tool_calls(tools_dir, make_client, databases):
    call = '<tool_call>\n{"name": "run_sql", "arguments": {"query": "SELECT count(*) FROM singer"}}\n</tool_call>'
    script = Script([call, '<tool_call>{"name": "run_sql", "arguments": {"sql": 1}}</tool_call>',
                     "```sql\nSELECT name FROM singer\n```"])
    client, server = make_client(tools_dir, batch_fn=script, agent_protocol="tools")
    a = client.post("/v1/sql", json={**Q, "agent": True, "max_turns": 4}).json()
    assert a["agent"] is True and a["finish"] == "solution", a
    assert a["sql"] == "SELECT name FROM singer" and len(a["rows"]) == 4 and a["error"] is None
    assert [(t["kind"], t["error"]) for t in a["turns"]] == [("sql", None), ("malformed", "malformed_turn"),
                                                             ("solution", None)]
    first, bad = a["turns"][0]["observation"], a["turns"][1]["observation"]
    assert "<tool_response>\ncolumns (1): count(*)" in first and "turns left: 3" in first
    assert "run_sql takes one argument, query" in bad
    p = script.params[0]
    assert p.include_stop and set(p.stop) == {"</tool_call>"}
    from sqlcoach.serve.text2sql import example_for

    prompt = server.agent_prompt(example_for(Q["question"], server.databases.path("concert")), 4)
    assert '"name": "run_sql"' in prompt and "You may call the run_sql tool" in prompt  # tools= and the instruction


def test_agent_tools_refused_at_start_for_a_template_without_them(long_dir, make_client):
    from sqlcoach.errors import ConfigError

    with pytest.raises(ConfigError, match="does not render the tools it is given"):
        make_client(long_dir, agent_protocol="tools")

