"""The batching engine on its own: grouping by decoding settings, the queue bound, every job
answered exactly once (also when generation fails or returns too little)."""

from __future__ import annotations

import threading
import time

import pytest

from sqlcoach.serve.engine import Engine, GenParams, Job, JobResult, QueueFull


def wait_all(done, n, timeout=10):
    deadline = time.monotonic() + timeout
    while len(done) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    return done


def test_jobs_are_batched_by_decoding_settings_and_each_answered_once():
    seen: list[list[tuple]] = []
    gate = threading.Event()

    def fn(model, tok, jobs):
        gate.wait(10)
        seen.append([j.params.batch_key() for j in jobs])
        return [JobResult(f"r{j.prompt_ids[0]}", "stop", 1, 1, 0.0) for j in jobs]

    eng = Engine(None, None, max_batch=3, batch_fn=fn)
    done: list = []
    lock = threading.Lock()

    def record(i):
        return lambda r: (lock.acquire(), done.append((i, r.text)), lock.release())

    eng.submit(Job([0], GenParams(4), time.monotonic() + 60, on_done=record(0)))  # runs alone (gate)
    time.sleep(0.05)
    params = [GenParams(4), GenParams(4, temperature=0.7), GenParams(4), GenParams(4), GenParams(4),
              GenParams(4, temperature=0.7, top_p=0.9)]
    for i, p in enumerate(params, start=1):
        eng.submit(Job([i], p, time.monotonic() + 60, on_done=record(i)))
    gate.set()
    wait_all(done, 7)
    eng.close()
    assert sorted(done) == [(i, f"r{i}") for i in range(7)]
    assert seen[0] == [("greedy",)]
    assert seen[1] == [("greedy",)] * 3  # the oldest waiting job's key, up to max_batch
    assert all(len(set(b)) == 1 for b in seen) and sum(map(len, seen)) == 7


def test_queue_bound_and_failures():
    gate = threading.Event()
    calls = {"n": 0}

    def fn(model, tok, jobs):
        calls["n"] += 1
        gate.wait(10)
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return []  # too few results: each job still gets an answer (an error)

    eng = Engine(None, None, max_batch=1, max_queue=2, batch_fn=fn)
    done: list = []
    for _ in range(3):
        eng.submit(Job([1], GenParams(2), time.monotonic() + 60, on_done=done.append))
        time.sleep(0.05)
    with pytest.raises(QueueFull):
        eng.submit(Job([1], GenParams(2), time.monotonic() + 60, on_done=done.append))
    gate.set()
    wait_all(done, 3)
    eng.close()
    assert len(done) == 3 and all(isinstance(d, Exception) for d in done)
    assert str(done[0]) == "boom"
