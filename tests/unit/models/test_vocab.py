"""``models.vocab.add_words``: the agent tags as one token each, old rows and old text untouched,
new rows the mean of the old pieces, saved and reloaded with the model."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from sqlcoach.models.tiny import TinySize, init_tiny_model  # noqa: E402
from sqlcoach.models.vocab import add_words  # noqa: E402
from sqlcoach.prompts.agent import AGENT_TAGS, observation_text, solution_turn, sql_turn  # noqa: E402

TINY = TinySize(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256)
CORPUS = ["SELECT name FROM singer WHERE age > 30", "How many singers are there?", "count(*) rows: 1"] * 10


@pytest.fixture()
def tiny(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tmp_path / "model"
    init_tiny_model(path, TINY, CORPUS, seed=0)
    return path, AutoModelForCausalLM.from_pretrained(str(path)), AutoTokenizer.from_pretrained(str(path))


def test_each_tag_becomes_one_token_with_the_mean_of_its_pieces(tiny):
    _, model, tok = tiny
    plain = "SELECT name FROM singer WHERE age > 30"
    before_ids = tok(plain, add_special_tokens=False).input_ids
    pieces = {w: tok(w, add_special_tokens=False).input_ids for w in AGENT_TAGS}
    assert all(len(p) > 1 for p in pieces.values())  # the premise: the tags were several pieces
    old = model.get_input_embeddings().weight.detach().clone()
    added = add_words(model, tok, AGENT_TAGS)
    assert added == list(AGENT_TAGS)
    emb = model.get_input_embeddings().weight.detach()
    assert emb.shape[0] == len(tok) == old.shape[0] + len(AGENT_TAGS)
    assert torch.equal(emb[: old.shape[0]], old)
    for w, ids in pieces.items():
        (one,) = tok(w, add_special_tokens=False).input_ids
        assert torch.allclose(emb[one], old[ids].mean(dim=0))
    assert tok(plain, add_special_tokens=False).input_ids == before_ids
    text = sql_turn("SELECT 1") + observation_text("1", 2) + solution_turn("SELECT 1")
    ids = tok(text, add_special_tokens=False).input_ids
    assert tok.decode(ids) == text  # decoded as text, never skipped like a special token
    assert add_words(model, tok, AGENT_TAGS) == []  # idempotent


def test_grown_model_saves_and_reloads_with_its_tokens(tiny, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, model, tok = tiny
    add_words(model, tok, AGENT_TAGS)
    out = tmp_path / "grown"
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    m2, t2 = AutoModelForCausalLM.from_pretrained(str(out)), AutoTokenizer.from_pretrained(str(out))
    ids = t2("<sql>SELECT 1</sql>", return_tensors="pt").input_ids
    assert t2.convert_ids_to_tokens(ids[0, :1].tolist()) == ["<sql>"]
    with torch.no_grad():
        assert torch.allclose(m2(ids).logits, model(ids).logits, atol=1e-6)
