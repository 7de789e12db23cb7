"""benchmarks/smollm2_agent.py's report helpers: which trajectories it shows as revisions after a
failed first query (right ones first; a final answer equal to the failed query is not one)."""

import importlib.util
import json
from pathlib import Path

from sqlcoach.types import Example

_spec = importlib.util.spec_from_file_location(
    "smollm2_agent_bench", Path(__file__).resolve().parents[3] / "benchmarks" / "smollm2_agent.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def _record(i, first_sql, first_error, final_sql, turns=2):
    first = {"kind": "sql", "text": f"<sql>{first_sql}</sql>", "sql": first_sql, "error": first_error,
             "observation": "error: exec_error: no such column: T2.Country" if first_error else "rows: 1"}
    rest = [{"kind": "solution", "text": f"<solution>{final_sql}</solution>", "sql": final_sql, "error": None,
             "observation": None}] * (turns - 1)
    return {"index": i, "sql": final_sql, "turns": [first] + rest}


def test_recovered_samples_shows_revisions_after_a_failed_query_right_first(tmp_path):
    recs = [
        _record(0, "SELECT T2.Country FROM t", "exec_error", "SELECT country FROM t"),      # revised, wrong
        _record(1, "SELECT T2.Country FROM t", "exec_error", "SELECT T2.Country  FROM t"),  # same query again
        _record(2, "SELECT a FROM t", None, "SELECT b FROM t"),                             # first query ran
        _record(3, "SELECT x FROM t", "exec_error", "SELECT a FROM t"),                     # revised, right
    ]
    path = tmp_path / "pred.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in reversed(recs)))
    examples = [Example(id=str(i), db_id="d", question=f"q{i}", gold_sql="SELECT a FROM t") for i in range(4)]
    res = {"agent": {"jsonl_path": str(path)}, "ex_correct": [False, False, False, True]}
    shown = bench.recovered_samples(res, examples, show=5)
    assert [s[0] for s in shown] == ["[d] q3", "[d] q0"]
    assert shown[0][-1].startswith("  final (right, 2 turns)") and "no such column" in shown[1][3]
    assert len(bench.recovered_samples(res, examples, show=1)) == 1

