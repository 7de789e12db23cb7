"""PPO samples from the distribution its log-probs describe: on a checkpoint whose generation_config
carries a repetition penalty, top-k and an n-gram ban, the rollout's sampled tokens have, under the
scores ``generate`` actually sampled from, the log-probs ``ppo_core`` computes from a plain forward
pass (``softmax(logits / T)``), to 1e-5. The old ``generate(**kwargs)`` call fails that check."""

from __future__ import annotations

import copy
import shutil
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

import sqlcoach.generate.hf as hf  # noqa: E402
from sqlcoach.models.tiny import TinySize, init_tiny_model  # noqa: E402
from sqlcoach.prompts.chat import to_text  # noqa: E402
from sqlcoach.train import ppo  # noqa: E402
from sqlcoach.train import ppo_core as core  # noqa: E402

CORPUS = ["Names of items with price above 3?", "SELECT name FROM item WHERE price > 3",
          "How many items are there?", "SELECT count(*) FROM item"] * 20
TINY = TinySize(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256)
ROWS = [{"prompt": [{"role": "user", "content": q}], "id": str(i)}
        for i, q in enumerate(["Names of items with price above 3?", "How many?", "List every item name by price."])]
T = 0.7


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from transformers import AutoModelForCausalLM, GenerationConfig

    root = tmp_path_factory.mktemp("ppo-decoding")
    init_tiny_model(root / "plain", TINY, CORPUS, seed=0)
    # A random init is nearly uniform, which hides what a penalty does: sharpen it (tied embeddings:
    # the logits scale with the embedding table; every layer reads it through an RMSNorm).
    model = AutoModelForCausalLM.from_pretrained(root / "plain", dtype=torch.float32)
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(8.0)
    model.save_pretrained(root / "plain")
    shutil.copytree(root / "plain", root / "penal")
    gc = GenerationConfig.from_pretrained(root / "plain")
    gc.update(repetition_penalty=1.5, top_k=3, no_repeat_ngram_size=2, do_sample=True, temperature=0.1)
    gc.save_pretrained(root / "penal")
    return root / "penal"


def _policy(path, method: str) -> ppo._Policy:
    from transformers import AutoModelForCausalLM

    from sqlcoach.models.load import load_tokenizer

    tok = load_tokenizer(str(path), padding_side="left")
    policy = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    assert policy.generation_config.repetition_penalty == 1.5 and policy.generation_config.top_k == 3
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        policy = get_peft_model(policy, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    net = core.PolicyWithValue(policy, core.hidden_size_of(policy)).eval()
    acc = SimpleNamespace(device=torch.device("cpu"))
    return ppo._Policy(accelerator=acc, tokenizer=tok, model=net, unwrapped=net, ref_model=None, optimizer=None,
                       kl_ctl=None, eos_ids=hf.eos_ids(policy, tok), measures_kl=True)


def _sampled_logp(scores, response):
    """Log-prob of each sampled token under the processed scores generate sampled from: [B, R]."""
    return core.logprobs_from_logits(torch.stack(scores, dim=1), response)


@pytest.mark.parametrize("method", ["full", "lora"])
def test_rollout_logprobs_are_those_generate_sampled_from(checkpoint, method, monkeypatch):
    pol = _policy(checkpoint, method)
    original = pol.unwrapped.policy.generation_config
    cfg = SimpleNamespace(temperature=T, top_k=0, max_completion_length=10, missing_eos_penalty=0.0)
    seen = {}
    real = hf.neutral_generate

    def with_scores(model, generation_config, **inputs):  # the rollout's own call, plus the scores
        gc = copy.deepcopy(generation_config)
        gc.output_scores, gc.return_dict_in_generate = True, True
        out = real(model, gc, **inputs)
        seen["scores"] = out.scores
        return out.sequences

    monkeypatch.setattr(hf, "neutral_generate", with_scores)
    torch.manual_seed(0)
    ro = ppo._rollout(cfg, pol, ROWS, [lambda prompts, completions, **kw: [1.0] * len(completions)])
    assert ro.response.shape[1] == len(seen["scores"]) and ro.resp_mask.sum() > len(ROWS)
    with torch.no_grad():
        logits, _ = pol.unwrapped(ro.seqs, ro.attn, ro.P, T)  # what _advantages computes
    ppo_logp = core.logprobs_from_logits(logits, ro.response)
    gen_logp = _sampled_logp(seen["scores"], ro.response)
    m = ro.resp_mask.bool()
    assert torch.isfinite(gen_logp[m]).all()
    assert (ppo_logp[m] - gen_logp[m]).abs().max() < 1e-5
    assert pol.unwrapped.policy.generation_config is original

    # The check can see the bug: the former call (kwargs only; top_k=None did switch top-k off)
    # still had generate merge in the checkpoint's repetition penalty and n-gram ban.
    tok, net = pol.tokenizer, pol.unwrapped
    enc = tok([to_text(r["prompt"], tok) for r in ROWS], add_special_tokens=False, padding=True,
              return_tensors="pt")
    torch.manual_seed(0)
    with torch.no_grad():
        out = net.policy.generate(**enc, do_sample=True, temperature=T, top_k=None, top_p=1.0, max_new_tokens=10,
                                  eos_token_id=pol.eos_ids, pad_token_id=tok.pad_token_id, use_cache=True,
                                  output_scores=True, return_dict_in_generate=True)
        P = enc["input_ids"].shape[1]
        resp = out.sequences[:, P:]
        mask = core.completion_mask(resp, pol.eos_ids)
        old_logits, _ = net(out.sequences, torch.cat([enc["attention_mask"], mask], dim=1), P, T)
    diff = (core.logprobs_from_logits(old_logits, resp) - _sampled_logp(out.scores, resp))[mask.bool()]
    assert diff.abs().max() > 0.1
