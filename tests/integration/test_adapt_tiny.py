"""`sqlcoach adapt` on a tiny model built in the test (a random Qwen2 taught four SQL answers by a
few dozen plain gradient steps, so that its samples run and sometimes agree).

The key property: adapt never reads gold SQL. A Spider file whose ``query`` fields are replaced
by garbage gives byte-identical reward decisions, the same logged rewards and the same adapted
weights (sha256 of the saved adapter) as the original file. Also: the recipe records what the
model was adapted on, the report is written, and a run where no question reaches consensus
writes no model."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("peft")

from sqlcoach.errors import DataError  # noqa: E402
from sqlcoach.models.tiny import TinySize, init_tiny_model  # noqa: E402
from sqlcoach.pipelines.adapt import DECISIONS_FILE, AdaptOptions, adapt  # noqa: E402

pytestmark = pytest.mark.integration
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY = TinySize(vocab_size=400, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512)
PAIRS = [
    ("How many singers are there?", "SELECT count(*) FROM singer"),
    ("List the names of all singers.", "SELECT name FROM singer"),
    ("What is the average age of singers?", "SELECT avg(age) FROM singer"),
    ("Which singers are older than 30?", "SELECT name FROM singer WHERE age > 30"),
]
# the questions adapt sees: the taught ones and rewordings of them
QUESTIONS = [q for q, _ in PAIRS] + ["How many singers do we have?", "Names of the singers?",
                                     "Average singer age?", "Singers above 30?"]


def _teach(model_dir, db):
    """A few plain causal-LM steps on the four (prompt, SQL) pairs, seeded."""
    from sqlcoach.models.load import load_model
    from sqlcoach.prompts.chat import to_text
    from sqlcoach.prompts.recipe import resolve_prompt
    from sqlcoach.tasks.consensus import ConsensusTask
    from sqlcoach.types import Example

    torch.manual_seed(0)
    model, tok = load_model(model_dir, device="cpu", dtype="float32")
    rows = ConsensusTask(resolve_prompt(model_dir, log=None).builder()).train_rows(
        [Example(id=str(i), db_id="concert", question=q, db_path=str(db)) for i, (q, _) in enumerate(PAIRS)])
    texts = [to_text(r["prompt"], tok) + s + tok.eos_token for r, (_, s) in zip(rows, PAIRS)]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(30):
        for text in texts:
            ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
            model(input_ids=ids, labels=ids).loss.backward()
            opt.step()
            opt.zero_grad()
    model.save_pretrained(str(model_dir))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapt-world")
    db = root / "database" / "concert" / "concert.sqlite"
    db.parent.mkdir(parents=True)
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, age INTEGER)")
    con.executemany("INSERT INTO singer VALUES (?, ?, ?)", [(1, "Ann", 25), (2, "Bo", 41), (3, "Cy", 33)])
    con.commit()
    con.close()
    corpus = [f"{q} {s}" for q, s in PAIRS] * 20
    raw = root / "raw"
    init_tiny_model(raw, TINY, corpus, seed=0)
    taught = root / "taught"
    init_tiny_model(taught, TINY, corpus, seed=0)
    _teach(taught, db)
    gold = dict(PAIRS)
    spider = [{"db_id": "concert", "question": q, "query": gold.get(q, "SELECT 1"), "query_toks": []} for q in QUESTIONS]
    original = root / "dev.json"
    original.write_text(json.dumps(spider))
    garbage = root / "dev_garbage.json"
    garbage.write_text(json.dumps([{**r, "query": f"DROP TABLE singer; garbage {i} ;;"} for i, r in enumerate(spider)]))
    return root, raw, taught, original, garbage


def _opts(**kw):
    values = dict(num_generations=4, questions_per_step=2, max_steps=2, learning_rate=1e-2, max_completion_length=12,
                  min_share=0.25, held_percent=30, check_every=1, use_cpu=True, reward_workers=0, seed=0,
                  stop_drop=1.0, max_identical=1.0, max_empty_rise=1.0,  # 2 steps at lr 1e-2: no stop rule here
                  overrides={"disable_tqdm": True, "logging_steps": 1})
    values.update(kw)
    return AdaptOptions(**values)


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rewards_logged(out):
    return [(h["step"], h.get("rewards/consensus/mean")) for h in json.loads((out / "log_history.json").read_text())
            if "step" in h and "rewards/consensus/mean" in h]


def test_gold_sql_is_never_read(world, tmp_path):
    root, _, taught, original, garbage = world
    a, b = tmp_path / "a", tmp_path / "b"
    ra = adapt(str(taught), str(original), str(a), databases=str(root / "database"), opts=_opts(), log=lambda m: None)
    rb = adapt(str(taught), str(garbage), str(b), databases=str(root / "database"), opts=_opts(), log=lambda m: None)
    da, db_ = (a / DECISIONS_FILE).read_bytes(), (b / DECISIONS_FILE).read_bytes()
    assert da == db_ and da  # byte-identical reward decisions
    decisions = [json.loads(x) for x in da.decode().splitlines()]
    assert any(d["reason"] is None for d in decisions)  # something earned a reward: the test has teeth
    assert _rewards_logged(a) == _rewards_logged(b) and _rewards_logged(a)
    wa, wb = a / "final" / "adapter_model.safetensors", b / "final" / "adapter_model.safetensors"
    assert _sha(wa) == _sha(wb)  # the same adapted model
    from safetensors.torch import load_file

    assert any(float(t.abs().sum()) > 0 for k, t in load_file(str(wa)).items() if "lora_B" in k)  # it did train

    recipe = json.loads((a / "final" / "sqlcoach_recipe.json").read_text())
    assert recipe["source"] == "adapt" and recipe["adapted"]["databases"] == ["concert"]
    assert recipe["adapted"]["questions_sha256"] == _sha(original) and recipe["adapted"]["rewards"] == ["consensus"]
    assert recipe["adapted"]["rounds"] >= 1
    assert ra["per_database"]["concert"]["used"] >= 1 and rb["per_database"] == ra["per_database"]
    assert (a / "report.md").is_file() and (a / "report.json").is_file()
    assert ra["collapse_curve"][0]["step"] == 0 and ra["collapse_curve"][-1]["step"] >= 1

    from sqlcoach.prompts.recipe import recipe_of

    assert recipe_of(a / "final").adapted["questions_sha256"] == _sha(original)  # what predict / serve read


def test_no_consensus_writes_no_model(world, tmp_path):
    root, raw, _, original, _ = world
    out = tmp_path / "none"
    with pytest.raises(DataError, match="no question reached consensus"):
        adapt(str(raw), str(original), str(out), databases=str(root / "database"),
              opts=_opts(max_steps=1, held_percent=0), log=lambda m: None)
    assert not (out / "final").exists() and not list(out.glob("checkpoint-*"))


def test_early_stop_without_a_better_check_writes_no_model(world, tmp_path):
    # lr 1e-2 moves the tiny policy off its own held-aside consensus at once (agreement 1.0 -> 0.0):
    # the watch stops, no check after the start beat the start, so nothing is kept
    root, _, taught, original, _ = world
    out = tmp_path / "stopped"
    with pytest.raises(DataError, match="no check after the start beat"):
        adapt(str(taught), str(original), str(out), databases=str(root / "database"),
              opts=_opts(stop_drop=0.15, max_identical=0.5, max_empty_rise=0.25), log=lambda m: None)
    assert not (out / "final").exists() and not (out / "best-check").exists()
