"""Shared by the serve tests and benchmarks/serve_load.py: a small SQLite database, a tiny
from-scratch model, and a tiny model *taught* one answer (so that a test can see a real
generated query run end to end without a trained model)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

SINGER_ROWS = [(1, "Ana", 31, "PT"), (2, "Bo", 25, "SE"), (3, "Chen", 40, "CN"), (4, "Dee", 29, "US")]
TAUGHT_SQL = "SELECT name, age FROM singer ORDER BY age"
CORPUS = [
    "How many singers are there? SELECT count(*) FROM singer",
    "List the names of singers older than 30. SELECT name FROM singer WHERE age > 30",
    TAUGHT_SQL,
    "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, age INTEGER, country TEXT)",
] * 20


def make_databases(folder: Path) -> Path:
    """``folder/concert/concert.sqlite`` (Spider's layout) and ``folder/shop.sqlite``."""
    (folder / "concert").mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(folder / "concert" / "concert.sqlite")
    con.execute("CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, age INTEGER, country TEXT)")
    con.executemany("INSERT INTO singer VALUES (?, ?, ?, ?)", SINGER_ROWS)
    con.commit()
    con.close()
    con = sqlite3.connect(folder / "shop.sqlite")
    con.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, label TEXT, price REAL)")
    con.executemany("INSERT INTO item VALUES (?, ?, ?)", [(1, "pen", 1.5), (2, "ink", 3.0)])
    con.commit()
    con.close()
    return folder


def tiny_model(out: Path, *, max_position_embeddings: int = 512) -> Path:
    """A random-init ~100k-parameter Qwen2 with a BPE tokenizer trained on ``CORPUS``."""
    from sqlcoach.models.tiny import TinySize, init_tiny_model

    size = TinySize(vocab_size=500, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=max_position_embeddings)
    init_tiny_model(out, size, CORPUS, seed=0)
    return out


def taught_model(out: Path, answer: str = TAUGHT_SQL, *, steps: int = 150) -> Path:
    """``tiny_model`` trained (plain Adam on the chat-formatted text) to answer ``answer`` to any
    ``sql_terminal`` prompt over ``make_databases``' concert database: greedy decoding then writes
    exactly ``answer``. A test double for a trained model; it knows one query, nothing else."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sqlcoach.prompts.builder import PromptBuilder
    from sqlcoach.types import Example

    tiny_model(out)
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    db_dir = make_databases(out / "_dbs")
    builder = PromptBuilder("sql_terminal", "compact", 3)
    texts = []
    for q in ("How many singers are there?", "List singers by age", "Who sings?", "names and ages of singers"):
        ex = Example(id="t", db_id="concert", question=q, db_path=str(db_dir / "concert" / "concert.sqlite"))
        prompt = builder.prediction_text(ex, tok)
        texts.append((prompt, answer + tok.eos_token))
    teach(model, [(tok(p, add_special_tokens=False)["input_ids"], tok(t, add_special_tokens=False)["input_ids"])
                  for p, t in texts], steps)
    model.save_pretrained(out)
    return out


def teach(model, pairs, steps: int, lr: float = 3e-3) -> None:
    """Plain Adam on ``(context ids, target ids)`` pairs in turn, the loss on the target only."""
    import torch

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    torch.manual_seed(0)
    model.train()
    for step in range(steps):
        ctx, target = pairs[step % len(pairs)]
        loss = model(input_ids=torch.tensor([ctx + target]), labels=torch.tensor([[-100] * len(ctx) + target])).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


AGENT_QUERY = "SELECT count(*) FROM singer"


def taught_agent_model(out: Path, *, steps: int = 400, max_turns: int = 5) -> Path:
    """``tiny_model`` (2048 positions: the agent's prompt is long in this vocabulary) trained to
    play the agent protocol the way ``sqlcoach serve`` runs it over ``make_databases``' concert
    database: first turn ``<sql>AGENT_QUERY</sql>``, then, after the observation the server appends
    (rendered here by the same environment), ``<solution>TAUGHT_SQL</solution>``. The context is
    tokenized as the server does (prompt ids + the completion text re-encoded)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sqlcoach.execution.sandbox import Limits, execute
    from sqlcoach.generate.agent import AgentConfig
    from sqlcoach.generate.agent_predict import agent_prompts, env_for
    from sqlcoach.prompts.agent import solution_turn, sql_turn
    from sqlcoach.prompts.builder import PromptBuilder
    from sqlcoach.types import Example

    tiny_model(out, max_position_embeddings=2048)
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    db = str(make_databases(out / "_dbs") / "concert" / "concert.sqlite")
    builder = PromptBuilder("sql_terminal", "compact", 3)
    config = AgentConfig(max_turns=max_turns, timeout=10.0, max_rows=1000, max_bytes=16 * 2**20)
    first, second = sql_turn(AGENT_QUERY), solution_turn(TAUGHT_SQL)
    texts = []
    for q in ("How many singers are there?", "List singers by age", "Who sings?", "names and ages of singers",
              "Who are the singers, youngest first?"):
        ex = Example(id="t", db_id="concert", question=q, db_path=db)
        prompt = agent_prompts([ex], tok, builder, max_turns)[0]
        env = env_for(ex, config, "sql_terminal", None, lambda t: len(tok(t, add_special_tokens=False)["input_ids"]))
        obs = env.observe(execute(db, env.act(first), Limits(timeout=10.0, max_rows=1000)))
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        texts.append((p_ids, [], first))
        texts.append((p_ids, tok(first + obs, add_special_tokens=False)["input_ids"], second))
    teach(model, [(p_ids + done_ids, tok(target, add_special_tokens=False)["input_ids"])
                  for p_ids, done_ids, target in texts], steps)
    model.save_pretrained(out)
    return out
