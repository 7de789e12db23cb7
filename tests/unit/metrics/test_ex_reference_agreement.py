"""sqlcoach's EX against the official test-suite scorer's per-example verdicts, and its BIRD mode
against BIRD's official scorer's figures (../shared/data/spider-reference, see its README)."""

import csv
from pathlib import Path

import pytest

from sqlcoach.execution.pool import ExecutorPool
from sqlcoach.metrics import evaluate_pairs
from sqlcoach.metrics.files import read_gold

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
REF = SHARED / "spider-reference"
DB = SHARED / "spider" / "database"
FILES = ["gold", "nodistinct", "limitplus1", "flipdir", "droporder", "swapcols"]
# BIRD's official scorer on the same files (EX %, from the shared data README)
BIRD_OFFICIAL = {"gold": 100.00, "nodistinct": 97.02, "limitplus1": 83.85, "flipdir": 83.85,
                 "droporder": 100.00, "swapcols": 66.98}

pytestmark = [
    pytest.mark.shared,
    pytest.mark.skipif(not REF.is_dir(), reason=f"shared reference data not found at {REF}"),
]


@pytest.fixture(scope="module")
def pool():
    with ExecutorPool(workers=2) as p:
        yield p


@pytest.fixture(scope="module")
def gold():
    items, _ = read_gold(REF / "dev972_gold.tsv")
    return [(g.sql, g.db_id) for g in items]


def official(name):
    with open(REF / f"{name}.official.tsv") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def preds(name):
    return (REF / f"{name}.sql").read_text().split("\n")[:972]


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("keep_distinct", [False, True])
def test_ex_agrees_with_official(name, keep_distinct, pool, gold):
    ref = official(name)
    r = evaluate_pairs(preds(name), gold, db_dir=DB, etype="exec", pool=pool, keep_distinct=keep_distinct)
    col = "ex_keep_distinct" if keep_distinct else "ex"
    agree = sum(v.ex == (row[col] == "1") for v, row in zip(r.verdicts, ref)) / len(ref)
    print(f"{name} keep_distinct={keep_distinct}: EX {r.summary['all']['ex']:.4f} agreement {agree:.4f}")
    assert agree >= 0.995


@pytest.mark.parametrize("name", FILES)
def test_bird_mode_matches_bird_official(name, pool, gold):
    r = evaluate_pairs(preds(name), gold, db_dir=DB, etype="exec", pool=pool, mode="bird", ves_iterations=0)
    assert 100 * r.summary["all"]["ex"] == pytest.approx(BIRD_OFFICIAL[name], abs=0.06)
