"""RewardModelReward: TRL's reward contract on a tiny random reward model built in the test
(scores equal the model's own single-sequence scores, batching and padding change nothing,
formatting matches TRL's RewardTrainer, build_rewards wires it)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from sqlcoach.errors import ConfigError  # noqa: E402
from sqlcoach.models.tiny import TinySize, init_tiny_model  # noqa: E402
from sqlcoach.rewards import build_rewards  # noqa: E402
from sqlcoach.rewards.reward_model import RewardModelReward, encode  # noqa: E402

TINY = TinySize(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256)
PROMPT = [{"role": "user", "content": "Schema: singer(id, name, age)\nQuestion: who is over 30?"}]
ANSWERS = ["SELECT name FROM singer WHERE age > 30", "SELECT id FROM singer", "SELECT name, age FROM singer ORDER BY age DESC"]


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory):
    from transformers import AutoModelForSequenceClassification

    causal = tmp_path_factory.mktemp("causal")
    init_tiny_model(causal, TINY, [PROMPT[0]["content"], *ANSWERS] * 10, seed=0)
    torch.manual_seed(0)
    rm = AutoModelForSequenceClassification.from_pretrained(causal, num_labels=1)
    out = tmp_path_factory.mktemp("rm")
    rm.save_pretrained(out)
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(causal).save_pretrained(out)
    return out


def _direct_score(rm_dir, ids):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(rm_dir, num_labels=1).eval()
    with torch.no_grad():
        return float(model(input_ids=torch.tensor([ids])).logits[0, 0])


def test_contract_conversational_and_batching_invariance(rm_dir):
    reward = RewardModelReward(str(rm_dir), batch_size=2, device="cpu")
    completions = [[{"role": "assistant", "content": a}] for a in ANSWERS]
    scores = reward(prompts=[PROMPT] * 3, completions=completions, completion_ids=None, db_id=["x"] * 3)
    assert len(scores) == 3 and all(isinstance(s, float) for s in scores)
    assert len(set(scores)) == 3  # a random head still separates different answers
    # same numbers as the model on each unpadded sequence, formatted as TRL's RewardTrainer does
    tok = reward._tok
    for answer, got in zip(ANSWERS, scores):
        ids = tok.apply_chat_template(PROMPT + [{"role": "assistant", "content": answer}], tokenize=True, return_dict=True)["input_ids"]
        assert encode(tok, PROMPT, [{"role": "assistant", "content": answer}]) == list(ids)
        assert got == pytest.approx(_direct_score(rm_dir, list(ids)), abs=1e-4)
    one_by_one = [RewardModelReward(str(rm_dir), batch_size=1, device="cpu")(prompts=[PROMPT], completions=[c])[0] for c in completions]
    assert one_by_one == pytest.approx(scores, abs=1e-4)
    # a plain-string completion is the assistant message's content
    assert reward(prompts=[PROMPT], completions=[ANSWERS[0]]) == pytest.approx(scores[:1], abs=1e-5)


def test_standard_text_weight_truncation_and_errors(rm_dir):
    reward = RewardModelReward(str(rm_dir), weight=2.0, device="cpu", max_length=8)
    half = RewardModelReward(str(rm_dir), weight=1.0, device="cpu", max_length=8)
    s2 = reward(prompts=["question: who? answer: "], completions=[ANSWERS[0]])
    s1 = half(prompts=["question: who? answer: "], completions=[ANSWERS[0]])
    assert s2[0] == pytest.approx(2 * s1[0], abs=1e-5)
    assert len(encode(reward._tok, "q " * 50, "SELECT 1", 8)) == 8  # the end is kept
    assert reward(prompts=[], completions=[]) == []
    with pytest.raises(ConfigError, match="prompts"):
        reward(completions=["SELECT 1"])
    with pytest.raises(ConfigError, match="2 prompts for 1"):
        reward(prompts=["a", "b"], completions=["SELECT 1"])
    with pytest.raises(ConfigError, match="model_dir"):
        RewardModelReward("")
    with pytest.raises(ConfigError, match="not found"):
        RewardModelReward("/nonexistent/rm")(prompts=["a"], completions=["b"])


def test_build_rewards_wires_the_reward_model(rm_dir):
    rewards = build_rewards(["reward_model"], reward_model={"model_dir": str(rm_dir), "weight": 0.5, "device": "cpu"})
    (rm,) = rewards
    assert rm.__name__ == "reward_model" and rm.weight == 0.5
    assert len(rm(prompts=[PROMPT, PROMPT], completions=[ANSWERS[0], ANSWERS[1]])) == 2
