"""The reward IS the metric: on the Spider dev reference predictions, a completion gets the full
execution reward exactly when the official test-suite scorer counts it correct (EX, default mode).

Needs ../shared/data (skipped with the reason when absent); the generated fixtures of the other
tests cover the same logic without it.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from sqlcoach.execution.pool import ExecutorPool
from sqlcoach.execution.sandbox import Limits
from sqlcoach.rewards.execution import ExecutionBinaryReward, ExecutionReward

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
REF = SHARED / "spider-reference"
DB = SHARED / "spider" / "database"

pytestmark = [
    pytest.mark.shared,
    pytest.mark.skipif(not (REF / "dev972_gold.tsv").is_file(), reason=f"shared Spider reference data not found at {REF}"),
]


@pytest.fixture(scope="module")
def pool():
    with ExecutorPool(workers=2, limits=Limits(timeout=30.0)) as p:
        yield p


@pytest.fixture(scope="module")
def gold() -> list[tuple[str, str]]:
    out = []
    for line in (REF / "dev972_gold.tsv").read_text(encoding="utf-8").splitlines():
        if line.strip():
            sql, db_id = line.rsplit("\t", 1)
            out.append((sql, str(DB / db_id / f"{db_id}.sqlite")))
    return out


def _official_ex(name: str) -> list[int]:
    with open(REF / f"{name}.official.tsv", encoding="utf-8") as f:
        return [int(row["ex"]) for row in csv.DictReader(f, delimiter="\t")]


@pytest.mark.parametrize("name", ["limitplus1", "flipdir", "swapcols"])
def test_full_reward_exactly_where_official_ex(name, gold, pool):
    preds = (REF / f"{name}.sql").read_text(encoding="utf-8").splitlines()
    reward = ExecutionReward(pool=pool)
    values = reward(None, preds, gold_sql=[g for g, _ in gold], db_path=[d for _, d in gold])
    official = _official_ex(name)
    assert len(values) == len(official) == 972
    disagree = [i for i, (v, ex) in enumerate(zip(values, official)) if (v == pytest.approx(1.2)) != bool(ex)]
    assert not disagree, f"{name}: reward and official EX disagree on examples {disagree[:10]}"
    # every wrong one still ran: partial credit between 0.3 w and 1.0 w
    assert all(0.36 - 1e-9 <= v < 1.2 for v, ex in zip(values, official) if not ex)


def test_binary_reward_on_gold_is_one(gold, pool):
    reward = ExecutionBinaryReward(pool=pool)
    values = reward(None, [g for g, _ in gold[:200]], gold_sql=[g for g, _ in gold[:200]],
                    db_path=[d for _, d in gold[:200]])  # fmt: skip
    assert values == [1.0] * 200
