"""How close is `data build --format openai`'s token count without tiktoken to GPT-3.5's tokenizer?

    sqlcoach data build --kind spider --path ../shared/data/spider --split dev --format openai --out ft.jsonl
    python benchmarks/openai_tokens.py ft.jsonl

Counts the file with ``count_training_tokens`` twice: with the documented approximation
(``approx_tokens``: words + punctuation marks; what the count uses without tiktoken) and with cl100k_base, GPT-3.5's encoding, from
``tiktoken`` or, where tiktoken cannot download its table (no network), from ``bpe_openai``
(a tiktoken-compatible package that ships the tables). Prints both totals and their ratio, and
the same per message role. Needs one of those two packages (not a sqlcoach dependency).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sqlcoach.data.export import count_training_tokens
from sqlcoach.schema.serialize import approx_tokens


def cl100k():
    try:
        import tiktoken

        enc = tiktoken.get_encoding("cl100k_base")
        name = "tiktoken cl100k_base"
    except Exception:  # not installed, or no network for its table
        import bpe_openai

        enc = bpe_openai.get_encoding("cl100k_base")
        name = "bpe_openai cl100k_base"
    return (lambda s: len(enc.encode(s))), name


def main(path: str) -> None:
    recs = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]
    exact, name = cl100k()
    a = count_training_tokens(recs, approx_tokens, "approx_tokens")
    b = count_training_tokens(recs, exact, name)
    print(f"{len(recs)} examples")
    print(f"approximation (words + punctuation): {a.tokens}")
    print(f"{name}: {b.tokens}")
    print(f"approximation / exact: {a.tokens / b.tokens:.3f}")
    c = sum(len(m["content"]) for r in recs for m in r["messages"])
    print(f"(for comparison, content characters / 4: {c / 4:.0f})")
    for role in ("system", "user", "assistant"):
        ca = sum(approx_tokens(m["content"]) for r in recs for m in r["messages"] if m["role"] == role)
        cb = sum(exact(m["content"]) for r in recs for m in r["messages"] if m["role"] == role)
        if cb:
            print(f"  {role} content: approx {ca}, exact {cb}, ratio {ca / cb:.3f}")


if __name__ == "__main__":
    main(sys.argv[1])
