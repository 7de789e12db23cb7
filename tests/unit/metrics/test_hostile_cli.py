"""Hostile predictions through the whole `sqlcoach evaluate` process (benchmarks/hostile.py):
each gets an error class, the run finishes within a few timeouts, memory stays bounded, and the
database file is byte-identical afterwards. Uses a copy of Spider's world_1 when ../shared is
present, else a generated table of the same size."""

import importlib.util
from pathlib import Path

from sqlcoach.types import ERROR_CLASSES

_spec = importlib.util.spec_from_file_location(
    "hostile_bench", Path(__file__).resolve().parents[3] / "benchmarks" / "hostile.py"
)
hostile = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hostile)


def test_hostile_predictions_are_contained():
    timeout = 1.0
    r = hostile.run(timeout=timeout)
    assert r["returncode"] == 0, r["stderr"]
    assert len(r["verdicts"]) == len(hostile.HOSTILE)
    for sql, ex, err in r["verdicts"]:
        assert ex is False, sql
        assert err in ERROR_CLASSES and err not in ("gold_error", "wrong_result"), (sql, err)
    errors = dict((sql, err) for sql, _, err in r["verdicts"])
    assert errors[hostile.HOSTILE[0][:50]] == "timeout"  # endless recursive CTE
    assert errors[""] == "no_sql"
    # within a few timeouts (queries run two at a time; start-up and parsing included)
    assert r["seconds"] < 12 * timeout, r["seconds"]
    assert r["peak_rss_mb"] < 1024, r["peak_rss_mb"]
    assert r["unchanged"] and r["files"] == ["world_1.sqlite"]
