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
