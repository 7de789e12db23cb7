"""The agent's tool protocol (``protocol: tools``): tool-call parsing, malformed calls, the
template check, observations as the template's ``tool`` messages, and a whole trajectory through
the shared loop (``run_agent``) and ``predict_agent`` with a scripted model."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("tokenizers")
pytest.importorskip("transformers")

from tool_template import tool_template, tool_tokenizer  # noqa: E402

from sqlcoach.errors import ConfigError  # noqa: E402
from sqlcoach.generate.agent import (  # noqa: E402
    Action,
    AgentConfig,
    SqlAgentEnv,
    TagProtocol,
    ToolProtocol,
    make_protocol,
    parse_tool_turn,
)
from sqlcoach.prompts.agent import RUN_SQL_TOOL, tool_result_text  # noqa: E402


def call(sql=None, **over):
    body = {"name": "run_sql", "arguments": {"query": sql}}
    body.update(over)
    return f"<tool_call>\n{json.dumps(body)}\n</tool_call>"


@pytest.fixture(scope="module")
def tok():
    return tool_tokenizer()


def test_parse_tool_calls():
    assert parse_tool_turn(call("SELECT 1")) == Action("sql", "SELECT 1")
    assert parse_tool_turn("Let me look first.\n" + call(" SELECT name FROM item ")) == Action("sql", "SELECT name FROM item")
    # arguments as a JSON string (some models write them so); the first call decides
    text = '<tool_call>{"name": "run_sql", "arguments": "{\\"query\\": \\"SELECT 2\\"}"}</tool_call>' + call("SELECT 3")
    assert parse_tool_turn(text) == Action("sql", "SELECT 2")
    # no tool call: the final answer is the message's SQL (a fenced block or a bare statement)
    assert parse_tool_turn("The answer:\n```sql\nSELECT name FROM item\n```") == Action("solution", "SELECT name FROM item")
    assert parse_tool_turn("SELECT count(*) FROM item") == Action("solution", "SELECT count(*) FROM item")


@pytest.mark.parametrize("text,reason", [
    ("<tool_call>{\"name\": \"run_sql\", \"arguments\": {\"query\": \"SELECT 1\"}}", "without </tool_call>"),
    ("<tool_call>{name: run_sql}</tool_call>", "not valid JSON"),
    ("<tool_call>[1, 2]</tool_call>", "must be a JSON object"),
    (call("SELECT 1", name="drop_table"), "unknown tool 'drop_table'"),
    ('<tool_call>{"arguments": {"query": "SELECT 1"}}</tool_call>', "unknown tool 'None'"),
    ('<tool_call>{"name": "run_sql", "arguments": ["SELECT 1"]}</tool_call>', "takes arguments"),
    ('<tool_call>{"name": "run_sql", "arguments": "not json"}</tool_call>', "not a JSON object"),
    ('<tool_call>{"name": "run_sql"}</tool_call>', "takes arguments"),
    ('<tool_call>{"name": "run_sql", "arguments": {"query": "SELECT 1", "db": "x"}}</tool_call>', "one argument, query"),
    ('<tool_call>{"name": "run_sql", "arguments": {"sql": "SELECT 1"}}</tool_call>', "one argument, query"),
    ('<tool_call>{"name": "run_sql", "arguments": {"query": 7}}</tool_call>', "needs a string argument"),
    (call("   "), "empty query"),
    ("I do not know.", "no run_sql tool call and no SQL"),
])
def test_malformed_tool_calls_are_actions_not_crashes(text, reason):
    a = parse_tool_turn(text)
    assert a.kind == "malformed" and reason in a.reason, a


def test_hostile_tool_text_never_raises():
    for text in ("<tool_call>" + "[" * 100_000 + "</tool_call>", "<tool_call>\x00\ud800</tool_call>",
                 '<tool_call>{"name": "run_sql", "arguments": {"query": "' + "x" * 10**6 + '"}}</tool_call>',
                 "</tool_call><tool_call>", ""):
        assert parse_tool_turn(text).kind in ("sql", "solution", "malformed")


def test_the_template_check_derives_the_pieces(tok):
    p = ToolProtocol.for_tokenizer(tok)
    assert (p.turn_end, p.tool_open, p.tool_close) == (
        "<|im_end|>\n", "<|im_start|>user\n<tool_response>\n", "\n</tool_response><|im_end|>\n<|im_start|>assistant\n")
    assert p.stop_strings == ("</tool_call>",) and p.parse(p.call_text("SELECT 1")) == Action("sql", "SELECT 1")


def test_a_template_without_tool_calls_is_refused_with_its_name(tok):
    from transformers import PreTrainedTokenizerFast

    from sqlcoach.models.tiny import CHATML_TEMPLATE

    plain = PreTrainedTokenizerFast(tokenizer_object=tok.backend_tokenizer, name_or_path="my/chatml-model")
    for template, why in ((None, "has no chat template"), (CHATML_TEMPLATE, "does not render the tools"),
                          ("{{ raise_exception('no tools here') }}", "fails on tool calls"),
                          # tools rendered, but calls written in another form (Llama 3.1 style: bare JSON)
                          (tool_template().replace("<tool_call>\\n{", "{").replace("}\\n</tool_call>", "}"),
                           "does not write tool calls as <tool_call>")):
        plain.chat_template = template
        with pytest.raises(ConfigError, match=f"my/chatml-model {why}|of my/chatml-model {why}") as e:
            make_protocol(AgentConfig(protocol="tools"), plain)
        assert "\n" not in str(e.value) and "use protocol tags" in str(e.value)
    with pytest.raises(ConfigError, match="needs the model's tokenizer"):
        make_protocol(AgentConfig(protocol="tools"))
    with pytest.raises(ConfigError, match="protocol must be one of tags, tools"):
        AgentConfig(protocol="xml")
    with pytest.raises(ConfigError, match="not its config's"):
        SqlAgentEnv(None, AgentConfig(protocol="tools"), protocol=TagProtocol())
    with pytest.raises(ConfigError, match="needs the model's tokenizer"):
        SqlAgentEnv(None, AgentConfig(protocol="tools"))


def test_observations_are_the_templates_tool_messages(tok, db):
    """prompt + the model's call + the observation is exactly the template's rendering of the same
    conversation (assistant tool call, tool message, next assistant header)."""
    p = ToolProtocol.for_tokenizer(tok)
    env = SqlAgentEnv(db, AgentConfig(protocol="tools", max_turns=3), protocol=p)
    user = [{"role": "user", "content": "Which items cost more than 2?"}]
    prompt = p.prompt(user, tok, 3, instruction=False)
    assert prompt == tok.apply_chat_template(user, tools=[RUN_SQL_TOOL], tokenize=False, add_generation_prompt=True)
    sql = "SELECT name FROM item WHERE price > 2 ORDER BY id"
    turn = p.call_text(sql)  # as Qwen writes it after the generation prompt ("<|im_start|>assistant\n")
    obs = env.step(turn)
    assert tool_result_text("columns (1): name\nrows: 2\nink\npad", 2) in obs
    content = obs[len(p.turn_end) + len(p.tool_open):-len(p.tool_close)]
    convo = user + [{"role": "assistant", "content": "", "tool_calls": [
                     {"type": "function", "function": {"name": "run_sql", "arguments": {"query": sql}}}]},
                    {"role": "tool", "name": "run_sql", "content": content}]
    assert prompt + turn + obs == tok.apply_chat_template(convo, tools=[RUN_SQL_TOOL], tokenize=False,
                                                         add_generation_prompt=True)
    # a malformed call costs a turn and comes back as a tool result; the answer ends the trajectory
    bad = env.step(call("SELECT 1", name="delete_rows"))
    assert "error: malformed_turn: unknown tool 'delete_rows'" in bad and "turns left: 1" in bad
    assert bad.startswith(p.turn_end + p.tool_open) and bad.endswith(p.tool_close)
    assert env.step("```sql\nSELECT name FROM item WHERE price > 2\n```") == ""
    assert env.done and env.finish == "solution" and env.answer == "SELECT name FROM item WHERE price > 2"
    assert [t.kind for t in env.turns] == ["sql", "malformed", "solution"] and env.queries_run == 1
    assert env.answer_as_written() == "SELECT name FROM item WHERE price > 2"


def test_budgets_and_limits_are_shared_with_the_tag_protocol(tok, db):
    from sqlcoach.execution.render import token_length

    p = ToolProtocol.for_tokenizer(tok)
    length = token_length(tok)
    cfg = AgentConfig(protocol="tools", max_turns=10, observation_budget=120, per_observation=70)
    env = SqlAgentEnv(db, cfg, protocol=p, length=length)
    seen = []
    while not env.done:
        seen.append(env.step(call("SELECT * FROM item")))
    assert env.finish == "observation_budget" and env.answer == "SELECT * FROM item"
    assert sum(length(o) for o in seen) == env.used <= 120 and all(length(o) <= 70 for o in seen)
    # every observation is still a whole tool message (cut inside, never across the template's pieces)
    assert all(o.startswith(p.turn_end + p.tool_open) and o.endswith(p.tool_close) for o in seen if o)
    env = SqlAgentEnv(db, AgentConfig(protocol="tools", max_turns=2, on_limit="none"), protocol=p)
    env.step(call("SELECT 1"))
    assert env.step(call("SELECT 2")) == "" and env.finish == "turn_limit" and env.answer is None
    # the tool form of a turn speaks the protocol too
    env = SqlAgentEnv(db, AgentConfig(protocol="tools", max_turns=2), protocol=p)
    assert "<tool_response>" in env.run_sql("SELECT count(*) FROM item") and env.turns[0].kind == "sql"


def _script(monkeypatch, turns_by_row):
    """The model's turns, scripted per trajectory (the loop, environment and masks stay real)."""
    import sqlcoach.generate.agent as agent_mod

    seen = {}
    stops = []

    def generate_turns(model, tokenizer, inputs, *, max_new_tokens, stop_strings, **_):
        stops.append(tuple(stop_strings))
        ids_out, texts = [], []
        for i, inp in enumerate(inputs):
            k = seen.get(tuple(inp[:40]), 0)  # trajectories differ by prompt; turn k of that prompt
            seen[tuple(inp[:40])] = k + 1
            script = turns_by_row[i] if len(inputs) == len(turns_by_row) else turns_by_row[0]
            text = script[min(k, len(script) - 1)]
            ids = tokenizer(text, add_special_tokens=False)["input_ids"][: max_new_tokens[i]]
            ids_out.append(ids)
            texts.append(tokenizer.decode(ids, skip_special_tokens=True))
        return ids_out, texts, [False] * len(inputs)

    monkeypatch.setattr(agent_mod, "generate_turns", generate_turns)
    return stops


def test_end_to_end_trajectory_masks_exactly_the_tool_messages(tok, db, monkeypatch):
    from sqlcoach.generate.agent import run_agent

    stops = _script(monkeypatch, [[call("SELECT nme FROM item"), call("SELECT name FROM item WHERE price > 2"),
                                   "SELECT name FROM item WHERE price > 2"]])
    p = ToolProtocol.for_tokenizer(tok)
    env = SqlAgentEnv(db, AgentConfig(protocol="tools", max_turns=4), protocol=p)
    prompt = p.prompt([{"role": "user", "content": "Which items cost more than 2?"}], tok, 4)
    roll = run_agent(None, tok, [prompt], [env], max_new_tokens=100, max_total_tokens=600)[0]
    assert set(stops) == {("</tool_call>",)}
    assert env.finish == "solution" and env.answer == "SELECT name FROM item WHERE price > 2"
    assert [t.error for t in env.turns] == ["exec_error", None, None] and env.queries_run == 2
    assert len(roll.completion_ids) == len(roll.env_mask)
    model_text = tok.decode([t for t, m in zip(roll.completion_ids, roll.env_mask) if m == 1])
    obs_text = tok.decode([t for t, m in zip(roll.completion_ids, roll.env_mask) if m == 0])
    assert model_text == call("SELECT nme FROM item") + call("SELECT name FROM item WHERE price > 2") + \
        "SELECT name FROM item WHERE price > 2"
    assert obs_text == env.turns[0].observation + env.turns[1].observation
    assert "no such column: nme" in obs_text and obs_text.count("<tool_response>") == 2
    assert "<|im_start|>" in obs_text and "<tool_response>" not in model_text
    # the special tokens of the template's pieces are single tokens, as the model reads them
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert [t for t, m in zip(roll.completion_ids, roll.env_mask) if t == im_end] and \
        all(m == 0 for t, m in zip(roll.completion_ids, roll.env_mask) if t == im_end)


def test_predict_agent_with_the_tool_protocol(tok, db, tmp_path, monkeypatch):
    from sqlcoach.generate.agent_predict import predict_agent
    from sqlcoach.types import Example

    _script(monkeypatch, [[call("SELECT count(*) FROM item"), "```sql\nSELECT count(*) FROM item\n```"]])
    exs = [Example("q0", "shop", "How many items are there?", "SELECT count(*) FROM item", db)]
    out = tmp_path / "dev.sql"
    s = predict_agent(None, tok, exs, out, config=AgentConfig(protocol="tools", max_turns=3), workers=0,
                      progress=False)
    rec = json.loads((tmp_path / "dev.jsonl").read_text().splitlines()[0])
    assert out.read_text().splitlines() == ["SELECT count(*) FROM item"]
    assert rec["finish"] == "solution" and rec["queries"] == 1 and [t["kind"] for t in rec["turns"]] == ["sql", "solution"]
    assert "<tool_response>" in rec["turns"][0]["observation"] and s.mean_turns == 2 and s.queries_run == 1
    # the chat template of the tag-only tiny model is refused before any trajectory runs
    from sqlcoach.models.tiny import CHATML_TEMPLATE

    tok2 = tool_tokenizer()
    tok2.chat_template = CHATML_TEMPLATE
    with pytest.raises(ConfigError, match="does not render the tools"):
        predict_agent(None, tok2, exs, out, config=AgentConfig(protocol="tools"), workers=0, progress=False)
