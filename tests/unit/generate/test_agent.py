"""The agent environment (sqlcoach.generate.agent): turns, observations, limits, hostile SQL."""

from __future__ import annotations

import hashlib
import sqlite3
import time

import pytest

from sqlcoach.errors import ConfigError
from sqlcoach.execution.pool import ExecutorPool
from sqlcoach.execution.sandbox import Limits
from sqlcoach.generate.agent import AgentConfig, SqlAgentEnv, parse_turn
from sqlcoach.prompts.agent import observation_text, solution_turn, sql_turn


def digest(path: str) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_parse_turn_cases():
    assert parse_turn("think first <sql> SELECT 1 </sql>") == parse_turn("<sql>SELECT 1</sql>")
    assert parse_turn("<sql>SELECT 1</sql>").kind == "sql"
    assert parse_turn("<solution>SELECT 2</solution>").sql == "SELECT 2"
    assert parse_turn("<sql>SELECT 1").kind == "malformed"  # unclosed
    assert parse_turn("<sql>  </sql>").reason == "empty <sql></sql>"
    assert parse_turn("SELECT 1").kind == "malformed"  # no tag
    assert parse_turn("SELECT 1", untagged="solution").sql == "SELECT 1"
    assert parse_turn("no sql here at all", untagged="solution").kind in ("malformed", "solution")
    # the first opening tag decides
    assert parse_turn("<solution>SELECT 3</solution><sql>SELECT 4</sql>").kind == "solution"


def test_success_then_solution(db):
    env = SqlAgentEnv(db, AgentConfig(max_turns=3))
    obs = env.step(sql_turn("SELECT name FROM item ORDER BY id"))
    assert obs.startswith("\n<observation>\ncolumns (1): name\nrows: 3\npen\nink\npad\nturns left: 2\n")
    assert env.step(solution_turn("SELECT name FROM item")) == ""
    assert env.done and env.finish == "solution" and env.answer == "SELECT name FROM item"
    assert [t.kind for t in env.turns] == ["sql", "solution"] and env.queries_run == 1


def test_error_and_empty_observations(db):
    env = SqlAgentEnv(db, AgentConfig(max_turns=4))
    obs = env.step(sql_turn("SELECT nme FROM item"))
    assert "error: exec_error: no such column: nme" in obs and "turns left: 3" in obs
    assert env.turns[0].error == "exec_error" and not env.done
    obs = env.step(sql_turn("SELECT name FROM item WHERE price > 100"))
    assert "rows: 0 (empty result)" in obs and env.turns[1].error is None


def test_malformed_turn_is_an_error_observation(db):
    env = SqlAgentEnv(db, AgentConfig(max_turns=3))
    obs = env.step("SELECT name FROM item")  # no tags
    assert "error: malformed_turn: no <sql>" in obs and "turns left: 2" in obs
    obs = env.step("<sql>SELECT name FROM item")  # unclosed
    assert "malformed_turn: <sql> without </sql>" in obs
    assert [t.error for t in env.turns] == ["malformed_turn", "malformed_turn"] and env.queries_run == 0


def test_untagged_solution_mode(db):
    env = SqlAgentEnv(db, AgentConfig(untagged="solution"))
    assert env.step("SELECT name FROM item") == "" and env.answer == "SELECT name FROM item"


def test_turn_limit_last_query_or_none(db):
    for on_limit, answer in (("last_query", "SELECT id FROM item"), ("none", None)):
        env = SqlAgentEnv(db, AgentConfig(max_turns=2, on_limit=on_limit))
        assert env.step(sql_turn("SELECT name FROM item")).endswith("turns left: 1\n</observation>\n")
        assert env.step(sql_turn("SELECT id FROM item")) == ""  # the last turn gets no observation
        assert env.done and env.finish == "turn_limit" and env.answer == answer
        with pytest.raises(RuntimeError):
            env.step(sql_turn("SELECT 1"))


def test_observation_budget_is_never_exceeded(db):
    cfg = AgentConfig(max_turns=10, observation_budget=200, per_observation=120)
    env = SqlAgentEnv(db, cfg)
    seen = []
    while not env.done:
        seen.append(env.step(sql_turn("SELECT * FROM item")))
    assert env.finish == "observation_budget" and env.answer == "SELECT * FROM item"
    assert sum(len(o) for o in seen) == env.used <= 200 and all(len(o) <= 120 for o in seen)
    assert len(seen) < 10
    # each observation is the renderer's text cut to its room, still well formed
    assert seen[0].startswith("\n<observation>\ncolumns (3)") and seen[0].endswith("</observation>\n")


def test_token_budget(db):
    words = lambda s: len(s.split())  # noqa: E731 - a token count stand-in
    env = SqlAgentEnv(db, AgentConfig(observation_budget=30, per_observation=20), length=words)
    while not env.done:
        env.step(sql_turn("SELECT * FROM item"))
    assert env.used <= 30 and all(words(t.observation) <= 20 for t in env.turns)


def test_runaway_query_costs_one_deadline_and_the_trajectory_goes_on(db):
    cfg = AgentConfig(max_turns=3, timeout=0.5)
    with ExecutorPool(1, Limits(timeout=0.5)) as pool:
        env = SqlAgentEnv(db, cfg, executor=pool)
        t0 = time.monotonic()
        obs = env.step(sql_turn("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c"))
        took = time.monotonic() - t0
        assert "error: timeout" in obs and env.turns[0].error == "timeout" and took < 5
        assert "rows: 1" in env.step(sql_turn("SELECT count(*) FROM item"))
        assert not env.done


def test_in_process_deadline(db):
    env = SqlAgentEnv(db, AgentConfig(max_turns=2, timeout=0.3))
    t0 = time.monotonic()
    obs = env.step(sql_turn("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c"))
    assert "error: timeout" in obs and time.monotonic() - t0 < 5


HOSTILE = [
    "DROP TABLE item",
    "DELETE FROM item",
    "UPDATE item SET price = 0",
    "INSERT INTO item VALUES (9,'x',0)",
    "SELECT 1; DROP TABLE item",
    "PRAGMA writable_schema=ON",
    "ATTACH DATABASE '/tmp/x.sqlite' AS x",
    "VACUUM",
    "CREATE TABLE t(x)",
    "SELECT writefile('/tmp/agent_pwn', 'x')",
]


@pytest.mark.parametrize("workers", [0, 1])
def test_hostile_sql_in_a_trajectory_changes_no_byte(db, workers):
    before = digest(db)
    with ExecutorPool(workers, Limits(timeout=2)) as pool:
        env = SqlAgentEnv(db, AgentConfig(max_turns=len(HOSTILE) + 1), executor=pool)
        for sql in HOSTILE:
            obs = env.step(sql_turn(sql))
            assert "error:" in obs, sql
        assert env.step(solution_turn("SELECT count(*) FROM item")) == ""
    assert digest(db) == before
    assert all(t.error for t in env.turns[:-1])
    assert sqlite3.connect(db).execute("SELECT count(*) FROM item").fetchone() == (3,)


def test_restore_maps_placeholders_before_running(db):
    env = SqlAgentEnv(db, AgentConfig(), restore=lambda s: s.replace("t1", "item").replace("c1", "name"))
    obs = env.step(sql_turn("SELECT c1 FROM t1 WHERE id = 1"))
    assert "pen" in obs and env.turns[0].sql == "SELECT name FROM item WHERE id = 1"
    env.step(solution_turn("SELECT c1 FROM t1"))
    assert env.answer == "SELECT name FROM item"


def test_reset_and_tool_form(db):
    env = SqlAgentEnv(None, AgentConfig(max_turns=2))
    env.reset(db_path=db, question="ignored column")
    assert "rows: 3" in env.run_sql("SELECT * FROM item")
    assert env.run_sql("SELECT 1").startswith("the trajectory has ended")
    env.reset()
    assert env.turns == [] and not env.done and env.db_path == db


def test_no_database_is_an_error_observation():
    env = SqlAgentEnv(None, AgentConfig(max_turns=2))
    assert "no database" in env.step(sql_turn("SELECT 1"))


def test_config_is_checked():
    for bad in ({"max_turns": 0}, {"on_limit": "gold"}, {"untagged": "x"}, {"timeout": 0}, {"observation_budget": 1.5}):
        with pytest.raises(ConfigError):
            AgentConfig(**bad)


def test_observation_wrapper():
    assert observation_text("rows: 0", 2) == "\n<observation>\nrows: 0\nturns left: 2\n</observation>\n"


def test_observation_names_encoded_within_budget(db):
    encode = lambda text: text.replace("name", "a_much_longer_placeholder")  # noqa: E731
    env = SqlAgentEnv(db, AgentConfig(per_observation=90), encode=encode)
    obs = env.step(sql_turn("SELECT name FROM item"))
    assert "columns (1): a_much_longer_placeholder" in obs and len(obs) <= 90
    real = SqlAgentEnv(db, AgentConfig(observation_names="real"), encode=encode)
    assert "columns (1): name\n" in real.step(sql_turn("SELECT name FROM item"))
    broken = SqlAgentEnv(db, AgentConfig(), encode=lambda text: 1 / 0)
    assert "columns (1): name" in broken.step(sql_turn("SELECT name FROM item"))  # shown as rendered, no crash


def test_anonymized_env_speaks_placeholders(db):
    from sqlcoach.generate.agent_predict import env_for
    from sqlcoach.types import Example

    ex = Example("q", "shop", "what is the price of pen", "SELECT price FROM item WHERE name = 'pen'", db)
    env = env_for(ex, AgentConfig(), "anonymized")
    from sqlcoach.prompts.anonymize import name_map

    nm = name_map(ex)
    price = nm.encode_sql("SELECT price FROM item")  # the model's spelling of the query
    obs = env.step(sql_turn(price))
    assert "rows: 3" in obs and "price" not in obs and price.split()[1] in obs


def test_first_answer_is_the_first_query_else_the_solution():
    from sqlcoach.generate.agent_predict import failed_first_query, first_answer

    q = {"kind": "sql", "sql": "SELECT a FROM t", "error": "exec_error"}
    sol = {"kind": "solution", "sql": "SELECT b FROM t", "error": None}
    revised = {"sql": "SELECT b FROM t", "turns": [q, sol]}
    assert first_answer(revised) == "SELECT a FROM t" and failed_first_query(revised)
    # a malformed first turn carries no SQL: the first turn that does counts
    malformed = {"kind": "malformed", "sql": None, "error": "malformed_turn"}
    assert first_answer({"sql": "SELECT b FROM t", "turns": [malformed, sol]}) == "SELECT b FROM t"
    assert first_answer({"sql": "SELECT c FROM t", "turns": []}) == "SELECT c FROM t"
    assert first_answer({"sql": None, "turns": [malformed]}) == ""


def test_keep_action_answers_with_the_last_query_that_ran(db):
    from sqlcoach.prompts.agent import KEEP_TURN

    env = SqlAgentEnv(db, AgentConfig(max_turns=4, keep=True))
    env.step(sql_turn("SELECT name FROM item"))
    env.step(sql_turn("SELECT nme FROM item"))  # fails: not what a keep answers
    assert env.step(KEEP_TURN) == "" and env.done and env.finish == "solution"
    assert env.answer == "SELECT name FROM item" and env.answer_as_written() == "SELECT name FROM item"
    last = env.turns[-1]
    assert last.kind == "solution" and last.kept and last.as_json()["kept"] is True
    assert "kept" not in env.turns[0].as_json()


def test_keep_with_nothing_run_is_malformed_and_without_keep_an_empty_solution_is(db):
    from sqlcoach.prompts.agent import KEEP_TURN

    env = SqlAgentEnv(db, AgentConfig(max_turns=3, keep=True))
    env.step(sql_turn("SELECT nme FROM item"))
    obs = env.step(KEEP_TURN)
    assert "malformed_turn: nothing to keep" in obs and not env.done
    plain = SqlAgentEnv(db, AgentConfig(max_turns=3))
    plain.step(sql_turn("SELECT name FROM item"))
    assert "malformed_turn: empty <solution></solution>" in plain.step(KEEP_TURN)


def test_keep_is_a_tag_protocol_setting():
    with pytest.raises(ConfigError, match="keep"):
        AgentConfig(keep=True, protocol="tools")
    with pytest.raises(ConfigError, match="keep must be true or false"):
        AgentConfig(keep="yes")
