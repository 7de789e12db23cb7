"""A verifier on a tiny model built in the test: a few BCE steps change its scores (held-out AUC
before and after), the folder it writes loads as a verifier and nothing else does, it selects
among candidates reading their results, and it is a reward on TRL's contract with no gold."""

from __future__ import annotations

import os
import sqlite3

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from sqlcoach.config import VerifierRunConfig, build_config  # noqa: E402
from sqlcoach.errors import ConfigError  # noqa: E402
from sqlcoach.execution.select import Candidates  # noqa: E402
from sqlcoach.generate.verifier_select import build_selector  # noqa: E402
from sqlcoach.models.tiny import TinySize, init_tiny_model  # noqa: E402
from sqlcoach.models.verifier import load_verifier, verifier_text  # noqa: E402
from sqlcoach.train.verifier import run_verifier  # noqa: E402
from sqlcoach.types import ExecResult  # noqa: E402

pytestmark = pytest.mark.integration
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY = TinySize(vocab_size=400, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
TABLES = ["singer", "stadium", "concert", "album", "band", "city"]
GOOD = lambda t: ExecResult(rows=((f"{t} one",), (f"{t} two",)), columns=("name",))  # noqa: E731
BAD = ExecResult(rows=None, error="exec_error", message="no such column: nme")


def _rows() -> list[dict]:
    rows = []
    for i in range(24):
        t = TABLES[i % len(TABLES)]
        q = f"Names of every {t}? ({i})"
        for sql, res, label in ((f"SELECT name FROM {t}", GOOD(t), 1), (f"SELECT nme FROM {t}", BAD, 0)):
            rows.append({"qid": f"q{i}", "label": label, "ran": label == 1, "count": 1, "sql": sql,
                         "text": verifier_text(q, f"{t}(name)", sql, res, result_budget=200)})
    return rows


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny-verifier")
    init_tiny_model(out, TINY, [r["text"] for r in _rows()] * 3, seed=0)
    return out


def test_verifier_trains_loads_selects_and_rewards(tiny_model, tmp_path):
    cfg = build_config(VerifierRunConfig, dict(
        model=str(tiny_model), data_path="(rows given in the test)", output_dir=str(tmp_path / "v"), method="full",
        max_steps=15, per_device_train_batch_size=8, learning_rate=3e-3, use_cpu=True, dtype="float32",
        logging_steps=5, save_steps=100, max_length=200, result_budget=64, holdout=0.25, disable_tqdm=True,
        warmup_ratio=0.0, seed=0))
    summary = run_verifier(cfg, rows=_rows(), log=lambda m: None)
    before, after = summary["eval_before"], summary["eval"]
    assert after["questions"] == 6 and summary["pos_weight"] == 1.0
    assert after["auc"] != before["auc"] or after["accuracy"] != before["accuracy"]  # the score moved
    assert after["auc"] > 0.5  # errors are easy to tell from results
    final = tmp_path / "v" / "final"
    verifier = load_verifier(final, device="cpu")
    assert verifier.spec.result_budget == 64 and verifier.spec.kind == "verifier"

    # selection: the failing candidate never wins; the verifier's scores are recorded
    c = Candidates.of(["SELECT nme FROM band", "SELECT name FROM band"], [BAD, GOOD("band")],
                      question="Names of every band?", schema_text="band(name)")
    pick = build_selector("verifier", verifier)(c)
    assert pick.chosen == 1 and len(pick.scores) == 2

    # a policy folder (causal head, no spec) is refused in one line
    with pytest.raises(ConfigError, match="not a verifier"):
        load_verifier(tiny_model)

    # the reward: TRL's contract, question + db_path only, no gold column
    from sqlcoach.rewards.registry import build_rewards, close_rewards

    db = tmp_path / "band.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE band (name TEXT)")
    con.executemany("INSERT INTO band VALUES (?)", [("band one",), ("band two",)])
    con.commit()
    con.close()
    (reward,) = build_rewards([{"name": "verifier", "verifier_path": str(final), "device": "cpu"}])
    try:
        out = reward(prompts=["p", "p"], completions=["SELECT name FROM band", "SELECT nme FROM band"],
                     completion_ids=[[1], [2]], question=["Names of every band?"] * 2, db_path=[str(db)] * 2)
    finally:
        close_rewards([reward])
    assert all(0.0 <= v <= 1.0 for v in out) and out[0] > out[1]
