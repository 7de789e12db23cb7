"""ExecutorPool: order, cache, dedupe, worker replacement, clean shutdown, in-process mode, DML."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
from exec_testdb import SINGERS, make_db, sha256

from sqlcoach.execution import sandbox
from sqlcoach.execution.pool import ExecutorPool, _SLEEP
from sqlcoach.execution.sandbox import Limits


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return make_db(tmp_path_factory.mktemp("pool") / "music.sqlite")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_constructor_validation():
    with pytest.raises(ValueError, match="workers"):
        ExecutorPool(workers=-1)
    with pytest.raises(ValueError, match="hard_timeout_factor"):
        ExecutorPool(workers=0, hard_timeout_factor=0.5)
    with pytest.raises(ValueError, match="cache_size"):
        ExecutorPool(workers=0, cache_size=-1)


@pytest.mark.parametrize("workers", [0, 2])
def test_results_in_job_order(db, workers):
    jobs = [(str(db), f"SELECT {i}, name FROM singer WHERE singer_id = {1 + i % 6}") for i in range(300)]
    jobs.insert(17, (str(db), "SELECT nope"))
    with ExecutorPool(workers=workers) as pool:
        results = pool.run(jobs)
    assert len(results) == len(jobs)
    assert results[17].error == "exec_error"
    rest = results[:17] + results[18:]
    assert [r.rows[0][0] for r in rest] == list(range(300))
    assert [r.rows[0][1] for r in rest] == [SINGERS[i % 6][1] for i in range(300)]


def test_empty_jobs(db):
    with ExecutorPool(workers=2) as pool:
        assert pool.run([]) == []
        assert pool.worker_pids() == []  # workers start lazily


@pytest.mark.parametrize("workers", [0, 2])
def test_cache_executes_a_gold_query_once(db, workers):
    with ExecutorPool(workers=workers) as pool:
        gold = [(str(db), "SELECT count(*) FROM singer")] * 50
        results = pool.run(gold, cache=True)
        assert all(r.rows == ((6,),) for r in results)
        assert pool.cache_info()["misses"] == 1 and pool.cache_info()["hits"] == 49
        pool.run(gold[:10], cache=True)
        assert pool.cache_info()["misses"] == 1 and pool.cache_info()["hits"] == 59
        # without cache=True, nothing is looked up or stored
        pool.run(gold[:5])
        assert pool.cache_info()["misses"] == 1 and pool.cache_info()["hits"] == 59


def test_cache_key_includes_the_file_state(tmp_path):
    path = make_db(tmp_path / "m.sqlite")
    with ExecutorPool(workers=0) as pool:
        assert pool.run_one(path, "SELECT count(*) FROM singer", cache=True).rows == ((6,),)
        # the file changes (size/mtime): the cached result must not be reused
        import sqlite3

        c = sqlite3.connect(path)
        c.execute("DELETE FROM singer WHERE singer_id > 2")
        c.execute("INSERT INTO big(label) SELECT label FROM big")  # changes the size too
        c.commit()
        c.close()
        assert pool.run_one(path, "SELECT count(*) FROM singer", cache=True).rows == ((2,),)
        assert pool.cache_info()["misses"] == 2


def test_cache_size_bounds_memory(db):
    with ExecutorPool(workers=0, cache_size=3) as pool:
        pool.run([(str(db), f"SELECT {i}") for i in range(10)], cache=True)
        assert pool.cache_info()["size"] == 3


def test_timeouts_are_not_cached(db):
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT max(x) FROM c"
    with ExecutorPool(workers=0, limits=Limits(timeout=0.1)) as pool:
        assert pool.run_one(db, endless, cache=True).error == "timeout"
        assert pool.run_one(db, endless, cache=True).error == "timeout"
        assert pool.cache_info() == {"hits": 0, "misses": 2, "size": 0}


def test_workers_are_reused_across_runs(db):
    with ExecutorPool(workers=2) as pool:
        pool.run([(str(db), f"SELECT {i}") for i in range(40)])
        pids = pool.worker_pids()
        assert len(pids) == 2
        pool.run([(str(db), f"SELECT {i}") for i in range(40)])
        assert pool.worker_pids() == pids


def test_close_leaves_no_processes(db):
    pool = ExecutorPool(workers=2)
    pool.run([(str(db), f"SELECT {i}") for i in range(20)])
    pids = pool.worker_pids()
    assert len(pids) == 2 and all(_pid_alive(p) for p in pids)
    pool.close()
    assert pool.worker_pids() == []
    assert not any(_pid_alive(p) for p in pids)
    pool.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        pool.run([(str(db), "SELECT 1")])


def test_garbage_collected_pool_stops_its_workers(db):
    import gc

    pool = ExecutorPool(workers=1)
    pool.run_one(db, "SELECT 1")
    pids = pool.worker_pids()
    del pool
    gc.collect()
    deadline = time.monotonic() + 3
    while any(_pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_pid_alive(p) for p in pids)


def test_worker_that_dies_blames_its_query_and_the_rest_continue(db):
    with ExecutorPool(workers=1, limits=Limits(timeout=5.0)) as pool:
        pool.run_one(db, "SELECT 1")
        (pid,) = pool.worker_pids()
        # the worker is killed from outside while it runs the sleep job (e.g. by the OOM killer)
        jobs = [(str(db), "SELECT 1"), (_SLEEP, "5"), (str(db), "SELECT 2")]
        import threading

        threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()
        results = pool.run(jobs)
        assert results[0].rows == ((1,),) and results[2].rows == ((2,),)
        assert results[1].error == "too_large" and "signal 9" in results[1].message
        assert pool.worker_pids() and pool.worker_pids() != [pid]


def test_in_process_mode_starts_no_process(db):
    with ExecutorPool(workers=0) as pool:
        assert pool.run_one(db, "SELECT count(*) FROM big").rows == ((2000,),)
        assert pool.worker_pids() == []


def test_progress_bar_goes_to_stderr(db, capsys):
    with ExecutorPool(workers=0) as pool:
        pool.run([(str(db), "SELECT 1")] * 5, progress="gold")
    err = capsys.readouterr().err
    assert "gold" in err


@pytest.mark.parametrize("workers", [0, 1])
def test_run_dml_on_copies(db, workers):
    before = sha256(db)
    with ExecutorPool(workers=workers) as pool:
        results = pool.run_dml([(str(db), "DELETE FROM singer WHERE age > 30"), (str(db), "DROP TABLE singer")])
    assert results[0].rows == ((3,),) and results[1].error == "exec_error"
    assert sha256(db) == before


def test_memory_cap_applies_in_workers_only(db):
    # a 64 MB cap in the worker: a 200 MB result string cannot be built there
    limits = Limits(max_memory_mb=64, max_bytes=2**30)
    with ExecutorPool(workers=1, limits=limits) as pool:
        res = pool.run_one(db, "SELECT length(zeroblob(200000000) || 'x')")
        assert res.error == "too_large", res
        assert pool.run_one(db, "SELECT 1").rows == ((1,),)
    assert not sandbox._WORKER_CONFIGURED  # the test process itself was not capped


def test_forkserver_workers(db):
    # The start method used when torch (or any thread) is loaded in the parent: workers must
    # start from scratch and still work (limits, pipe and shared state are picklable).
    import multiprocessing as mp

    if "forkserver" not in mp.get_all_start_methods():
        pytest.skip("no forkserver start method on this platform")
    with ExecutorPool(workers=1, limits=Limits(timeout=0.2), hard_timeout_factor=1.0) as pool:
        pool._ctx = mp.get_context("forkserver")
        results = pool.run([(str(db), "SELECT count(*) FROM singer"), (_SLEEP, "10"), (str(db), "SELECT 2")])
        assert [r.error for r in results] == [None, "timeout", None]
        assert results[0].rows == ((6,),)


def test_pool_is_usable_after_an_interrupted_run(db):
    import _thread
    import signal
    import threading

    # interrupt_main() calls whatever SIGINT handler this process has: an event loop run earlier in
    # the same test process (anyio, asyncio) can leave its own, which does not raise here
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with ExecutorPool(workers=1) as pool:
            pool.run_one(db, "SELECT 1")
            (pid,) = pool.worker_pids()
            threading.Timer(0.3, _thread.interrupt_main).start()  # Ctrl-C while the worker is busy
            with pytest.raises(KeyboardInterrupt):
                pool.run([(_SLEEP, "30"), (str(db), "SELECT 1")])
            assert not _pid_alive(pid)  # the busy worker was killed, not left to answer later
            t0 = time.monotonic()
            assert pool.run_one(db, "SELECT 7").rows == ((7,),)
            assert time.monotonic() - t0 < 5
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux-only")
def test_workers_die_when_the_parent_is_killed(db, tmp_path):
    import subprocess

    src = Path(__file__).resolve().parents[3] / "src"
    script = tmp_path / "parent.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(src)!r})\n"
        "from sqlcoach.execution.pool import ExecutorPool, _SLEEP\n"
        "pool = ExecutorPool(workers=2)\n"
        f"pool.run([({str(db)!r}, 'SELECT 1')] * 4)\n"
        "print(' '.join(map(str, pool.worker_pids())), flush=True)\n"
        "pool.run([(_SLEEP, '60')] * 2)\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2
        time.sleep(0.3)  # the workers are now inside their 60 s sleep
    finally:
        proc.kill()
        proc.wait()

    def running(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/status") as fh:
                return "zombie" not in fh.read()
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 5
    while any(running(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(running(p) for p in pids)


def test_worker_crash_is_exec_error(db):
    with ExecutorPool(workers=1, limits=Limits(timeout=5.0)) as pool:
        pool.run_one(db, "SELECT 1")
        (pid,) = pool.worker_pids()
        import threading

        threading.Timer(0.4, os.kill, (pid, signal.SIGSEGV)).start()
        results = pool.run([(_SLEEP, "5"), (str(db), "SELECT 2")])
        assert results[0].error == "exec_error" and f"signal {int(signal.SIGSEGV)}" in results[0].message
        assert results[1].rows == ((2,),)
