"""Fixtures for the reward tests: a small concert database generated at test time, and a pool."""

from __future__ import annotations

from pathlib import Path

import pytest
from rewards_testdb import make_concert_db


@pytest.fixture
def concert_db(tmp_path: Path) -> Path:
    return make_concert_db(tmp_path / "concert.sqlite")


@pytest.fixture
def pool():
    """An in-process pool (workers=0): no process start-up, the sandbox's own deadline."""
    from sqlcoach.execution.pool import ExecutorPool
    from sqlcoach.execution.sandbox import Limits

    p = ExecutorPool(workers=0, limits=Limits(timeout=0.5, max_rows=1000))
    yield p
    p.close()
