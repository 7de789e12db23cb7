"""The review protocol (``protocol: review``): the first turn is a plain answer (as in one pass),
its result comes back as a user message in the model's own chat template, then the model keeps it
or revises; parsing never raises, the template pieces are derived and checked, a whole trajectory
masks exactly the environment's messages, and rows replay through the environment."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("tokenizers")
pytest.importorskip("transformers")

from test_agent_tools import _script  # noqa: E402

from sqlcoach.errors import ConfigError  # noqa: E402
from sqlcoach.generate.agent import Action, AgentConfig, ReviewProtocol, SqlAgentEnv, make_protocol, parse_review_turn  # noqa: E402
from sqlcoach.models.tiny import CHATML_TEMPLATE, train_tokenizer  # noqa: E402
from sqlcoach.prompts.agent import KEEP_TURN, review_text, solution_turn  # noqa: E402


@pytest.fixture(scope="module")
def tok():
    t = train_tokenizer(["SELECT name FROM item WHERE price > 2", "<solution></solution>"] * 5, 300)
    t.chat_template = CHATML_TEMPLATE
    return t


def test_parse_review_turns():
    assert parse_review_turn("SELECT name FROM item") == Action("sql", "SELECT name FROM item")
    assert parse_review_turn("<solution>SELECT 1</solution>") == Action("solution", "SELECT 1")
    assert parse_review_turn(KEEP_TURN, keep=True) == Action("keep")
    assert parse_review_turn(KEEP_TURN).kind == "malformed"
    assert parse_review_turn("<sql>SELECT 2</sql>") == Action("sql", "SELECT 2")
    assert parse_review_turn("I cannot answer that.").kind == "malformed"
    # generation stops at a closing tag: a plain answer that ends with one is the query before it
    assert parse_review_turn("SELECT c1 FROM t1</solution>") == Action("sql", "SELECT c1 FROM t1")
    assert parse_review_turn("SELECT 3</sql>") == Action("sql", "SELECT 3")
    assert parse_review_turn("</solution>").kind == "malformed"
    for hostile in ("<solution>", "\x00" * 50, "<<<sql>>>" * 100, "```sql\n", "SELECT '" * 200):
        assert parse_review_turn(hostile, keep=True).kind in ("sql", "solution", "keep", "malformed")


def test_the_pieces_come_from_the_chat_template(tok):
    p = make_protocol(AgentConfig(protocol="review", keep=True), tok)
    assert isinstance(p, ReviewProtocol) and p.keep
    assert p.turn_end == "<|im_end|>\n" and p.user_open == "<|im_start|>user\n"
    assert p.user_close == "<|im_end|>\n<|im_start|>assistant\n"
    messages = [{"role": "user", "content": "Which items cost more than 2?"}]
    prompt = p.prompt(messages, tok, 3, instruction=False)
    draft, result = "SELECT name FROM item WHERE price > 2", "columns (1): name\nrows: 2\nink\npad"
    # prompt + the model's answer + the observation is byte for byte the template's own conversation
    convo = tok.apply_chat_template(messages + [{"role": "assistant", "content": draft},
                                                {"role": "user", "content": review_text(result, 2)}],
                                    tokenize=False, add_generation_prompt=True)
    assert prompt + draft + p.observation(result, 2) == convo
    assert "<solution></solution>" in p.prompt(messages, tok, 3)  # the instruction names the keep


def test_a_tokenizer_without_template_is_refused(tok):
    bare = train_tokenizer(["SELECT 1"] * 5, 300)
    bare.chat_template = None
    with pytest.raises(ConfigError, match="review needs a chat template"):
        make_protocol(AgentConfig(protocol="review"), bare)
    with pytest.raises(ConfigError, match="needs the model's tokenizer"):
        make_protocol(AgentConfig(protocol="review"))


def test_trajectory_draft_review_keep_masks_exactly_the_environment(tok, db, monkeypatch):
    from sqlcoach.generate.agent import run_agent

    _script(monkeypatch, [["SELECT name FROM item WHERE price > 1", KEEP_TURN]])
    p = make_protocol(AgentConfig(protocol="review", keep=True), tok)
    env = SqlAgentEnv(db, AgentConfig(protocol="review", keep=True, max_turns=3), protocol=p)
    prompt = p.prompt([{"role": "user", "content": "Which items cost more than 1?"}], tok, 3, instruction=False)
    roll = run_agent(None, tok, [prompt], [env], max_new_tokens=60, max_total_tokens=400)[0]
    assert env.finish == "solution" and env.answer == "SELECT name FROM item WHERE price > 1"
    assert [t.kind for t in env.turns] == ["sql", "solution"] and env.turns[1].kept
    model = tok.decode([t for t, m in zip(roll.completion_ids, roll.env_mask) if m == 1])
    shown = tok.decode([t for t, m in zip(roll.completion_ids, roll.env_mask) if m == 0])
    assert model == "SELECT name FROM item WHERE price > 1" + KEEP_TURN
    assert shown == env.turns[0].observation and "rows: 3" in shown and shown.startswith("<|im_end|>")


def test_revision_and_malformed_review_turns(tok, db):
    p = make_protocol(AgentConfig(protocol="review"), tok)
    env = SqlAgentEnv(db, AgentConfig(protocol="review", max_turns=3), protocol=p)
    obs = env.step("SELECT nme FROM item")
    assert "no such column: nme" in obs and obs.endswith("<|im_start|>assistant\n")
    assert "nothing" not in env.step("I am not sure.") and env.turns[1].error == "malformed_turn"
    assert env.step(solution_turn("SELECT name FROM item")) == "" and env.answer == "SELECT name FROM item"


def test_review_rows_replay_through_the_environment(tok, db, tmp_path, monkeypatch):
    import sqlcoach.generate.hf as hf
    from sqlcoach.generate.agent_rows import warm_start_rows
    from sqlcoach.prompts.builder import PromptBuilder
    from sqlcoach.types import Example

    exs = [Example("e0", "shop", "how many items", "SELECT count(*) FROM item", db),
           Example("e1", "shop", "item names", "SELECT name FROM item", db)]
    answers = ["SELECT count(*) FROM item", "SELECT nme FROM item"]
    monkeypatch.setattr(hf, "generate_texts", lambda model, t, prompts, **kw: hf.Generations([[a] for a in answers], 0, 0, 0.0))
    out = tmp_path / "rows.jsonl"
    s = warm_start_rows(None, tok, exs, out, builder=PromptBuilder("sql_terminal", "compact", 0),
                        config=AgentConfig(protocol="review", keep=True, max_turns=3), verify_fraction=1.0, workers=0)
    assert (s.verified, s.revisions) == (1, 1)
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    kept, revised = (r["completion"][0]["content"] for r in recs)
    assert kept.startswith("SELECT count(*) FROM item<|im_end|>\n<|im_start|>user\n<observation>") and kept.endswith(KEEP_TURN)
    assert revised.startswith("SELECT nme FROM item<|im_end|>") and revised.endswith(solution_turn("SELECT name FROM item"))
    for r in recs:  # the spans mark exactly the environment's text: from the end of the draft to the next header
        (a, b), = r["observation_spans"]
        text = r["completion"][0]["content"]
        assert text[a:].startswith("<|im_end|>") and text[:b].endswith("<|im_start|>assistant\n")
