"""A one-database world and a tiny model taught its four answers, shared by the integration tests
that need a policy whose samples run and often agree (``sqlcoach adapt``, compare's ``verifier``
and ``adapt`` rows): a random Qwen2 learns nothing useful in a test's budget, this one does in a
few dozen plain gradient steps (seeded, seconds on a CPU).

``build_taught_world(root)`` writes ``root/database/concert/concert.sqlite`` (a ``singer`` table),
``root/raw`` (the random model) and ``root/taught`` (the taught one), and, Spider layout,
``root/train.json`` and ``root/dev.json`` (the taught questions and rewordings of them, with
their gold SQL), so that ``load_examples("spider", root, split)`` reads it as a world."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from sqlcoach.models.tiny import TinySize, init_tiny_model

TINY = TinySize(vocab_size=400, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512)
PAIRS = [
    ("How many singers are there?", "SELECT count(*) FROM singer"),
    ("List the names of all singers.", "SELECT name FROM singer"),
    ("What is the average age of singers?", "SELECT avg(age) FROM singer"),
    ("Which singers are older than 30?", "SELECT name FROM singer WHERE age > 30"),
]
#: rewordings of the taught questions, with the gold of the question they reword
REWORDED = [
    ("How many singers do we have?", PAIRS[0][1]), ("Names of the singers?", PAIRS[1][1]),
    ("Average singer age?", PAIRS[2][1]), ("Singers above 30?", PAIRS[3][1]),
    ("Count the singers.", PAIRS[0][1]), ("Give every singer's name.", PAIRS[1][1]),
    ("Mean age of the singers?", PAIRS[2][1]), ("Who is older than 30?", PAIRS[3][1]),
    ("Number of singers?", PAIRS[0][1]), ("Show singer names.", PAIRS[1][1]),
    ("How old are singers on average?", PAIRS[2][1]), ("Singers aged over 30?", PAIRS[3][1]),
]
#: the questions adapt sees in its own test: the taught ones and the first rewordings
QUESTIONS = [q for q, _ in PAIRS] + [q for q, _ in REWORDED[:4]]


def teach(model_dir: Path, db: Path) -> None:
    """A few plain causal-LM steps on the four (prompt, SQL) pairs, seeded; saved in place."""
    import torch

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


def build_taught_world(root: Path) -> tuple[Path, Path, Path]:
    """The world (module docstring) in ``root``; returns ``(database file, raw model, taught model)``."""
    db = root / "database" / "concert" / "concert.sqlite"
    db.parent.mkdir(parents=True)
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, age INTEGER)")
    con.executemany("INSERT INTO singer VALUES (?, ?, ?)", [(1, "Ann", 25), (2, "Bo", 41), (3, "Cy", 33)])
    con.commit()
    con.close()

    def spider(pairs: list[tuple[str, str]]) -> str:
        return json.dumps([{"db_id": "concert", "question": q, "query": s, "query_toks": []} for q, s in pairs])

    (root / "train.json").write_text(spider(PAIRS + REWORDED[:4]))
    (root / "dev.json").write_text(spider(PAIRS + REWORDED))
    corpus = [f"{q} {s}" for q, s in PAIRS] * 20
    raw, taught = root / "raw", root / "taught"
    init_tiny_model(raw, TINY, corpus, seed=0)
    init_tiny_model(taught, TINY, corpus, seed=0)
    teach(taught, db)
    return db, raw, taught
