"""The library pieces of sqlcoach's PPO (the recipe is ``sqlcoach.train.ppo``).

Pure tensor functions (each tested on a hand-made case in ``tests/unit/train/test_ppo_core.py``):

* ``completion_mask``, ``ends_with_eos``, ``apply_eos_penalty``: 1 for the generated tokens up to and including the first EOS, 0 after it
  (padding); the prompt is never part of a response tensor (responses are sliced after it);
  a completion cut by the length cap loses ``missing_eos_penalty`` from its score.
* ``logprobs_from_logits``, ``entropy_from_logits``: per-token, over the full softmax.
* ``masked_mean``, ``masked_var``, ``masked_whiten``: statistics over valid tokens only.
* ``per_token_kl``: ``log pi(a) - log pi_ref(a)`` (the k1 estimator used for the penalty), 0 on padding.
* ``token_rewards``: ``-kl_coef * kl`` on every token, plus the sequence score on its last token.
* ``gae``: generalised advantage estimation (gamma, lambda) backwards over the response.
* ``policy_loss``, ``value_loss``: PPO's clipped surrogate and clipped value losses, with the
  clip fraction and approx-KL that the recipe logs.
* ``FixedKLController``, ``AdaptiveKLController``: the KL coefficient (Ziegler et al. 2019).
* ``PolicyWithValue``: the policy LM plus a linear value head on its last hidden state.

Shapes: ``B`` completions, ``R`` response (generated) positions, ``V`` vocabulary, ``H`` hidden.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import torch
from torch import nn

from sqlcoach.errors import ConfigError, ModelError


# ----------------------------------------------------------------------------- masks and statistics


def completion_mask(response_ids: torch.Tensor, eos_ids: Iterable[int]) -> torch.Tensor:
    """``[B, R]`` long mask: 1 up to and including the first EOS token of each row, 0 after it.

    A row without EOS (cut by ``max_new_tokens``) is all ones. Tokens ``generate`` wrote after
    a row's EOS (padding) are 0 whatever their id."""
    eos = torch.tensor(sorted(set(int(e) for e in eos_ids)), device=response_ids.device)
    is_eos = torch.isin(response_ids, eos)  # [B, R]
    # Number of EOS tokens strictly before position t: a position is valid while that is 0.
    before = torch.cumsum(is_eos.long(), dim=1) - is_eos.long()
    return (before == 0).long()


def ends_with_eos(response_ids: torch.Tensor, eos_ids: Iterable[int]) -> torch.Tensor:
    """``[B]`` bool: the row produced an EOS token (it ended on its own, not by the length cap)."""
    eos = torch.tensor(sorted(set(int(e) for e in eos_ids)), device=response_ids.device)
    return torch.isin(response_ids, eos).any(dim=1)


def apply_eos_penalty(scores: torch.Tensor, has_eos: torch.Tensor, penalty: float) -> torch.Tensor:
    """``[B]`` scores with ``penalty`` subtracted where the completion never produced EOS."""
    return scores - penalty * (~has_eos.bool()).to(scores.dtype)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` over positions where ``mask`` is 1 (0 when there are none)."""
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of ``x`` over valid positions (Bessel-corrected when ``unbiased`` and n > 1)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    n = mask.sum()
    if unbiased and n > 1:
        var = var * n / (n - 1)
    return var


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, sum_across: Any = None) -> torch.Tensor:
    """``(x - mean) / std`` over valid positions; masked positions come back as 0.

    ``shift_mean=False`` keeps the mean (only rescales), as used for rewards. ``sum_across`` (a
    function summing a tensor over processes, e.g. ``accelerator.reduce(t, "sum")``) takes mean and
    variance over every process's positions, so N processes whiten exactly as one would."""
    if sum_across is None:
        mean, var = masked_mean(x, mask), masked_var(x, mask)
    else:
        m = mask.to(x.dtype)
        tot = sum_across(torch.stack([(x * m).sum(), m.sum()]))
        n = tot[1].clamp(min=1.0)
        mean = tot[0] / n
        var = sum_across(((x - mean) ** 2 * m).sum()) / n
        var = var * n / (n - 1) if float(n) > 1 else var
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        out = out + mean
    return out * mask.to(x.dtype)


# ----------------------------------------------------------------------------- log-probs, entropy, KL


def logprobs_from_logits(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """``[B, R, V]`` logits and ``[B, R]`` tokens -> ``[B, R]`` log-probability of each token."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return torch.gather(logp, 2, tokens.unsqueeze(-1)).squeeze(-1)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """``[B, R, V]`` -> ``[B, R]`` entropy of each position's distribution (nats)."""
    logits = logits.float()
    p = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (p * logits).sum(-1)


def per_token_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[B, R]`` KL penalty term per token: ``log pi(a_t) - log pi_ref(a_t)`` (k1), 0 on padding.

    Its sum over a sequence is an unbiased estimate of KL(pi || pi_ref) for that prompt."""
    return (logprobs - ref_logprobs) * mask.to(logprobs.dtype)


def token_rewards(
    scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> torch.Tensor:
    """``[B, R]`` per-token reward: ``-kl_coef * kl_t`` everywhere, plus ``scores[b]`` on the last
    valid token of row ``b`` (its EOS, or the last token of a cut row). 0 on padding.

    A row whose mask is all zero (excluded from training) gets no score."""
    m = mask.to(kl.dtype)
    rewards = -kl_coef * kl * m  # [B, R]
    lengths = mask.long().sum(1)  # [B]
    last = (lengths - 1).clamp(min=0)  # [B]
    has = (lengths > 0).to(kl.dtype)
    rewards = rewards.clone()
    rewards[torch.arange(rewards.shape[0], device=rewards.device), last] += scores.to(kl.dtype) * has
    return rewards


# ----------------------------------------------------------------------------- advantages


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over ``[B, R]`` responses; returns ``(advantages, returns)``.

    ``delta_t = r_t + gamma * V_{t+1} - V_t`` and ``A_t = delta_t + gamma * lam * A_{t+1}``, with
    ``V`` and ``A`` taken as 0 beyond a row's last valid token (the episode ends at EOS).
    ``returns = A + V`` are the value targets. Both are 0 on padding."""
    m = mask.to(values.dtype)
    values = values * m
    rewards = rewards * m
    R = rewards.shape[1]
    adv = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[:, 0])  # [B]
    for t in reversed(range(R)):
        next_v = values[:, t + 1] if t + 1 < R else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_v - values[:, t]
        last = (delta + gamma * lam * last) * m[:, t]
        adv[:, t] = last
    returns = (adv + values) * m
    return adv, returns


# ----------------------------------------------------------------------------- losses


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    cliprange: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate, ``mean_t max(-A r, -A clip(r, 1-eps, 1+eps))`` over valid tokens,
    with ``r = exp(logprobs - old_logprobs)``. Returns ``(loss, stats)``; stats hold
    ``clipfrac`` (share of tokens where the clipped term won) and ``approxkl``
    (``0.5 * mean (log r)^2``). All ``[B, R]``."""
    log_ratio = (logprobs - old_logprobs) * mask.to(logprobs.dtype)
    ratio = torch.exp(log_ratio)
    pg1 = -advantages * ratio
    pg2 = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = masked_mean(torch.maximum(pg1, pg2), mask)
    with torch.no_grad():
        stats = {
            "clipfrac": masked_mean((pg2 > pg1).float(), mask),
            "approxkl": 0.5 * masked_mean(log_ratio**2, mask),
            "ratio": masked_mean(ratio, mask),
        }
    return loss, stats


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    cliprange_value: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped value loss ``0.5 * mean_t max((V - G)^2, (V_clip - G)^2)`` with ``V_clip = V_old +
    clip(V - V_old, -eps_v, eps_v)``. Returns ``(loss, stats)`` with ``vf_clipfrac``. All ``[B, R]``."""
    clipped = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    vf1 = (values - returns) ** 2
    vf2 = (clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(vf1, vf2), mask)
    with torch.no_grad():
        stats = {"vf_clipfrac": masked_mean((vf2 > vf1).float(), mask)}
    return loss, stats


# ----------------------------------------------------------------------------- KL controllers


class FixedKLController:
    """A constant KL coefficient."""

    def __init__(self, value: float):
        self.value = float(value)

    def update(self, current_kl: float, n_steps: int) -> None:
        """Nothing to do: the coefficient is fixed."""

    def state_dict(self) -> dict[str, float]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.value = float(state["value"])


class AdaptiveKLController:
    """Ziegler et al. (2019), "Fine-Tuning Language Models from Human Preferences", section 2.2:
    ``e = clip(KL / target - 1, -0.2, 0.2)``; ``coef *= 1 + e * n_steps / horizon``.

    KL above the target raises the coefficient, below lowers it; ``n_steps`` is the number of
    completions the KL was measured on."""

    def __init__(self, init_value: float, target: float, horizon: int):
        if target <= 0 or horizon <= 0:
            raise ConfigError(f"kl_target and kl_horizon must be > 0, got kl_target={target}, kl_horizon={horizon}")
        self.value = float(init_value)
        self.target = float(target)
        self.horizon = int(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        if not math.isfinite(current_kl):
            return
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon

    def state_dict(self) -> dict[str, float]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.value = float(state["value"])


def kl_controller(kl_coef: float, kl_target: float | None, kl_horizon: int) -> FixedKLController | AdaptiveKLController:
    """Adaptive when ``kl_target`` is set, else fixed."""
    if kl_target is None:
        return FixedKLController(kl_coef)
    return AdaptiveKLController(kl_coef, kl_target, kl_horizon)


# ----------------------------------------------------------------------------- model


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """``[B, T]`` positions that skip left padding (what ``generate`` uses), so that a forward pass
    over a left-padded sequence sees the same positions as the sampling did."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class PolicyWithValue(nn.Module):
    """The policy LM (a transformers model, or a peft model for LoRA) plus a value head.

    The value head is one ``Linear(H, 1)`` on the policy's last hidden state: the critic shares
    the policy's trunk, so it costs ``H + 1`` parameters (and their optimizer state) instead of a
    second model, and one forward pass gives both log-probs and values. Its price is that the
    value loss's gradient also moves the shared trunk (``vf_coef`` weighs it)."""

    def __init__(self, policy: nn.Module, hidden_size: int):
        super().__init__()
        self.policy = policy
        self.value_head = nn.Linear(hidden_size, 1)
        nn.init.normal_(self.value_head.weight, std=1.0 / math.sqrt(hidden_size + 1))
        nn.init.zeros_(self.value_head.bias)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, context_length: int, temperature: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, T]`` sequences (prompt of padded length ``context_length`` + response) ->
        ``(logits [B, R, V] / temperature, values [B, R])`` for the R response positions: position
        t holds the distribution of response token t and the value of the state before it."""
        # logits_to_keep: the LM head runs on the R + 1 last positions only, not the prompt's (the
        # same logits; TRL's trainers do the same), a saving of the prompt's share of the head
        out = self.policy(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids_from_mask(attention_mask),
            output_hidden_states=True,
            use_cache=False,
            logits_to_keep=input_ids.shape[1] - context_length + 1,
        )
        logits = out.logits[:, :-1, :] / temperature  # [B, R, V]
        hidden = out.hidden_states[-1][:, context_length - 1 : -1, :]  # [B, R, H]
        values = self.value_head(hidden.to(self.value_head.weight.dtype)).squeeze(-1)  # [B, R]
        return logits, values


@torch.no_grad()
def reference_logits(
    ref_model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    context_length: int,
    temperature: float,
) -> torch.Tensor:
    """``[B, R, V]`` response logits of the reference model (divided by ``temperature``)."""
    out = ref_model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids_from_mask(attention_mask),
        use_cache=False,
        logits_to_keep=input_ids.shape[1] - context_length + 1,
    )
    return out.logits[:, :-1, :] / temperature


def hidden_size_of(model: Any) -> int:
    """The hidden size of a transformers (or peft-wrapped) causal LM."""
    cfg = getattr(model, "config", None)
    for name in ("hidden_size", "n_embd", "d_model"):
        value = getattr(cfg, name, None)
        if isinstance(value, int):
            return value
    text_cfg = getattr(cfg, "text_config", None)
    if text_cfg is not None and isinstance(getattr(text_cfg, "hidden_size", None), int):
        return int(text_cfg.hidden_size)
    raise ModelError(
        f"cannot find the hidden size of {type(model).__name__}: its config has no hidden_size, n_embd or "
        "d_model (PPO needs it for the value head); use a transformers causal LM"
    )
