"""Agreement with the official Spider scorer on ../shared/data/spider-reference (skipped without it).

Prints, per reference file, the hardness and EM agreement with the official verdicts.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / ".." / "shared" / "data"

pytestmark = [
    pytest.mark.shared,
    pytest.mark.skipif(
        not (DATA / "spider-reference" / "dev972_gold.tsv").is_file() or not (DATA / "spider" / "tables.json").is_file(),
        reason=f"shared Spider data not found at {DATA.resolve()} (spider-reference/ and spider/tables.json)",
    ),
]


def _benchmark():
    spec = importlib.util.spec_from_file_location("em_agreement", REPO / "benchmarks" / "em_agreement.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hardness_and_em_agree_with_the_official_scorer():
    rows = _benchmark().agreement(DATA)
    assert [r["file"] for r in rows] == ["gold", "nodistinct", "limitplus1", "flipdir", "droporder", "swapcols"]
    for r in rows:
        print(
            f"{r['file']:<11} hardness {100 * r['hardness_agree']:.2f}%  EM {100 * r['em_agree']:.2f}%  "
            f"(EM ours {r['em_ours']:.4f}, official {r['em_official']:.4f})  {r['ms_per_pair']:.3f} ms/pair"
        )
    for r in rows:
        assert r["hardness_agree"] >= 0.99, (r["file"], r["hardness_disagree"][:20])
        assert r["em_agree"] >= 0.98, (r["file"], r["em_disagree"][:20])
