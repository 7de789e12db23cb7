"""`predict --agent` end to end on a tiny untrained model: it terminates within the turn limit,
the JSONL keeps every turn, and the loop in its degenerate setting is exactly single-pass greedy."""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from sqlcoach.cli import main  # noqa: E402

pytestmark = pytest.mark.integration
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TURN_KEYS = {"kind", "text", "sql", "observation", "error", "tokens", "exec_seconds"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from sqlcoach.data.world import build_world

    root = tmp_path_factory.mktemp("agent")
    world = root / "world"
    build_world(world, seed=0, n_train=20, n_dev=4, progress=False)
    model = root / "model"
    assert main(["model", "init", str(model), "--size", "tiny", "--corpus", str(world), "--vocab-size", "600"]) == 0
    return world, model


def test_predict_agent_writes_every_turn(setup, tmp_path, capsys):
    world, model = setup
    out = tmp_path / "agent.sql"
    rc = main(["predict", "--agent", "--max-turns", "3", "--model", str(model), "--data", str(world), "--split", "dev",
               "--out", str(out), "--limit", "3", "--max-new-tokens", "6", "--workers", "0", "--device", "cpu"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "agent: 3 trajectories" in printed and "mean turns" in printed and "recoveries" in printed
    recs = [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines()]
    assert [r["index"] for r in recs] == [0, 1, 2]
    for r in recs:
        assert r["agent"] is True and 1 <= len(r["turns"]) <= 3
        assert r["finish"] in ("solution", "turn_limit", "observation_budget", "length")
        assert all(set(t) == TURN_KEYS for t in r["turns"])
        assert r["generated_tokens"] == sum(t["tokens"] for t in r["turns"])
        # an untrained model writes no tags: every turn but a last one is answered by an error observation
        for t in r["turns"][:-1]:
            assert t["observation"].startswith("\n<observation>\n") and "turns left:" in t["observation"]
    assert len(out.read_text().splitlines()) == 3


def test_predict_agent_self_consistency_over_trajectories(setup, tmp_path, capsys):
    world, model = setup
    out = tmp_path / "sc.sql"
    assert main(["predict", "--agent", "--n", "3", "--temperature", "0.8", "--untagged", "solution", "--max-turns", "2",
                 "--model", str(model), "--data", str(world), "--split", "dev", "--out", str(out), "--limit", "2",
                 "--max-new-tokens", "6", "--workers", "0", "--device", "cpu"]) == 0
    assert "agent: 2 trajectories" in capsys.readouterr().out
    for line in out.with_suffix(".jsonl").read_text().splitlines():
        r = json.loads(line)
        assert len(r["trajectories"]) == 3 and len(r["votes"]) == 3 and r["select"] == "vote"
        if r["chosen"] >= 0:
            assert r["sql"] == r["trajectories"][r["chosen"]]["sql"]


def test_agent_loop_degenerates_to_greedy(setup, tmp_path):
    """No instruction and untagged text read as the answer: one turn, the same SQL as `predict`."""
    world, model = setup
    common = ["--model", str(model), "--data", str(world), "--split", "dev", "--limit", "4", "--max-new-tokens", "10",
              "--workers", "0", "--device", "cpu"]
    assert main(["predict", *common, "--out", str(tmp_path / "greedy.sql")]) == 0
    assert main(["predict", "--agent", "--untagged", "solution", "--no-agent-instruction", *common,
                 "--out", str(tmp_path / "agent.sql")]) == 0
    assert (tmp_path / "greedy.sql").read_text() == (tmp_path / "agent.sql").read_text()


def test_agent_bad_options(setup, tmp_path):
    world, model = setup
    base = ["predict", "--agent", "--model", str(model), "--data", str(world), "--out", str(tmp_path / "x.sql")]
    assert main([*base, "--resume"]) == 2
    assert main([*base, "--history", "gold"]) == 2
    assert main([*base, "--max-turns", "0"]) == 2


def test_ask_agent_prints_each_turn(setup, capsys):
    world, model = setup
    db = next((world / "database").rglob("*.sqlite"))
    rc = main(["ask", "--agent", "--max-turns", "2", "--max-new-tokens", "5", "--db", str(db), "--model", str(model),
               "--device", "cpu", "How many rows are there?"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "turn 1 (" in out and "ended: " in out and "SQL: " in out
    assert main(["ask", "--agent", "--db", str(db), "--json", "--max-turns", "1", "--max-new-tokens", "3",
                 "--model", str(model), "--device", "cpu", "How many?"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["turns"]) == 1 and doc["finish"] in ("solution", "turn_limit", "length")
    # self-consistency over trajectories: n of them, the chosen one's turns, every one kept
    assert main(["ask", "--agent", "--db", str(db), "--json", "--max-turns", "2", "--max-new-tokens", "4", "--n", "3",
                 "--select", "vote", "--untagged", "solution", "--model", str(model), "--device", "cpu", "How many?"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["select"] == "vote" and len(doc["trajectories"]) == 3 and len(doc["votes"]) == 3
    assert doc["turns"] == doc["trajectories"][max(doc["chosen"], 0)]["turns"]


def test_agent_rows_train_sft_reads_them(setup, tmp_path, capsys):
    """Warm-start rows from an untrained policy (every attempt fails: revisions), read by `train sft`."""
    world, model = setup
    rows = tmp_path / "rows.jsonl"
    assert main(["agent", "rows", "--model", str(model), "--data", str(world), "--split", "train", "--limit", "6",
                 "--out", str(rows), "--max-new-tokens", "8", "--workers", "0", "--device", "cpu",
                 "--max-turns", "3"]) == 0
    assert "agent rows" in capsys.readouterr().out
    from sqlcoach.data.export import read_training_file
    from sqlcoach.prompts.agent import SOLUTION_CLOSE, SOLUTION_OPEN

    got, problems, settings = read_training_file(rows)
    assert len(got) == 6 and not problems and settings["template"] == "sql_terminal"
    recs = [json.loads(line) for line in rows.read_text().splitlines()]
    for rec, row in zip(recs, got):
        text = row["completion"][0]["content"]
        assert text.endswith(SOLUTION_CLOSE) and text.count(SOLUTION_OPEN) == 1
        if rec["agent_row"] == "revision":
            assert text.startswith("<sql>") and "\n<observation>\n" in text and "turns left: 2" in text
        assert "You may run SQL queries" in row["prompt"][-1]["content"]  # the instruction, as predict --agent shows it
    out = tmp_path / "sft"
    cfg = tmp_path / "sft.yaml"
    cfg.write_text("method: full\n")
    rc = main(["train", "sft", "--config", str(cfg), f"model={model}", "data_kind=export", f"data_path={rows}", f"output_dir={out}",
               "max_steps=1", "per_device_train_batch_size=2", "use_cpu=true", "dtype=float32", "max_length=2048",
               "disable_tqdm=true", "report_to=none", "save_steps=1"])
    assert rc == 0 and (out / "final").is_dir()
    # an untrained policy writes no SQL in 8 tokens (every row direct): make the first row a revision,
    # and train sft takes the masked path (no loss on the observation tokens)
    from sqlcoach.prompts.agent import observation_text, sql_turn

    turn, obs = sql_turn("SELECT 1"), observation_text("rows: 1", 2)
    recs[0]["completion"][0]["content"] = turn + obs + recs[0]["completion"][0]["content"]
    recs[0]["observation_spans"] = [[len(turn), len(turn) + len(obs)]]
    n_agent = sum(bool(rec["observation_spans"]) for rec in recs)
    rows.write_text("".join(json.dumps(rec) + "\n" for rec in recs))
    capsys.readouterr()
    rc = main(["train", "sft", "--config", str(cfg), f"model={model}", "data_kind=export", f"data_path={rows}",
               f"output_dir={tmp_path / 'sft2'}", "max_steps=1", "per_device_train_batch_size=2", "use_cpu=true",
               "dtype=float32", "max_length=2048", "disable_tqdm=true", "report_to=none", "save_steps=1"])
    assert rc == 0 and (tmp_path / "sft2" / "final").is_dir()
    assert f"{n_agent} of 6 rows are agent trajectories: no loss on their observation tokens" in capsys.readouterr().out


def test_run_agent_env_mask_marks_observation_tokens(setup):
    """What a GRPO rollout_func returns: env_mask is 0 exactly on the observations' tokens."""
    world, model_dir = setup
    from sqlcoach.data import load_examples
    from sqlcoach.generate.agent import AgentConfig, run_agent
    from sqlcoach.generate.agent_predict import agent_prompts, env_for
    from sqlcoach.models.load import load_model
    from sqlcoach.prompts.recipe import resolve_prompt

    model, tok = load_model(str(model_dir), device="cpu")
    exs = load_examples("spider", str(world), "dev")[:2]
    builder = resolve_prompt(str(model_dir)).builder()
    envs = [env_for(ex, AgentConfig(max_turns=3), builder.template) for ex in exs]
    rolls = run_agent(model, tok, agent_prompts(exs, tok, builder, 3), envs, max_new_tokens=5, max_total_tokens=400)
    for env, r in zip(envs, rolls):
        assert env.done and len(r.env_mask) == len(r.completion_ids) and r.prompt_ids
        obs_ids = [t for t, m in zip(r.completion_ids, r.env_mask) if m == 0]
        assert tok.decode(obs_ids) == "".join(t.observation for t in env.turns)
        assert sum(r.env_mask) == sum(t.tokens for t in env.turns)


def test_predict_agent_verifier_selection_over_trajectories(setup, tmp_path, monkeypatch):
    """A learned selector over whole trajectories: it reads each final answer's result, the
    question and the schema text; a failing answer is never scored and never wins; the record keeps
    every trajectory's score (null for the failing one) and the chosen one's. The turns are scripted (``generate_turns``
    replaced): trajectory j of each question answers with script[j]."""
    from sqlcoach.data import load_examples
    from sqlcoach.generate import agent as agent_mod
    from sqlcoach.generate.agent import AgentConfig
    from sqlcoach.generate.agent_predict import predict_agent
    from sqlcoach.generate.verifier_select import VerifierSelector
    from sqlcoach.models.load import load_model

    class LengthVerifier:  # scores a candidate by its SQL's length: the failing one is the longest
        read = []

        def score(self, items):
            self.read.extend(items)
            return [float(len(sql)) for _, _, sql, _ in items]

    world, model_dir = setup
    model, tok = load_model(str(model_dir), device="cpu")
    examples = load_examples("spider", str(world), "dev")[:2]
    golds = [ex.gold_sql for ex in examples]
    script = ["<solution>SELECT a_column_that_is_nowhere_to_be_found FROM no_such_table_at_all</solution>",
              "<solution>{g}</solution>", "<solution>SELECT * FROM ({g}) AS sub</solution>"]

    def scripted(model, tokenizer, inputs, *, max_new_tokens, **kw):
        texts = [script[i % 3].format(g=golds[i // 3]) for i in range(len(inputs))]
        return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts], texts, [False] * len(texts)

    monkeypatch.setattr(agent_mod, "generate_turns", scripted)
    fake = LengthVerifier()
    out = tmp_path / "v.sql"
    predict_agent(model, tok, examples, out, config=AgentConfig(max_turns=2), temperature=1.0,
                  max_new_tokens=8, workers=0, progress=False, n=3, select=VerifierSelector(fake, "verifier"))
    recs = [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines()]
    for r, g in zip(recs, golds):
        assert r["select"] == "verifier" and len(r["scores"]) == 3 == len(r["trajectories"])
        # the failing answer is not scored (it could not win); the two that ran are, by length
        assert r["scores"] == [None] + [float(len(t["sql"])) for t in r["trajectories"][1:]]
        assert (r["chosen"], r["fallback"]) == (2, False)  # the longest that ran; the failing one lost
        assert r["score"] == r["scores"][2] and r["sql"] == f"SELECT * FROM ({g}) AS sub"
    assert {q for q, _, _, _ in fake.read} == {ex.question for ex in examples}
    assert all(s and "(" in s for _, s, _, _ in fake.read)  # the schema text the policy saw
