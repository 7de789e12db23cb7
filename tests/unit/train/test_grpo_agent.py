"""Multi-turn GRPO (``train.grpo_agent``): observation tokens carry no loss through TRL's
``GRPOTrainer`` (the masking test), the rollout's output contract (``env_mask`` 0 exactly on the
observations and the end token, the final answer as written, the trajectory within
``max_completion_length`` with an overflowing observation cut), rewards scoring the final answer,
and the ``agent:`` block's errors."""

from __future__ import annotations

import sqlite3

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from sqlcoach.config import GRPORunConfig, build_config  # noqa: E402
from sqlcoach.config.agent import AgentTraining  # noqa: E402
from sqlcoach.errors import ConfigError  # noqa: E402
from sqlcoach.models.tiny import TinySize, init_tiny_model  # noqa: E402

TINY = TinySize(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256)
CORPUS = ["SELECT name FROM singer WHERE age > 30", "<sql>SELECT count(*) FROM singer</sql>",
          "<observation>\ncolumns (1): count(*)\nrows: 1\n3\nturns left: 2\n</observation>",
          "<solution>SELECT name FROM singer</solution>", "How many singers are there?"] * 10


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tmp_path_factory.mktemp("grpo-agent") / "model"
    init_tiny_model(path, TINY, CORPUS, seed=0)
    return path, AutoTokenizer.from_pretrained(str(path)), AutoModelForCausalLM


# ---------------------------------------------------------------------- the masking test


def _trainer(path, auto, tmp_path, rollout):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    torch.manual_seed(0)
    model = auto.from_pretrained(str(path), dtype=torch.float32)
    args = GRPOConfig(output_dir=str(tmp_path / "trainer"), per_device_train_batch_size=2, num_generations=2,
                      max_completion_length=32, use_cpu=True, bf16=False, report_to="none", beta=0.0,
                      scale_rewards="none", loss_type="dapo", logging_steps=1, max_steps=1)

    def reward(prompts=None, completions=(), completion_ids=None, **_):  # one right, one wrong: advantages +-0.5
        return [1.0, 0.0]

    rows = [{"prompt": [{"role": "user", "content": "How many singers are there?"}]}] * 2
    return GRPOTrainer(model=model, reward_funcs=[reward], args=args, train_dataset=Dataset.from_list(rows),
                       rollout_func=rollout)


def _loss_and_grads(trainer, inputs):
    trainer.model.train()
    trainer.model.zero_grad()
    trainer.current_gradient_accumulation_steps = 1  # what Trainer's training loop sets before compute_loss
    out = trainer._generate_and_score_completions([dict(x) for x in inputs])
    loss = trainer.compute_loss(trainer.model, out)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    return loss.detach().clone(), grads


def _pieces(tok, protocol):
    """A trajectory's pieces as token ids: model turn A, observation O1, model turn B, observation
    O2 (cut), in the tag protocol or the tool protocol (the template's tool message, its special
    tokens included, as observation; a run_sql call and a plain answer as the model's turns)."""
    if protocol == "tags":
        ids = tok("SELECT name FROM singer WHERE age > 30 <observation> rows: 1 3 </observation>",
                  add_special_tokens=False)["input_ids"]
        assert len(ids) >= 14
        return ids[0:5], ids[5:9], ids[9:12], ids[12:16]
    from tool_template import with_tool_template

    from sqlcoach.generate.agent import ToolProtocol

    p = ToolProtocol.for_tokenizer(with_tool_template(tok))
    enc = lambda t: tok(t, add_special_tokens=False)["input_ids"]  # noqa: E731
    obs = enc(p.observation("rows: 1\n3", 2))
    assert tok.convert_tokens_to_ids("<|im_start|>") in obs[:6]  # the template's own tokens are observation
    return enc(p.call_text("SELECT 1"))[:5], obs[:6], enc("SELECT name FROM singer")[:3], obs[-4:]


@pytest.mark.parametrize("protocol", ["tags", "tools"])
def test_observation_tokens_carry_no_loss_and_no_gradient(tiny, tmp_path, protocol):
    """The key test of multi-turn GRPO (Unsloth's fork ignored env_mask and collapsed).

    A trajectory is [model turn A][observation O1][model turn B][observation O2, cut at the token
    limit]. Replacing O2's tokens leaves TRL's loss and every gradient bit for bit unchanged: with
    ``env_mask`` 0 they are no target of the loss, and nothing model-written follows them. (O1's
    tokens are different: they are context for turn B, so changing them changes B's log-probs, as
    it must; their own log-probs are masked the same way.) Controls: the same change with
    ``env_mask`` all ones changes the gradients (so the test can fail), and so does changing one
    token the model wrote, with the mask."""
    path, _, auto = tiny
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))  # a copy: the tools case changes its chat template
    a, o1, b, o2 = _pieces(tok, protocol)
    other = [(t + 7) % TINY.vocab_size for t in o2]
    assert other != o2
    prompt = tok("How many singers are there?", add_special_tokens=False)["input_ids"]

    def traj(obs_tail, model_b=b):
        return a + o1 + model_b + obs_tail

    mask = [1] * len(a) + [0] * len(o1) + [1] * len(b) + [0] * len(o2)
    state = {"completions": [traj(o2), traj(o2, b[::-1])], "mask": mask}

    def rollout(prompts, trainer):
        assert len(prompts) == 2  # one per rollout: TRL has repeated each prompt num_generations times
        return {"prompt_ids": [prompt] * 2, "completion_ids": state["completions"],
                "env_mask": [state["mask"]] * 2, "logprobs": None}

    trainer = _trainer(path, auto, tmp_path, rollout)
    inputs = [{"prompt": [{"role": "user", "content": "How many singers are there?"}]}] * 2
    base_loss, base_grads = _loss_and_grads(trainer, inputs)
    # on-policy (one update per generation batch) the loss VALUE is fixed by the advantages and the
    # mask (every ratio is 1); its gradient is what carries the tokens' log-probs
    assert any(g.abs().sum() > 0 for g in base_grads.values())

    state["completions"] = [traj(other), traj(o2, b[::-1])]  # observation tokens changed
    loss, grads = _loss_and_grads(trainer, inputs)
    assert torch.equal(loss, base_loss)
    assert base_grads.keys() == grads.keys() and all(torch.equal(base_grads[k], grads[k]) for k in grads)

    state["completions"] = [traj(o2, [b[0], (b[1] + 3) % TINY.vocab_size, b[2]]), traj(o2, b[::-1])]  # a model token
    _, grads_m = _loss_and_grads(trainer, inputs)
    assert any(not torch.equal(base_grads[k], grads_m[k]) for k in grads_m)

    # control: without the mask, the observation change is seen by the loss
    state["mask"] = [1] * len(mask)
    state["completions"] = [traj(o2), traj(o2, b[::-1])]
    _, unmasked = _loss_and_grads(trainer, inputs)
    state["completions"] = [traj(other), traj(o2, b[::-1])]
    _, unmasked_changed = _loss_and_grads(trainer, inputs)
    assert any(not torch.equal(unmasked[k], unmasked_changed[k]) for k in unmasked)


# ---------------------------------------------------------------------- the rollout's contract


@pytest.fixture()
def db(tmp_path):
    path = tmp_path / "concert.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, age INTEGER)")
    con.executemany("INSERT INTO singer VALUES (?, ?, ?)", [(1, "Ann", 25), (2, "Bo", 41), (3, "Cy", 33)])
    con.commit()
    con.close()
    return str(path)


def _scripted(monkeypatch, tok, turns_by_prompt):
    """Replace the model's turns with scripted text (the loop, environment and masks stay real)."""
    import sqlcoach.generate.agent as agent_mod

    calls = {}

    def generate_turns(model, tokenizer, inputs, *, max_new_tokens, **_):
        ids_out, texts, ends = [], [], []
        for i, inp in enumerate(inputs):
            key = tuple(inp[:8])
            k = calls.get((key, i), 0)
            calls[(key, i)] = k + 1
            script = turns_by_prompt[i]
            text = script[min(k, len(script) - 1)]
            ids = tokenizer(text, add_special_tokens=False)["input_ids"][: max_new_tokens[i]]
            ids_out.append(ids)
            texts.append(tokenizer.decode(ids, skip_special_tokens=True))
            ends.append(False)
        return ids_out, texts, ends

    monkeypatch.setattr(agent_mod, "generate_turns", generate_turns)


class _Trainer:
    class state:  # noqa: N801 - TRL's attribute names
        global_step = 0

    class accelerator:  # noqa: N801
        process_index = 0

        @staticmethod
        def unwrap_model(m):
            return m

    def __init__(self, model):
        self.model = model
        from collections import defaultdict

        self._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}


def _rows(db):
    prompt = [{"role": "user", "content": "How many singers are there?"}]
    return [{"prompt": prompt, "db_path": db, "id": "q0", "db_id": "concert", "question": "How many singers are there?",
             "gold_sql": "SELECT count(*) FROM singer", "sql_names": None}]


def test_rollout_masks_exactly_the_observations_and_answers_as_written(tiny, db, monkeypatch):
    from sqlcoach.train.grpo_agent import AgentRollout

    path, tok, auto = tiny
    model = auto.from_pretrained(str(path))
    model.train()
    _scripted(monkeypatch, tok, [["<sql>SELECT count(*) FROM singer</sql>", "<solution>SELECT count(*) FROM singer</solution>"],
                                 ["<sql>SELECT nme FROM singer</sql>", "<sql>SELECT name FROM singer</sql>"]])
    block = AgentTraining(max_turns=2, observation_budget=200, per_observation=100, instruction=False)
    ro = AgentRollout(block, tok, template="sql_terminal", max_completion_length=200, temperature=1.0, workers=0)
    try:
        rows = _rows(db)
        ro.register(rows)
        out = ro([rows[0]["prompt"]] * 2, _Trainer(model))
    finally:
        ro.close()
    assert model.training  # generation switched it to eval; the rollout restored it
    assert set(out) >= {"prompt_ids", "completion_ids", "env_mask", "logprobs", "agent_answer", "agent_finish"}
    assert out["logprobs"] is None and len(out["completion_ids"]) == 2
    eos = tok.eos_token_id
    for ids, mask in zip(out["completion_ids"], out["env_mask"]):
        assert len(ids) == len(mask) <= 200
        assert ids[-1] == eos and mask[-1] == 0  # closed by the end token, which carries no loss
        masked = tok.decode([t for t, m in zip(ids[:-1], mask[:-1]) if m == 0])
        model_text = tok.decode([t for t, m in zip(ids, mask) if m == 1])
        assert masked.strip().startswith("<observation>") and "turns left: 1" in masked
        assert "<observation>" not in model_text and model_text.startswith("<sql>")
    assert out["agent_finish"] == ["solution", "turn_limit"]
    assert out["agent_answer"] == ["SELECT count(*) FROM singer", "SELECT name FROM singer"]  # the last query at the limit
    assert out["agent_turns"] == [2, 2] and out["agent_queries"] == [1, 2] and out["agent_malformed"] == [0, 0]
    assert "error: exec_error" in tok.decode(out["completion_ids"][1])  # the failing first query's observation


def test_tool_protocol_rollout_masks_exactly_the_tool_messages(tiny, db, monkeypatch):
    """The tool protocol through the same rollout: env_mask is 0 on every token of the template's
    tool messages (the turn's end, the tool role header, the result, the next assistant header) and
    on the end token, 1 on the model's calls and answer; a malformed call is an error observation."""
    from transformers import AutoTokenizer
    from tool_template import with_tool_template

    from sqlcoach.train.grpo_agent import AgentRollout

    path, _, auto = tiny
    tok = with_tool_template(AutoTokenizer.from_pretrained(str(path)))
    model = auto.from_pretrained(str(path))
    model.train()

    def call(sql):
        return '<tool_call>\n{"name": "run_sql", "arguments": {"query": "%s"}}\n</tool_call>' % sql

    # (the longer script first: _scripted indexes the trajectories still running)
    _scripted(monkeypatch, tok, [[call("SELECT nme FROM singer"), "<tool_call>{bad json</tool_call>",
                                  call("SELECT name FROM singer")],
                                 [call("SELECT count(*) FROM singer"), "SELECT count(*) FROM singer"]])
    block = AgentTraining(protocol="tools", max_turns=3, observation_budget=600, per_observation=300, instruction=True)
    ro = AgentRollout(block, tok, template="sql_terminal", max_completion_length=1200, temperature=1.0, workers=0)
    try:
        rows = _rows(db)
        ro.register(rows)
        seen = {}
        run = ro.trajectories

        def spy(*args, **kw):  # keep the rollout's environments to compare against
            rolls, seen["envs"] = run(*args, **kw)
            return rolls, seen["envs"]

        ro.trajectories = spy
        out = ro([rows[0]["prompt"]] * 2, _Trainer(model))
        envs = seen["envs"]
    finally:
        ro.close()
    prompt = tok.decode(out["prompt_ids"][0])
    assert '"name": "run_sql"' in prompt and "You may call the run_sql tool" in prompt  # tools=, the instruction
    assert out["agent_finish"] == ["turn_limit", "solution"]
    assert out["agent_answer"] == ["SELECT name FROM singer", "SELECT count(*) FROM singer"]
    assert out["agent_turns"] == [3, 2] and out["agent_queries"] == [2, 1] and out["agent_malformed"] == [1, 0]
    eos = tok.eos_token_id
    for ids, mask, env in zip(out["completion_ids"], out["env_mask"], envs):
        assert len(ids) == len(mask) <= 1200 and ids[-1] == eos and mask[-1] == 0
        masked = tok.decode([t for t, m in zip(ids[:-1], mask[:-1]) if m == 0])
        model_text = tok.decode([t for t, m in zip(ids, mask) if m == 1])
        assert masked == "".join(t.observation for t in env.turns)  # exactly the tool messages
        assert masked.startswith("<|im_end|>\n<|im_start|>user\n<tool_response>\n")
        assert "<tool_response>" not in model_text and "<|im_start|>" not in model_text
        assert model_text == "".join(t.text for t in env.turns)
    assert "error: exec_error" in tok.decode(out["completion_ids"][0])
    assert "error: malformed_turn: the tool call is not valid JSON" in tok.decode(out["completion_ids"][0])


def test_tool_protocol_is_refused_for_a_template_without_tool_calls(tiny):
    from sqlcoach.train.grpo_agent import AgentRollout

    path, tok, _ = tiny  # the tiny model's ChatML: no tools
    with pytest.raises(ConfigError, match="does not render the tools it is given"):
        AgentRollout(AgentTraining(protocol="tools"), tok, template="sql_terminal", max_completion_length=64,
                     temperature=1.0, workers=0)


def test_an_overflowing_observation_is_cut_to_the_trajectory_bound(tiny, db, monkeypatch):
    from sqlcoach.train.grpo_agent import AgentRollout

    path, tok, auto = tiny
    model = auto.from_pretrained(str(path))
    _scripted(monkeypatch, tok, [["<sql>SELECT * FROM singer</sql>"]])
    block = AgentTraining(max_turns=3, observation_budget=500, per_observation=400, instruction=False)
    turn = len(tok("<sql>SELECT * FROM singer</sql>", add_special_tokens=False)["input_ids"])
    limit = turn + 6  # room for 5 observation tokens (one token is kept for the end token)
    ro = AgentRollout(block, tok, template="sql_terminal", max_completion_length=limit, temperature=1.0, workers=0)
    try:
        ro.register(_rows(db))
        out = ro([_rows(db)[0]["prompt"]], _Trainer(model))
    finally:
        ro.close()
    ids, mask = out["completion_ids"][0], out["env_mask"][0]
    assert len(ids) == limit - 1 and mask == [1] * turn + [0] * 5  # cut, not dropped; no end token: truncated
    assert out["agent_finish"] == ["length"] and out["agent_answer"] == ["SELECT * FROM singer"]


def test_rewards_score_the_final_answer_and_the_format_term(db):
    from sqlcoach.rewards import build_rewards
    from sqlcoach.train.grpo import RewardRecorder
    from sqlcoach.train.grpo_agent import final_answers

    ex, fmt = build_rewards(["execution_binary", {"name": "agent_format", "weight": 0.1}], workers=0)
    rec = RewardRecorder([ex, fmt], view=final_answers)
    # the trajectory text holds a right query first; the final answer is wrong, then right
    traj = "<sql>SELECT count(*) FROM singer</sql>\n<observation>\n3\n</observation>\n<solution>SELECT 1</solution>"
    cols = {"gold_sql": ["SELECT count(*) FROM singer"] * 2, "db_path": [db] * 2,
            "agent_answer": ["SELECT 1", "SELECT count(*) FROM singer"], "agent_finish": ["solution", "turn_limit"],
            "agent_malformed": [0, 0]}
    r_ex = rec.wrapped[0](prompts=["p", "p"], completions=[traj, traj], completion_ids=[[1], [1]], **cols)
    r_fmt = rec.wrapped[1](prompts=["p", "p"], completions=[traj, traj], completion_ids=[[1], [1]], **cols)
    assert r_ex == [0.1, 1.0]  # runs but wrong / equal: the final answers, not the query in the text
    assert r_fmt == [0.1, 0.0]  # answered with <solution> / ended at the turn limit
    assert [o.equal for o in rec.last["outcomes"]] == [False, True]  # dynamic sampling reads these
    assert rec.last["completions"] == [traj, traj]  # the sample log shows the trajectory
    with pytest.raises(ConfigError, match="agent_finish"):
        fmt(prompts=["p"], completions=["x"], completion_ids=[[1]], gold_sql=["x"])


def test_agent_block_errors():
    base = dict(model="m", data_path="d")
    cfg = build_config(GRPORunConfig, {**base, "agent": {"max_turns": 3}})
    assert isinstance(cfg.agent, AgentTraining) and cfg.agent.max_turns == 3 and cfg.agent.env().max_turns == 3
    assert build_config(GRPORunConfig, {**base, "agent": "true"}).agent == AgentTraining()
    assert build_config(GRPORunConfig, base).agent is None
    assert build_config(GRPORunConfig, {**base, "agent": {"protocol": "tools"}}).agent.env().protocol == "tools"
    for bad, msg in [({"max_turn": 3}, "unknown key"), ({"protocol": "xml"}, "protocol must be one of tags, tools"),
                     ({"max_turns": 0}, "max_turns"), ({"instruction": "yes"}, "instruction"),
                     ({"max_turn_tokens": 999}, "max_turn_tokens"), ([3], "mapping"),
                     ({"on_limit": "gold"}, "on_limit")]:
        with pytest.raises(ConfigError, match=msg):
            build_config(GRPORunConfig, {**base, "agent": bad})
    assert AgentTraining.of({}) == AgentTraining()  # an empty mapping is the defaults
    with pytest.raises(ConfigError, match="agent_format"):
        build_config(GRPORunConfig, {**base, "rewards": ["execution", "agent_format"]})


def test_recorded_block_round_trips():
    block = AgentTraining(max_turns=4, instruction=False)
    rec = block.as_recipe(192)
    assert rec["max_total_tokens"] == 192 and AgentTraining.of(rec) == block


def test_predict_takes_the_command_line_then_the_recorded_agent_settings():
    import argparse

    from sqlcoach.commands.predict import AGENT_DEFAULTS, agent_settings

    keys = dict(max_turns=None, observation_budget=None, observation_tokens=None, max_total_tokens=None,
                on_limit=None, untagged=None, observation_names=None, agent_instruction=None, protocol=None, keep=None)
    recorded = AgentTraining(max_turns=3, per_observation=96, instruction=False).as_recipe(192)
    st = agent_settings(argparse.Namespace(**{**keys, "max_turns": 4}), recorded)
    assert st["max_turns"] == 4  # given on the command line
    assert st["per_observation"] == 96 and st["instruction"] is False and st["max_total_tokens"] == 192  # recorded
    assert agent_settings(argparse.Namespace(**keys), None) == AGENT_DEFAULTS
    # a model trained with native tool calls predicts with them unless the command line says otherwise
    tools = AgentTraining(protocol="tools").as_recipe(192)
    assert agent_settings(argparse.Namespace(**keys), tools)["protocol"] == "tools"
    assert agent_settings(argparse.Namespace(**{**keys, "protocol": "tags"}), tools)["protocol"] == "tags"
    # a model trained with the keep action predicts with it
    keep = AgentTraining(keep=True).as_recipe(192)
    assert agent_settings(argparse.Namespace(**keys), keep)["keep"] is True
    assert agent_settings(argparse.Namespace(**keys), None)["keep"] is False
