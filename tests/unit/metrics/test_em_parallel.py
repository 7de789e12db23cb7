"""EM and hardness give the same labels however the rows are split among forked processes."""

from __future__ import annotations

import multiprocessing
import sys
import threading

from sqlcoach.metrics import em as em_mod
from sqlcoach.metrics.em import em_and_hardness, start_em_and_hardness

GOLDS = ["SELECT count(*) FROM singer", "SELECT name FROM singer WHERE age > 20 ORDER BY age DESC LIMIT 3",
         "SELECT a FROM t1 JOIN t2 ON t1.id = t2.id GROUP BY a HAVING count(*) > 1",
         "SELECT x FROM t WHERE y IN (SELECT y FROM u) UNION SELECT x FROM v", "selec nothing"]
PREDS = ["SELECT count(*) FROM singer", "SELECT name FROM singer WHERE age > 20", "", "SELECT x FROM t", "garbage ("]


def _rows(n: int) -> tuple[list[str], list[str], list[str]]:
    preds = [PREDS[i % len(PREDS)] for i in range(n)]
    golds = [GOLDS[(i * 3) % len(GOLDS)] for i in range(n)]
    return preds, golds, ["d"] * n


def test_chunked_labels_equal_single_process(monkeypatch):
    monkeypatch.setenv("SQLCOACH_NO_CACHE", "1")
    preds, golds, dbs = _rows(em_mod._PARALLEL_MIN + 37)
    one = em_and_hardness(preds, golds, dbs, tables_path=None, want_em=True, workers=1)
    pending = start_em_and_hardness(preds, golds, dbs, tables_path=None, want_em=True, workers=3)  # leader + 2 helpers
    if "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1 and "torch" not in sys.modules:
        assert pending._proc is not None  # the forked path is the one under test
    assert pending.result() == one
    assert {h for _, h in one} >= {"easy", "medium", "hard", None}
    assert any(e for e, _ in one) and not all(e for e, _ in one)


def test_a_helper_that_cannot_fork_is_labelled_by_the_leader(monkeypatch):
    monkeypatch.setenv("SQLCOACH_NO_CACHE", "1")
    preds, golds, dbs = _rows(em_mod._PARALLEL_MIN + 5)
    want = em_and_hardness(preds, golds, dbs, tables_path=None, want_em=True, workers=1)
    monkeypatch.setattr(em_mod, "_fork_helper", lambda rows, tables, want_em: None)  # inherited by the leader
    assert em_and_hardness(preds, golds, dbs, tables_path=None, want_em=True, workers=4) == want
