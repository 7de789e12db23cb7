"""Files for the multi-process tests (``test_distributed_tiny.py``): one SQLite database, a JSONL
dataset over it, preference pairs, a tiny model, and one YAML per recipe (SFT, DPO, GRPO, PPO),
each sized so that 1 process x global batch B and 2 processes x B/2 see the same rows per step.

``python tests/integration/dist_assets.py ROOT`` writes them (to run the launches by hand)."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

TABLE_ROWS = [(i, f"item{i}", float(i * 3)) for i in range(1, 9)]
QUESTIONS = [(f"Names of items with price above {i}?", f"SELECT name FROM item WHERE price > {i}") for i in range(0, 16, 2)] + [
    ("How many items are there?", "SELECT count(*) FROM item"),
    ("What is the average price?", "SELECT avg(price) FROM item"),
    ("List every item name.", "SELECT name FROM item"),
    ("What is the highest price?", "SELECT max(price) FROM item"),
]

#: the global batch of every recipe; a 2-process run gets half of it per process
GLOBAL = {"sft": 4, "dpo": 4, "grpo": 8, "ppo": 4}


def build(root: str | Path) -> dict[str, Path]:
    """Write everything under ``root``; returns the paths by name."""
    from sqlcoach.models.tiny import TinySize, init_tiny_model

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    db = root / "shop" / "shop.sqlite"
    db.parent.mkdir(exist_ok=True)
    if not db.exists():
        con = sqlite3.connect(db)
        con.execute("CREATE TABLE item (item_id INTEGER PRIMARY KEY, name TEXT, price REAL)")
        con.executemany("INSERT INTO item VALUES (?, ?, ?)", TABLE_ROWS)
        con.commit()
        con.close()
    data = root / "train.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "db_id": "shop", "question": q, "sql": s, "db_path": str(db)}) + "\n"
                            for i, (q, s) in enumerate(QUESTIONS)))
    pairs = root / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({
        "prompt": [{"role": "user", "content": f"Schema: item(item_id, name, price)\nQuestion: {q}"}],
        "chosen": [{"role": "assistant", "content": s}],
        "rejected": [{"role": "assistant", "content": QUESTIONS[(i + 1) % len(QUESTIONS)][1]}],
    }) + "\n" for i, (q, s) in enumerate(QUESTIONS)))
    model = root / "model"
    if not (model / "config.json").exists():
        size = TinySize(vocab_size=400, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512)
        corpus = [f"item(item_id, name, price) {q} {s}" for q, s in QUESTIONS] * 20
        init_tiny_model(model, size, corpus, seed=0)
    common = dict(model=str(model), use_cpu=True, dtype="float32", seed=0, logging_steps=1, learning_rate=1e-2)
    hf = dict(report_to="none", disable_tqdm=True)
    recipes = {
        "sft": dict(common, **hf, data_kind="jsonl", data_path=str(data), split="train", method="full", max_steps=3,
                    max_length=400, save_steps=2, warmup_ratio=0.0, lr_scheduler_type="constant",
                    template="sql_terminal", schema_style="compact", schema_sample_values=0),
        "dpo": dict(common, **hf, pairs_path=str(pairs), method="full", max_steps=3, max_length=400, save_steps=2,
                    warmup_ratio=0.0, beta=0.1, lr_scheduler_type="constant", precompute_ref_log_probs=False),
        "grpo": dict(common, **hf, data_kind="jsonl", data_path=str(data), split="train", method="full", max_steps=2,
                     num_generations=4, max_completion_length=12, temperature=1.0, save_steps=1, rewards=["execution", "ngram"],
                     reward_workers=0, sample_every=1, num_samples=2, template="sql_terminal",
                     schema_style="compact", schema_sample_values=0, pass_rate_k=2, drop_always=False,
                     drop_never=False),
        "ppo": dict(common, data_kind="jsonl", data_path=str(data), split="train", method="lora", max_steps=2,
                    ppo_epochs=1, max_completion_length=10, temperature=1.0, top_k=1, rewards=["execution", "ngram"], reward_workers=0, save_steps=1,
                    sample_every=1, num_samples=1, lora_r=4, lora_alpha=8, lora_target_modules=["q_proj", "v_proj"],
                    template="sql_terminal", schema_style="compact", schema_sample_values=0),
    }
    out = {"root": root, "db": db, "data": data, "pairs": pairs, "model": model}
    import yaml

    for name, cfg in recipes.items():
        p = root / f"{name}.yaml"
        p.write_text(f"# sqlcoach train {name} --config {p} (tests/integration/test_distributed_tiny.py)\n"
                     + yaml.safe_dump(cfg, sort_keys=False))
        out[name] = p
    return out


def batch_overrides(recipe: str, nproc: int) -> list[str]:
    """``key=value`` overrides giving ``recipe`` the global batch ``GLOBAL[recipe]`` on ``nproc`` processes."""
    per = GLOBAL[recipe] // nproc
    if recipe == "ppo":  # one mini-batch per PPO step: the same update whatever the split
        return [f"rollout_batch_size={per}", f"per_device_train_batch_size={per}", "gradient_accumulation_steps=1"]
    return [f"per_device_train_batch_size={per}", "gradient_accumulation_steps=1"]


if __name__ == "__main__":
    for k, v in build(sys.argv[1]).items():
        print(k, v)
