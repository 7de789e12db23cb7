"""Growing a model's vocabulary by whole words, without disturbing what it already writes.

``add_words`` is the agent warm start's ``add_agent_tokens``: a small model that sees ``<solution>``
as five byte-pair pieces must learn a multi-token word it never saw, and full SFT that teaches it
also moved the weights the converged tiny model copies numbers with (docs/agent.md). As one token
per tag, the format is one new row to learn per tag; each row starts as the mean of the rows of the
pieces the word had (input embedding, and output embedding when untied), so the model's first
guess about the new token is its guess about the old spelling.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def add_words(model: Any, tokenizer: Any, words: Sequence[str]) -> list[str]:
    """Add each of ``words`` the tokenizer does not already hold as one token to ``tokenizer``
    (a normal added token: decoded as text, split off before byte-pair encoding) and grow
    ``model``'s embeddings to match; returns the words added (in order; empty if none).

    Guarantees: after it, ``tokenizer(w, add_special_tokens=False).input_ids`` is one id for each
    word; the new input (and untied output) rows are the mean of the word's old pieces' rows; every
    old row is unchanged; text without these words tokenizes as before."""
    import torch

    vocab = tokenizer.get_vocab()
    new = [w for w in words if w not in vocab]
    if not new:
        return []
    pieces = [tokenizer(w, add_special_tokens=False).input_ids for w in new]
    tokenizer.add_tokens(list(new), special_tokens=False)
    tied = model.get_output_embeddings() is not None and \
        model.get_output_embeddings().weight is model.get_input_embeddings().weight
    # mean_resizing=False: the rows are set from each word's own pieces just below
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    emb_in = model.get_input_embeddings().weight
    emb_out = None if tied or model.get_output_embeddings() is None else model.get_output_embeddings().weight
    with torch.no_grad():
        for w, ids in zip(new, pieces):
            row = tokenizer.convert_tokens_to_ids(w)
            emb_in[row] = emb_in[ids].mean(dim=0)
            if emb_out is not None:
                emb_out[row] = emb_out[ids].mean(dim=0)
    return new
