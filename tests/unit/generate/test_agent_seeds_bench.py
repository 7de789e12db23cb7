"""benchmarks/agent_seeds.py (issue 25's agent table): the configs it trains with exist and load as
the commands it runs them with, and its first-query column reads trajectories in question order."""

import importlib.util
import json
from pathlib import Path

from sqlcoach.config import GRPORunConfig, SFTRunConfig, load_config

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("agent_seeds_bench", ROOT / "benchmarks" / "agent_seeds.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_the_configs_it_trains_with_load():
    assert load_config(SFTRunConfig, ROOT / "configs/sft/demo-agent-warm.yaml").data_kind == "export"
    for config, base in bench.ARMS.values():
        cfg = load_config(GRPORunConfig, ROOT / "configs/grpo" / config)
        assert base in ("start", "warm") and (cfg.agent is not None) == (config == "demo-agent.yaml")
    assert set(bench.AGENT_ROWS) <= {"start", "warm", *bench.ARMS}


def test_first_queries_are_in_question_order(tmp_path):
    recs = [{"index": 1, "sql": "SELECT b FROM t", "turns": [{"kind": "sql", "sql": "SELECT a FROM t", "error": None},
                                                             {"kind": "solution", "sql": "SELECT b FROM t"}]},
            {"index": 0, "sql": "SELECT c FROM t", "turns": [{"kind": "solution", "sql": "SELECT c FROM t"}]}]
    path = tmp_path / "agent.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert bench._first_queries(path) == ["SELECT c FROM t", "SELECT a FROM t"]


def test_plain_rows_keep_prompt_and_final_answer_and_drop_the_agent_format(tmp_path):
    from sqlcoach.data.export import OBSERVATION_SPANS, read_training_file
    from sqlcoach.prompts.agent import KEEP_TURN, observation_text, solution_turn, sql_turn

    prompt = [{"role": "user", "content": "How many?"}]
    settings = {"template": "anonymized"}
    turn, obs = sql_turn("SELECT c1 FROM t1"), observation_text("columns (1): c1", 2)
    revision = {"prompt": prompt, "completion": [{"role": "assistant", "content": turn + obs + solution_turn("SELECT count(*) FROM t1")}],
                OBSERVATION_SPANS: [[len(turn), len(turn) + len(obs)]], "prompt_settings": settings}
    direct = {"prompt": prompt, "completion": [{"role": "assistant", "content": solution_turn("SELECT c2 FROM t2")}],
              OBSERVATION_SPANS: [], "prompt_settings": settings}
    kept = {"prompt": prompt, "completion": [{"role": "assistant", "content": turn + obs + KEEP_TURN}],
            OBSERVATION_SPANS: [[len(turn), len(turn) + len(obs)]], "prompt_settings": settings}
    review_obs = "<|im_end|>\n<|im_start|>user\n<observation>\nrows: 1\n</observation><|im_end|>\n<|im_start|>assistant\n"
    reviewed = {"prompt": prompt, "completion": [{"role": "assistant", "content": "SELECT c3 FROM t1" + review_obs + KEEP_TURN}],
                OBSERVATION_SPANS: [[17, 17 + len(review_obs)]], "prompt_settings": settings}
    src, out = tmp_path / "rows.jsonl", tmp_path / "plain.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in (revision, direct, kept, reviewed)))
    bench.plain_rows(src, out)
    rows, problems, got = read_training_file(out)
    assert not problems and got == settings
    assert [r["completion"] for r in rows] == [[{"role": "assistant", "content": "SELECT count(*) FROM t1"}],
                                               [{"role": "assistant", "content": "SELECT c2 FROM t2"}],
                                               [{"role": "assistant", "content": "SELECT c1 FROM t1"}],
                                               [{"role": "assistant", "content": "SELECT c3 FROM t1"}]]
    assert all(r["prompt"] == prompt and OBSERVATION_SPANS not in r for r in rows)


def test_add_agent_tokens_is_a_full_model_option():
    import pytest

    from sqlcoach.errors import ConfigError

    base = ROOT / "configs/sft/demo-agent-warm.yaml"
    assert load_config(SFTRunConfig, base, {"add_agent_tokens": True}).add_agent_tokens
    with pytest.raises(ConfigError, match="add_agent_tokens needs method=full"):
        load_config(SFTRunConfig, base, {"add_agent_tokens": True, "method": "lora"})


def test_keep_action_copies_only_the_multi_turn_recipe_with_keep(tmp_path):
    assert bench.grpo_config("demo.yaml", tmp_path, True) == str(ROOT / "configs/grpo/demo.yaml")
    assert bench.grpo_config("demo-agent.yaml", tmp_path, False) == str(ROOT / "configs/grpo/demo-agent.yaml")
    cfg = load_config(GRPORunConfig, bench.grpo_config("demo-agent.yaml", tmp_path, True))
    assert cfg.agent.keep is True and cfg.agent.max_turns == 3 and cfg.agent.protocol == "tags"
    cfg = load_config(GRPORunConfig, bench.grpo_config("demo-agent.yaml", tmp_path, True, "review"))
    assert cfg.agent.keep is True and cfg.agent.protocol == "review"
    cfg = load_config(GRPORunConfig, bench.grpo_config("demo-agent.yaml", tmp_path, False, "tags", 128, 384))
    assert cfg.agent.max_turn_tokens == 128 and cfg.max_completion_length == 384 and not cfg.agent.keep
    assert cfg.agent.on_limit == "last_query"
    cfg = load_config(GRPORunConfig, bench.grpo_config("demo-agent.yaml", tmp_path, True, "review", 128, 384, "none"))
    assert cfg.agent.on_limit == "none" and cfg.agent.protocol == "review"
