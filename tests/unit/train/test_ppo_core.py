"""PPO maths on hand-made tensors: GAE, loss signs, masking, KL, value clipping, KL controller, EOS."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from sqlcoach.train import ppo_core as core  # noqa: E402

EOS = 9


def test_gae_matches_hand_computation():
    # One row, 3 valid tokens then padding. gamma=0.9, lam=0.5.
    rewards = torch.tensor([[0.0, 0.0, 1.0, 5.0]])  # the 5.0 is on padding: must be ignored
    values = torch.tensor([[0.5, 0.2, 0.4, 7.0]])  # so is the 7.0
    mask = torch.tensor([[1, 1, 1, 0]])
    adv, ret = core.gae(rewards, values, mask, gamma=0.9, lam=0.5)
    d2 = 1.0 + 0.9 * 0.0 - 0.4  # last valid token: next value is 0 (episode ends)
    d1 = 0.0 + 0.9 * 0.4 - 0.2
    d0 = 0.0 + 0.9 * 0.2 - 0.5
    a2 = d2
    a1 = d1 + 0.9 * 0.5 * a2
    a0 = d0 + 0.9 * 0.5 * a1
    assert torch.allclose(adv, torch.tensor([[a0, a1, a2, 0.0]]), atol=1e-6)
    assert torch.allclose(ret, torch.tensor([[a0 + 0.5, a1 + 0.2, a2 + 0.4, 0.0]]), atol=1e-6)


def test_gae_with_gamma_lambda_one_is_return_minus_value():
    rewards = torch.tensor([[0.1, -0.2, 2.0]])
    values = torch.tensor([[0.3, 0.1, -0.4]])
    adv, ret = core.gae(rewards, values, torch.ones(1, 3), gamma=1.0, lam=1.0)
    togo = torch.tensor([[1.9, 1.8, 2.0]])
    assert torch.allclose(adv, togo - values, atol=1e-6)
    assert torch.allclose(ret, togo, atol=1e-6)


def test_completion_mask_stops_after_first_eos_and_padding():
    resp = torch.tensor([[5, 6, EOS, 0, 0], [5, EOS, EOS, 7, 8], [1, 2, 3, 4, 5]])
    mask = core.completion_mask(resp, [EOS])
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]
    assert core.ends_with_eos(resp, [EOS]).tolist() == [True, True, False]


def test_policy_loss_sign_raising_good_action_lowers_loss():
    old = torch.log(torch.tensor([[0.5, 0.5]]))
    adv = torch.tensor([[1.0, -1.0]])  # token 0 good, token 1 bad
    mask = torch.ones(1, 2)
    base, _ = core.policy_loss(old.clone(), old, adv, mask, cliprange=0.2)
    up_good, _ = core.policy_loss(torch.log(torch.tensor([[0.55, 0.5]])), old, adv, mask, 0.2)
    up_bad, _ = core.policy_loss(torch.log(torch.tensor([[0.5, 0.55]])), old, adv, mask, 0.2)
    assert up_good < base < up_bad
    # and the gradient pushes the good token's log-prob up
    lp = old.clone().requires_grad_(True)
    loss, _ = core.policy_loss(lp, old, adv, mask, 0.2)
    loss.backward()
    assert lp.grad[0, 0] < 0 < lp.grad[0, 1]


def test_policy_loss_clips_and_reports_clipfrac():
    old = torch.zeros(1, 2)
    new = torch.tensor([[math.log(2.0), 0.0]])  # ratio 2 on token 0: beyond 1 + 0.2
    adv = torch.tensor([[1.0, 1.0]])
    loss, stats = core.policy_loss(new.requires_grad_(True), old, adv, torch.ones(1, 2), 0.2)
    assert loss.item() == pytest.approx(-(1.2 + 1.0) / 2)
    assert stats["clipfrac"].item() == pytest.approx(0.5)
    assert stats["approxkl"].item() == pytest.approx(0.5 * (math.log(2.0) ** 2) / 2)
    loss.backward()
    assert new.grad[0, 0] == 0  # clipped token gives no gradient


def test_masked_positions_do_not_change_any_loss():
    # Prompt tokens never enter response tensors; padding after EOS is masked. Change everything
    # on masked positions: nothing may move.
    mask = torch.tensor([[1, 1, 0, 0]])
    lp, old, adv = torch.tensor([[-1.0, -2.0, -3.0, -4.0]]), torch.tensor([[-1.1, -1.9, -3.0, -4.0]]), torch.tensor([[0.5, -0.5, 1.0, 1.0]])
    v, ov, ret = torch.tensor([[0.1, 0.2, 0.3, 0.4]]), torch.tensor([[0.0, 0.3, 0.0, 0.0]]), torch.tensor([[1.0, 0.0, 2.0, 2.0]])
    pg, _ = core.policy_loss(lp, old, adv, mask, 0.2)
    vf, _ = core.value_loss(v, ov, ret, mask, 0.2)
    junk = torch.tensor([[0.0, 0.0, 50.0, -50.0]])
    pg2, _ = core.policy_loss(lp + junk, old - junk, adv + junk, mask, 0.2)
    vf2, _ = core.value_loss(v + junk, ov - junk, ret + junk, mask, 0.2)
    assert pg.item() == pytest.approx(pg2.item()) and vf.item() == pytest.approx(vf2.item())
    assert core.masked_mean(torch.tensor([1.0, 3.0, 100.0]), torch.tensor([1, 1, 0])).item() == pytest.approx(2.0)
    w = core.masked_whiten(torch.tensor([[1.0, 3.0, 100.0]]), torch.tensor([[1, 1, 0]]))
    assert w[0, 2] == 0 and w[0, 0] == pytest.approx(-w[0, 1].item())


def test_kl_zero_when_policy_equals_reference_and_reward_on_last_token():
    lp = torch.tensor([[-0.5, -1.0, -2.0]])
    mask = torch.tensor([[1, 1, 0]])
    kl = core.per_token_kl(lp, lp.clone(), mask)
    assert torch.count_nonzero(kl) == 0
    r = core.token_rewards(torch.tensor([0.7]), kl, mask, kl_coef=0.1)
    assert r[0].tolist() == pytest.approx([0.0, 0.7, 0.0])
    kl2 = core.per_token_kl(lp, lp - 1.0, mask)  # policy more likely than reference
    r2 = core.token_rewards(torch.tensor([0.0]), kl2, mask, kl_coef=0.1)
    assert r2[0].tolist() == pytest.approx([-0.1, -0.1, 0.0])
    # an excluded row (all-zero mask) gets no score
    assert core.token_rewards(torch.tensor([1.0]), torch.zeros(1, 2), torch.zeros(1, 2), 0.1).abs().sum() == 0


def test_value_loss_is_clipped():
    old = torch.tensor([[0.0]])
    ret = torch.tensor([[1.0]])
    # new value jumped to 2.0: unclipped error (2-1)^2 = 1; clipped value 0.2 -> (0.2-1)^2 = 0.64; max = 1
    loss, stats = core.value_loss(torch.tensor([[2.0]]), old, ret, torch.ones(1, 1), 0.2)
    assert loss.item() == pytest.approx(0.5 * 1.0)
    # new value 0.5: unclipped 0.25, clipped (0.2 - 1)^2 = 0.64 -> the clipped one wins
    v = torch.tensor([[0.5]], requires_grad=True)
    loss, stats = core.value_loss(v, old, ret, torch.ones(1, 1), 0.2)
    assert loss.item() == pytest.approx(0.5 * 0.64) and stats["vf_clipfrac"].item() == 1.0
    loss.backward()
    assert v.grad.item() == 0.0  # beyond the clip range the value gets no gradient


def test_adaptive_kl_controller_moves_the_right_way():
    ctl = core.AdaptiveKLController(0.1, target=6.0, horizon=100)
    ctl.update(12.0, n_steps=10)  # KL above target: raise, by at most 20% * 10/100
    assert ctl.value == pytest.approx(0.1 * (1 + 0.2 * 0.1))
    ctl2 = core.AdaptiveKLController(0.1, target=6.0, horizon=100)
    ctl2.update(3.0, n_steps=10)  # below: lower
    assert ctl2.value == pytest.approx(0.1 * (1 - 0.2 * 0.1))  # error -0.5 clipped to -0.2
    assert ctl2.value < 0.1
    fixed = core.kl_controller(0.05, None, 100)
    fixed.update(100.0, 10)
    assert fixed.value == 0.05
    assert isinstance(core.kl_controller(0.05, 1.0, 100), core.AdaptiveKLController)


def test_entropy_and_logprobs():
    logits = torch.zeros(1, 1, 4)
    assert core.entropy_from_logits(logits).item() == pytest.approx(math.log(4))
    assert core.logprobs_from_logits(logits, torch.tensor([[2]])).item() == pytest.approx(-math.log(4))


def test_position_ids_skip_left_padding():
    assert core.position_ids_from_mask(torch.tensor([[0, 0, 1, 1, 1]])).tolist() == [[0, 0, 0, 1, 2]]


def test_eos_penalty_applies_only_to_completions_without_eos():
    resp = torch.tensor([[5, EOS, 0], [5, 6, 7]])
    scores = core.apply_eos_penalty(torch.tensor([1.0, 1.0]), core.ends_with_eos(resp, [EOS]), 0.5)
    assert scores.tolist() == [1.0, 0.5]
