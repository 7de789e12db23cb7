"""Decoding is what the caller says: a checkpoint whose generation_config carries penalties, top-k,
a minimum length and sampling settings decodes exactly like the same weights without them; greedy is
the argmax of the raw logits (checked against a hand-rolled decode)."""

from __future__ import annotations

import shutil

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from sqlcoach.generate.hf import decoding_config, eos_ids, generate_texts, neutral_generate  # noqa: E402
from sqlcoach.models.tiny import TinySize, init_tiny_model  # noqa: E402

CORPUS = [
    "How many singers are there?",
    "SELECT count(*) FROM singer",
    "List the names of stadiums in Berlin, ordered by capacity.",
    "SELECT name FROM stadium WHERE city = 'Berlin' ORDER BY capacity DESC",
] * 20
TINY = TinySize(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256)
PROMPTS = [
    "<|im_start|>user\nHow many singers?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\nList the names of stadiums in Berlin ordered by capacity.<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
]
PENALTIES = dict(repetition_penalty=1.5, no_repeat_ngram_size=2, top_k=3, min_new_tokens=5, temperature=0.1,
                 do_sample=True)


def _load(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(path)
    return model.eval(), tok


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """(plain, penalised): the same weights and tokenizer; the second's generation_config.json
    asks for penalties, top-k, a minimum length and low-temperature sampling."""
    from transformers import GenerationConfig

    root = tmp_path_factory.mktemp("decoding")
    plain, penal = root / "plain", root / "penal"
    init_tiny_model(plain, TINY, CORPUS, seed=0)
    shutil.copytree(plain, penal)
    gc = GenerationConfig.from_pretrained(plain)
    gc.update(**PENALTIES)
    gc.save_pretrained(penal)
    assert GenerationConfig.from_pretrained(penal).repetition_penalty == 1.5
    return plain, penal


def _argmax_decode(model, tok, prompt: str, max_new_tokens: int) -> str:
    """Greedy by hand: one prompt, no padding, no cache, argmax of the raw logits."""
    stop = set(eos_ids(model, tok))
    ids = tok(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    new: list[int] = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            nxt = int(model(input_ids=ids).logits[0, -1].argmax())
            new.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
            if nxt in stop:
                break
    return tok.decode(new, skip_special_tokens=True)


def test_greedy_ignores_the_checkpoint_generation_config_and_is_argmax(folders):
    plain, penal = folders
    a_model, a_tok = _load(plain)
    b_model, b_tok = _load(penal)
    a = generate_texts(a_model, a_tok, PROMPTS, max_new_tokens=12, batch_size=2)
    b = generate_texts(b_model, b_tok, PROMPTS, max_new_tokens=12, batch_size=2)
    assert a.texts == b.texts and a.generated_tokens == b.generated_tokens
    assert [t[0] for t in a.texts] == [_argmax_decode(a_model, a_tok, p, 12) for p in PROMPTS]
    # The test can see the bug: generate's own merge applies the penalised checkpoint's settings.
    enc = b_tok(PROMPTS[0], add_special_tokens=False, return_tensors="pt")
    torch.manual_seed(0)
    merged = b_model.generate(**enc, max_new_tokens=12, do_sample=False, temperature=None, top_p=None, top_k=None,
                              pad_token_id=b_tok.pad_token_id)
    assert b_tok.decode(merged[0, enc["input_ids"].shape[1]:], skip_special_tokens=True) != a.texts[0][0]


def test_sampling_with_the_same_seed_is_the_same(folders):
    plain, penal = folders
    a_model, a_tok = _load(plain)
    b_model, b_tok = _load(penal)
    for kw in (dict(n=3, temperature=0.8, seed=1), dict(n=2, temperature=1.3, top_p=0.9, seed=7)):
        a = generate_texts(a_model, a_tok, PROMPTS, max_new_tokens=10, batch_size=2, **kw)
        b = generate_texts(b_model, b_tok, PROMPTS, max_new_tokens=10, batch_size=2, **kw)
        assert a.texts == b.texts and all(len(t) == kw["n"] for t in a.texts)
    again = generate_texts(b_model, b_tok, PROMPTS, n=3, temperature=0.8, seed=1, max_new_tokens=10, batch_size=3)
    first = generate_texts(a_model, a_tok, PROMPTS, n=3, temperature=0.8, seed=1, max_new_tokens=10, batch_size=3)
    assert again.texts == first.texts


def test_decoding_config_is_neutral_and_the_model_config_comes_back(folders):
    _, penal = folders
    model, tok = _load(penal)
    original = model.generation_config
    cfg = decoding_config(model, tok, do_sample=True, temperature=0.5, top_p=1.0, top_k=0, max_new_tokens=4)
    assert (cfg.repetition_penalty, cfg.no_repeat_ngram_size, cfg.top_k, cfg.num_beams) == (1.0, 0, 0, 1)
    assert cfg.min_new_tokens is None and cfg.min_length == 0 and cfg.temperature == 0.5
    assert cfg.eos_token_id == eos_ids(model, tok) and cfg.pad_token_id == tok.pad_token_id
    greedy = decoding_config(model, tok, do_sample=False, max_new_tokens=4)
    assert greedy.do_sample is False and greedy.temperature is None and greedy.top_k is None
    # What generate actually runs: no logits processor but temperature; the model's config is restored.
    seen = {}
    real = model._get_logits_processor

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        seen["processors"] = [type(p).__name__ for p in out]
        return out

    model._get_logits_processor = spy
    tok.padding_side = "left"
    enc = tok(PROMPTS[:2], add_special_tokens=False, padding=True, return_tensors="pt")
    neutral_generate(model, cfg, **enc)
    assert seen["processors"] == ["TemperatureLogitsWarper"]
    neutral_generate(model, greedy, **enc)
    assert seen["processors"] == []
    assert model.generation_config is original and original.repetition_penalty == 1.5


def test_vllm_backend_asks_for_neutral_sampling(tmp_path, monkeypatch):
    """With a stand-in for vLLM (the real one needs CUDA and is not installed here): the engine does
    not take defaults from generation_config.json, every distribution-changing SamplingParams field
    is neutral, and the checkpoint's eos ids still stop generation."""
    import dataclasses
    import sys
    import types

    from transformers import GenerationConfig

    import sqlcoach.generate.vllm_backend as vb

    GenerationConfig(eos_token_id=[5, 7], repetition_penalty=1.5, top_k=3, do_sample=True).save_pretrained(tmp_path)
    made: dict = {}

    class LLM:
        def __init__(self, **kw):
            made["engine"] = kw

        def generate(self, prompts, params, use_tqdm=False):
            made["params"] = params.kw
            out = types.SimpleNamespace(text="SELECT 1", token_ids=[1, 2])
            return [types.SimpleNamespace(outputs=[out] * params.kw["n"], prompt_token_ids=[3]) for _ in prompts]

    class SamplingParams:
        def __init__(self, **kw):
            self.kw = kw

    @dataclasses.dataclass
    class EngineArgs:
        model: str = ""
        generation_config: str = "auto"

    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = LLM, SamplingParams
    arg_utils = types.ModuleType("vllm.engine.arg_utils")
    arg_utils.EngineArgs = EngineArgs
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.engine", types.ModuleType("vllm.engine"))
    monkeypatch.setitem(sys.modules, "vllm.engine.arg_utils", arg_utils)
    monkeypatch.setattr(vb, "vllm_available", lambda: (True, ""))

    gen = vb.vllm_generate_fn(str(tmp_path))
    assert made["engine"]["generation_config"] == "vllm"
    g = gen(None, None, ["q1", "q2"], n=2, temperature=0.8, top_p=0.95, max_new_tokens=9, seed=3)
    assert g.texts == [["SELECT 1"] * 2] * 2 and g.generated_tokens == 8
    p = made["params"]
    assert (p["temperature"], p["top_p"], p["top_k"], p["min_p"], p["repetition_penalty"]) == (0.8, 0.95, -1, 0.0, 1.0)
    assert (p["presence_penalty"], p["frequency_penalty"], p["min_tokens"]) == (0.0, 0.0, 0)
    assert p["stop_token_ids"] == [5, 7] and (p["n"], p["max_tokens"], p["seed"]) == (2, 9, 3)
    gen(None, None, ["q"], max_new_tokens=4)
    assert (made["params"]["temperature"], made["params"]["top_p"]) == (0.0, 1.0)
    # an older vLLM (engine default None: its own neutral defaults) is not handed an unknown value
    EngineArgs.__dataclass_fields__["generation_config"].default = None
    vb.vllm_generate_fn(str(tmp_path))
    assert "generation_config" not in made["engine"]
