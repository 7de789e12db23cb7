"""A trained reward model (``sqlcoach train rm``) as a reward function with TRL's contract.

    reward = RewardModelReward("runs/rm/final")
    reward(prompts=[[{"role": "user", "content": ...}]], completions=[[{"role": "assistant", "content": "SELECT ..."}]])
    # -> [1.73]  (the RM's scalar score times ``weight``)

    build_rewards(["execution", "reward_model"], reward_model={"model_dir": "runs/rm/final"})

The text scored is formatted exactly as ``trl.RewardTrainer`` formatted it in training:
conversational rows -> ``tokenizer.apply_chat_template(prompt + completion)`` (no generation
prompt); plain-text rows -> ``prompt + completion + eos``. Sequences longer than ``max_length``
keep their *last* tokens (the answer and the final token the score head reads). Batches are padded
on the right with the pad token, as TRL's collator does, so the score comes from the last real
token.

Unlike the execution rewards this one is learned: it can be gamed (reward hacking), so use it next
to an execution reward, not instead of one, and look at the logged samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from sqlcoach.errors import ConfigError
from sqlcoach.rewards.common import completion_text


def load_reward_model(model_dir: str | Path, *, device: str = "auto", dtype: str = "auto") -> tuple[Any, Any]:
    """(model, tokenizer) of a reward model folder: ``AutoModelForSequenceClassification`` with one
    label. A LoRA adapter folder (``adapter_config.json``) is loaded on its base and merged."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from sqlcoach.models.load import is_adapter
    from sqlcoach.runtime.device import resolve_device, resolve_dtype

    p = Path(model_dir)
    if not p.exists():
        raise ConfigError(f"reward model not found: {p}")
    dev = resolve_device(device)
    kwargs = {"dtype": resolve_dtype(dtype, dev), "num_labels": 1}
    tok_src = str(p)
    if is_adapter(p):
        import json

        from peft import PeftModel

        base = json.loads((p / "adapter_config.json").read_text()).get("base_model_name_or_path")
        if not base:
            raise ConfigError(f"{p}/adapter_config.json names no base model")
        model = AutoModelForSequenceClassification.from_pretrained(base, **kwargs)
        model = PeftModel.from_pretrained(model, str(p)).merge_and_unload()
        if not (p / "tokenizer_config.json").is_file():
            tok_src = str(base)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(str(p), **kwargs)
    if model.config.num_labels != 1:
        raise ConfigError(f"{p}: a reward model has one output (num_labels=1), this one has {model.config.num_labels}")
    tok = AutoTokenizer.from_pretrained(tok_src)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    model.config.pad_token_id = tok.pad_token_id
    model.to(dev).eval()
    return model, tok


def encode(tokenizer: Any, prompt: Any, completion: Any, max_length: int | None = None) -> list[int]:
    """Token ids of ``prompt + completion`` as ``trl.RewardTrainer`` builds them (see module doc)."""
    if isinstance(prompt, (list, tuple)):
        messages = list(prompt)
        if isinstance(completion, (list, tuple)):
            messages += [m for m in completion if isinstance(m, dict)]
        else:
            messages.append({"role": "assistant", "content": completion_text(completion)})
        ids = list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])
    else:
        text = str(prompt or "") + completion_text(completion)
        eos = tokenizer.eos_token or ""
        if eos and not text.endswith(eos):
            text += eos
        ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if max_length is not None and len(ids) > max_length:
        ids = ids[-max_length:]
    return ids


def score_ids(model: Any, tokenizer: Any, seqs: Sequence[list[int]], *, batch_size: int = 16) -> list[float]:
    """The reward model's scalar score of each token sequence (batched, right-padded)."""
    import torch

    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id
    out: list[float] = [0.0] * len(seqs)
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))  # similar lengths per batch
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            width = max(len(seqs[i]) for i in idx) or 1
            ids = torch.full((len(idx), width), pad, dtype=torch.long)  # [B, T]
            mask = torch.zeros((len(idx), width), dtype=torch.long)  # [B, T]
            for r, i in enumerate(idx):
                s = seqs[i]
                if s:
                    ids[r, : len(s)] = torch.tensor(s, dtype=torch.long)
                    mask[r, : len(s)] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits  # [B, 1]
            for r, i in enumerate(idx):
                out[i] = float(logits[r, 0])
    return out


class RewardModelReward:
    """TRL reward callable: ``(prompts, completions, completion_ids=None, **columns) -> list[float]``.

    The model loads on first call (building GRPO's reward list stays cheap). ``weight`` multiplies
    every score; ``max_length`` caps tokens per scored sequence (the end is kept)."""

    needs_gold = False  # it scores the question and the completion, never the gold

    def __init__(
        self,
        model_dir: str,
        *,
        weight: float = 1.0,
        batch_size: int = 16,
        device: str = "auto",
        dtype: str = "auto",
        max_length: int | None = 2048,
        name: str = "reward_model",
    ) -> None:
        if not model_dir:
            raise ConfigError("reward 'reward_model' needs model_dir: the folder written by `sqlcoach train rm` (its final/)")
        if batch_size < 1:
            raise ConfigError(f"reward_model batch_size must be >= 1, got {batch_size}")
        if max_length is not None and max_length < 1:
            raise ConfigError("reward_model max_length must be >= 1 or None")
        self.model_dir = str(model_dir)
        self.weight = float(weight)
        self.batch_size = batch_size
        self.device = device
        self.dtype = dtype
        self.max_length = max_length
        self.__name__ = name
        self._model: Any = None
        self._tok: Any = None

    def _load(self) -> None:
        if self._model is None:
            self._model, self._tok = load_reward_model(self.model_dir, device=self.device, dtype=self.dtype)

    def __call__(
        self, prompts: Sequence[Any] | None = None, completions: Sequence[Any] | None = None,
        completion_ids: Any = None, **columns: Any,
    ) -> list[float]:
        completions = list(completions or [])
        if prompts is None:
            raise ConfigError("reward 'reward_model' scores prompt + completion: TRL passes prompts=; direct callers must too")
        prompts = list(prompts)
        if len(prompts) != len(completions):
            raise ConfigError(f"reward_model: {len(prompts)} prompts for {len(completions)} completions")
        if not completions:
            return []
        self._load()
        seqs = [encode(self._tok, p, c, self.max_length) for p, c in zip(prompts, completions)]
        return [self.weight * s for s in score_ids(self._model, self._tok, seqs, batch_size=self.batch_size)]
