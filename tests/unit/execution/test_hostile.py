"""Hostile SQL: every query gets an error class, short deadlines hold, the database never changes."""

from __future__ import annotations

import time

import pytest
from exec_testdb import make_db, sha256, side_files

from sqlcoach.execution.pool import ExecutorPool, _SLEEP
from sqlcoach.execution.sandbox import Limits, execute

TIMEOUT = 0.5
LIMITS = Limits(timeout=TIMEOUT, max_rows=10_000, max_bytes=8 * 2**20, max_memory_mb=1024)

HOSTILE = {
    "endless recursive CTE": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT max(x) FROM c",
    "3-way cartesian count": "SELECT count(*) FROM big a, big b, big c",
    "3-way cartesian rows": "SELECT * FROM big a, big b, big c",
    "delete": "DELETE FROM singer",
    "update": "UPDATE singer SET age = 0",
    "drop": "DROP TABLE singer",
    "create": "CREATE TABLE evil (x)",
    "create index": "CREATE INDEX evil ON singer(age)",
    "insert": "INSERT INTO singer VALUES (100, 'x', 'y', 1)",
    "replace": "REPLACE INTO singer VALUES (1, 'x', 'y', 1)",
    "vacuum": "VACUUM",
    "vacuum into": "VACUUM INTO '/tmp/sqlcoach-evil.sqlite'",
    "alter": "ALTER TABLE singer RENAME TO s2",
    "reindex": "REINDEX",
    "reindex table": "REINDEX singer",
    "analyze": "ANALYZE",
    "select then drop": "SELECT 1; DROP TABLE singer",
    "attach": "ATTACH DATABASE ':memory:' AS other",
    "attach via select": "SELECT * FROM singer; ATTACH 'x.db' AS x",
    "writable_schema": "PRAGMA writable_schema=ON",
    "query_only off": "PRAGMA query_only=OFF",
    "pragma journal": "PRAGMA journal_mode=WAL",
    "pragma function": "SELECT * FROM pragma_journal_mode('wal')",
    "load_extension": "SELECT load_extension('x')",
    "writefile": "SELECT writefile('/tmp/sqlcoach-evil.txt', 'x')",
    "huge randomblob": "SELECT randomblob(2000000000)",
    "huge zeroblob": "SELECT zeroblob(1000000000)",
    "nested parentheses": "SELECT " + "(" * 3000 + "1" + ")" * 3000,
    "nul byte": "SELECT 1\x00; DROP TABLE singer",
    "junk": "lorem ipsum dolor sit amet",
    "blank": "   \n  ",
    "begin": "BEGIN; DELETE FROM singer; COMMIT",
    "savepoint": "SAVEPOINT x",
    "with delete": "WITH x AS (SELECT 1) DELETE FROM singer",
    "too many rows": "SELECT a.id FROM big a, big b LIMIT 20000",
}


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return make_db(tmp_path_factory.mktemp("hostile") / "music.sqlite")


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_each_hostile_query_in_process(db, name):
    before = sha256(db)
    t0 = time.monotonic()
    res = execute(db, HOSTILE[name], LIMITS)
    assert res.error is not None and res.rows is None, (name, res)
    assert res.error in {"no_sql", "parse_error", "exec_error", "timeout", "too_large"}
    assert time.monotonic() - t0 < TIMEOUT + 0.4
    assert sha256(db) == before and side_files(db) == []


def test_specific_classes(db):
    expect = {
        "endless recursive CTE": "timeout",
        "3-way cartesian count": "timeout",
        "3-way cartesian rows": "too_large",
        "too many rows": "too_large",
        "huge randomblob": "too_large",
        "huge zeroblob": "too_large",
        "nested parentheses": "parse_error",
        "junk": "parse_error",
        "nul byte": "parse_error",
        "blank": "no_sql",
        "select then drop": "exec_error",
        "query_only off": "exec_error",
        "load_extension": "exec_error",
    }
    for name, error in expect.items():
        assert execute(db, HOSTILE[name], LIMITS).error == error, name


def test_query_only_cannot_be_turned_off(db):
    before = sha256(db)
    assert execute(db, "PRAGMA query_only=OFF", LIMITS).error == "exec_error"
    assert execute(db, "DELETE FROM singer", LIMITS).error == "exec_error"
    assert execute(db, "SELECT count(*) FROM singer", LIMITS).rows == ((6,),)
    assert sha256(db) == before


def test_hostile_batch_through_pool(db, tmp_path):
    before = sha256(db)
    names = sorted(HOSTILE)
    jobs = [(str(db), HOSTILE[n]) for n in names] + [(str(db), "SELECT count(*) FROM singer")]
    t0 = time.monotonic()
    with ExecutorPool(workers=2, limits=LIMITS) as pool:
        results = pool.run(jobs)
    took = time.monotonic() - t0
    for name, res in zip(names, results):
        assert res.error is not None, (name, res)
    assert results[-1].rows == ((6,),)  # a good query after the hostile ones still runs
    # 3 queries hit the deadline; on 2 workers the batch needs about 2 deadlines plus start-up
    assert took < 6 * TIMEOUT, took
    assert sha256(db) == before and side_files(db) == []
    assert not (tmp_path / "sqlcoach-evil.sqlite").exists()


# A real query that burns CPU inside ONE C call (printf's padding loop runs ~2e9 iterations, no
# VM step, so the progress handler never fires: ~20 s in-process). Only the pool's kill stops it.
C_CALL_BURNER = "SELECT printf('%.*c', 2000000000, 'x')"


def test_hard_kill_stops_a_long_c_call(db):
    limits = Limits(timeout=0.3, max_bytes=2**20)
    with ExecutorPool(workers=1, limits=limits, hard_timeout_factor=1.0) as pool:
        t0 = time.monotonic()
        results = pool.run([(str(db), "SELECT 1"), (str(db), C_CALL_BURNER), (str(db), "SELECT 2")])
        took = time.monotonic() - t0
        assert [r.error for r in results] == [None, "timeout", None]
        assert results[2].rows == ((2,),)
        assert took < limits.timeout + 0.5 + 3.0, took


def test_hard_kill_replaces_worker_and_keeps_other_jobs(db):
    limits = Limits(timeout=0.2)
    with ExecutorPool(workers=1, limits=limits, hard_timeout_factor=1.0) as pool:
        assert pool.run_one(db, "SELECT 1").ok
        (first_pid,) = pool.worker_pids()
        jobs = [(str(db), "SELECT 1"), (_SLEEP, "30"), (str(db), "SELECT 2"), (str(db), "SELECT 3")]
        t0 = time.monotonic()
        results = pool.run(jobs)
        took = time.monotonic() - t0
        assert [r.rows for r in results] == [((1,),), None, ((2,),), ((3,),)]
        assert results[1].error == "timeout" and "hard limit" in results[1].message
        assert took < limits.timeout + 0.5 + 2.0  # killed at timeout*factor + grace, not after 30 s
        (second_pid,) = pool.worker_pids()
        assert second_pid != first_pid
        assert pool.run_one(db, "SELECT 4").rows == ((4,),)
