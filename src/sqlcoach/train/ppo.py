"""PPO for text-to-SQL with execution rewards and/or a reward model (sqlcoach's own PPO).

Run it: ``sqlcoach train ppo --config configs/ppo/demo.yaml [key=value ...] [--resume]``, or on
several GPUs ``accelerate launch -m sqlcoach.cli train ppo --config ...`` (unchanged code: the
model and optimizer go through ``accelerate.Accelerator``; each process samples its own prompts
and statistics are gathered for the logs).

Why it exists: TRL's ``PPOTrainer`` moved to ``trl.experimental.ppo`` in 0.26, was removed in 1.13,
and only ever took a reward *model*. This recipe takes the project's reward functions
(``sqlcoach.rewards.build_rewards``: the execution reward IS the EX metric), a trained reward model
(``sqlcoach.rewards.reward_model.RewardModelReward``), or both summed. The RL layer is GRPO's
(``sqlcoach.train.rl``: the same config group ``RLFields``, the same prompt rows, executor pool,
reward list and sample rows); the tensor maths is in ``sqlcoach.train.ppo_core``.

Reads top to bottom: (1) accelerator, policy + value head, reference, (2) prompt rows and rewards,
(3) optimizer (the ``_Policy`` is complete from here on), (4) resume, (5) the loop: rollout -> score -> KL-shaped token rewards -> GAE ->
``ppo_epochs`` passes of clipped policy/value updates over mini-batches -> log, samples,
checkpoints, (6) save ``output_dir/final`` and the summary.

Implementation details followed (Huang et al. 2024, "The N+ Implementation Details of RLHF with
PPO"; Huang et al. 2022, "The 37 Implementation Details of PPO"):

* left-padded prompts, generation with the policy's own sampling; positions ids skip the left
  padding in every forward pass, so log-probs match what was sampled;
* logits divided by the sampling temperature before log-probs (old, new and reference);
* the response ends at its first EOS: later tokens are padding, masked out of every loss and
  statistic (the prompt never enters one: response tensors start after it);
* per-token reward ``-beta * (log pi - log pi_ref)`` (k1 estimator), the score added on the last
  token; fixed ``beta`` or the adaptive controller of Ziegler et al. (``kl_target``);
* completions without EOS are penalised (``missing_eos_penalty`` subtracted from their score);
* GAE (``gamma``, ``lam``), advantages whitened over the rollout batch, returns = A + V;
* clipped surrogate policy loss, clipped value loss with the 0.5 factor, several PPO epochs over
  shuffled mini-batches, global gradient-norm clipping, Adam;
* dropout off throughout (the model stays in eval mode), so rollout and update see one policy.

Where it departs:

* the critic is a linear value head on the policy's last hidden state (``PolicyWithValue``), not a
  separate model initialised from the reward model: it adds ``hidden + 1`` parameters instead of a
  second LM (for a 7B model, ~4k parameters instead of 7B weights + gradients + Adam state), at the
  price of the value gradient moving the shared trunk (``vf_coef`` weighs it, 0.1 by default);
* no reward whitening and no reward-model normalisation (execution rewards are already bounded);
* with LoRA the reference is the same model with its adapters disabled (no second copy); with
  ``method=full`` a frozen copy of the starting model is kept (one more model's weights, no
  gradients or optimizer state);
* a completion whose rewards are all ``None`` (its gold cannot be scored) is left out of the
  update entirely (TRL's GRPO sums the others and treats ``None`` as missing: so does this);
* on several processes each samples its own share of the global batch (``rows_for_step``);
  advantages are whitened over all of them, gradients averaged (DDP), and only rank 0 prints,
  writes samples, checkpoints and the final model.
"""

from __future__ import annotations

import json
import random
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sqlcoach.config import PPORunConfig
from sqlcoach.errors import ConfigError
from sqlcoach.train.run import (
    RunSummary,
    last_checkpoint,
    lora_config,
    lora_over_adapter_start,
    model_recipe,
    say_resume,
    with_model_prompt,
    write_summary,
)
from sqlcoach.rewards.base import RewardFn
from sqlcoach.train.rl import outcome_source, prompt_rows, rl_pool, rl_rewards, rl_task, sample_rows
from sqlcoach.train.samples import SampleLog

#: the file whose presence makes a ``checkpoint-N`` folder complete (``train.run.last_checkpoint``)
STATE_FILE = "ppo_state.json"


def rows_for_step(rows: list[dict[str, Any]], step: int, batch: int, rank: int, world: int, seed: int) -> list[dict[str, Any]]:
    """The ``batch`` prompt rows process ``rank`` uses at PPO step ``step``.

    Rows are visited in a seeded random order, reshuffled each pass over the data; the result
    depends only on the arguments, so a resumed run continues with the same prompts."""
    out: list[dict[str, Any]] = []
    start = (step * world + rank) * batch
    for k in range(start, start + batch):
        epoch, i = divmod(k, len(rows))
        order = list(range(len(rows)))
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
        out.append(rows[order[i]])
    return out


def score_completions(
    reward_fns: list[RewardFn],
    rows: list[dict[str, Any]],
    texts: list[str],
    completion_ids: list[list[int]],
) -> tuple[list[float | None], dict[str, float], dict[str, list[float | None]]]:
    """Call every reward with TRL's contract; returns ``(scores, mean_per_reward, values_per_reward)``.

    A completion's score is the sum of its rewards that are not ``None``; ``None`` when all are."""
    prompts = [r["prompt"] for r in rows]
    completions = [[{"role": "assistant", "content": t}] for t in texts]
    columns = {k: [r.get(k) for r in rows] for k in rows[0] if k != "prompt"}
    per_fn: list[list[float | None]] = []
    for fn in reward_fns:
        values = list(fn(prompts=prompts, completions=completions, completion_ids=completion_ids, **columns))
        if len(values) != len(texts):
            raise ConfigError(
                f"reward {getattr(fn, '__name__', fn)!r} returned {len(values)} values for {len(texts)} completions "
                "(TRL's contract: one value, or None, per completion)"
            )
        per_fn.append(values)
    scores: list[float | None] = []
    for i in range(len(texts)):
        got = [float(v[i]) for v in per_fn if v[i] is not None]
        scores.append(sum(got) if got else None)
    means = {}
    for fn, values in zip(reward_fns, per_fn):
        ok = [float(v) for v in values if v is not None]
        means[f"rewards/{getattr(fn, '__name__', 'reward')}"] = sum(ok) / len(ok) if ok else float("nan")
    return scores, means, {getattr(fn, "__name__", "reward"): values for fn, values in zip(reward_fns, per_fn)}


@dataclass(frozen=True)
class _Nets:
    """What the first setup step builds: the accelerator, the tokenizer, the policy with its value
    head (not yet prepared by accelerate), the reference (``None``: the policy with adapters
    disabled, or no reference at all when ``measures_kl`` is False) and the stop tokens."""

    accelerator: Any
    tokenizer: Any
    model: Any
    ref_model: Any
    eos_ids: list[int]
    measures_kl: bool  # uses_reference(cfg): False means no reference, KL not measured


@dataclass
class _Policy:
    """Everything the loop trains with, built complete by ``_prepare`` (``_Nets`` + the optimizer):
    the policy with its value head wrapped by accelerate (``model``) and unwrapped, the reference,
    the optimizer, the KL controller and the stop tokens."""

    accelerator: Any
    tokenizer: Any
    model: Any
    unwrapped: Any
    ref_model: Any
    optimizer: Any
    kl_ctl: Any
    eos_ids: list[int]
    measures_kl: bool


@dataclass
class _Progress:
    """The loop's counters; a checkpoint stores and restores them."""

    step: int = 0
    already: float = 0.0  # training seconds spent before this process (resumed runs)
    tokens_generated: int = 0
    reward_curve: list[dict[str, Any]] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)
    checkpoint: Path | None = None
    stopped_by_clock: bool = False


def uses_reference(cfg: PPORunConfig) -> bool:
    """Whether the run needs the reference policy: only for the KL penalty (``kl_coef > 0`` or an
    adaptive ``kl_target``). With ``kl_coef: 0`` no frozen copy is loaded and no reference forward
    runs (as GRPO with ``beta: 0``); the logged ``kl`` is then ``None`` (not measured)."""
    return cfg.kl_coef > 0 or cfg.kl_target is not None


def _reference_kind(pol: _Policy) -> str:
    if not pol.measures_kl:
        return "none (kl_coef 0: no KL penalty, the KL is not measured)"
    return "policy with adapters disabled" if pol.ref_model is None else "frozen copy of the start model"


def _setup_policy(cfg: PPORunConfig) -> _Nets:
    """Accelerator, tokenizer, policy + value head, reference (in this order: the random
    initialisations of the LoRA adapters and the value head follow ``set_seed``)."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from sqlcoach.generate.hf import eos_ids
    from sqlcoach.models.load import load_start, load_tokenizer
    from sqlcoach.runtime.device import resolve_dtype
    from sqlcoach.train import ppo_core as core

    accelerator = Accelerator(cpu=cfg.use_cpu, gradient_accumulation_steps=cfg.gradient_accumulation_steps)
    set_seed(cfg.seed, device_specific=True)  # each process samples differently
    tokenizer = load_tokenizer(cfg.model, padding_side="left")
    dtype = resolve_dtype(cfg.dtype, "cpu" if cfg.use_cpu or accelerator.device.type == "cpu" else "cuda")
    policy = load_start(cfg.model, dtype=dtype)  # an adapter start merged first (_save_final saves merged then)
    ref_model = None
    if cfg.method == "lora":
        from peft import get_peft_model

        policy = get_peft_model(policy, lora_config(cfg))
    elif uses_reference(cfg):
        ref_model = load_start(cfg.model, dtype=dtype).to(accelerator.device)
        ref_model.eval().requires_grad_(False)
    model = core.PolicyWithValue(policy, core.hidden_size_of(policy)).to(accelerator.device)
    model.eval()  # dropout off during rollouts *and* updates (N+ details)
    stop_ids = eos_ids(policy, tokenizer)
    return _Nets(accelerator=accelerator, tokenizer=tokenizer, model=model, ref_model=ref_model, eos_ids=stop_ids,
                 measures_kl=uses_reference(cfg))


def _prepare(cfg: PPORunConfig, nets: _Nets) -> _Policy:
    """AdamW over the trainable policy weights and the value head, both prepared by accelerate;
    the KL controller; the complete ``_Policy``. (After the rows and rewards are built, as before:
    a reward model that loads must not shift the random state the policy samples with.)"""
    import torch

    from sqlcoach.train import ppo_core as core

    trainable = [p for p in nets.model.policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": trainable, "lr": cfg.learning_rate},
            {"params": list(nets.model.value_head.parameters()), "lr": cfg.value_learning_rate or cfg.learning_rate},
        ],
        weight_decay=cfg.weight_decay,
    )
    model, optimizer = nets.accelerator.prepare(nets.model, optimizer)
    return _Policy(accelerator=nets.accelerator, tokenizer=nets.tokenizer, model=model,
                   unwrapped=nets.accelerator.unwrap_model(model), ref_model=nets.ref_model, optimizer=optimizer,
                   kl_ctl=core.kl_controller(cfg.kl_coef, cfg.kl_target, cfg.kl_horizon), eos_ids=nets.eos_ids,
                   measures_kl=nets.measures_kl)


def _resume(pol: _Policy, out: Path, resume: bool, say: Callable[[str], None]) -> _Progress:
    """Counters, weights, optimizer, KL controller and RNG from the last checkpoint (or fresh)."""
    import torch

    prog = _Progress(checkpoint=last_checkpoint(out, STATE_FILE) if resume else None)
    ckpt = prog.checkpoint
    if ckpt is None:
        say_resume(resume, None, str(out), say)
    else:
        # loaded to CPU, copied onto each parameter's own device by load_state_dict (a map_location
        # of the accelerator's device fails under several CPU processes: "cpu:0" is not a location)
        state = json.loads((ckpt / STATE_FILE).read_text())
        _load_trainable(pol.unwrapped, torch.load(ckpt / "trainable.pt", map_location="cpu"))
        pol.optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location="cpu"))
        rng = torch.load(ckpt / "rng.pt")
        torch.set_rng_state(rng[pol.accelerator.process_index % len(rng)] if isinstance(rng, list) else rng)
        pol.kl_ctl.load_state_dict(state["kl_controller"])
        prog.step, prog.already = int(state["global_step"]), float(state["train_seconds"])
        prog.tokens_generated, prog.reward_curve = int(state["tokens_generated"]), list(state["reward_curve"])
        say(f"resuming from {ckpt} at step {prog.step}")
    return prog


@dataclass
class _Rollout:
    """One PPO step's batch: prompts, sampled sequences and their scores. Shapes in comments."""

    rows: list[dict[str, Any]]
    seqs: Any  # [B, P + R]
    response: Any  # [B, R]
    attn: Any  # [B, P + R]
    P: int  # padded prompt length (left padding)
    resp_mask: Any  # [B, R]
    has_eos: Any  # [B]
    texts: list[str]
    raw_scores: list[float | None]  # [B] sum of the rewards that are not None; None when all are
    per_reward: dict[str, float]  # rewards/<name>: the batch mean of each reward
    reward_values: dict[str, list[float | None]]  # <name>: [B] each reward's values
    outcomes: list[Any] | None  # [B] execution outcomes (train.rl.outcome_source), None without one
    valid: Any  # [B]
    scores: Any  # [B], after the EOS penalty
    mask: Any  # [B, R] tokens that train
    t_gen: float
    t_score: float


def _rollout(cfg: PPORunConfig, pol: _Policy, batch_rows: list[dict[str, Any]], reward_fns: list[RewardFn]) -> _Rollout:
    """Sample one completion per prompt with the current policy and score it (rewards + EOS penalty;
    a completion whose rewards are all ``None`` is left out of the update)."""
    import torch

    from sqlcoach.prompts.chat import to_text
    from sqlcoach.train import ppo_core as core

    ts = time.monotonic()
    tok, dev = pol.tokenizer, pol.accelerator.device
    from sqlcoach.generate.hf import decoding_config, neutral_generate

    # Sample from softmax(logits / T) (top_k 0: no cut), the distribution the log-probs are computed
    # under; nothing from the checkpoint's generation_config (repetition penalty, top-k...) applies.
    gen_cfg = decoding_config(pol.unwrapped.policy, tok, do_sample=True, temperature=cfg.temperature, top_p=1.0,
                              top_k=cfg.top_k, max_new_tokens=cfg.max_completion_length, eos_token_id=pol.eos_ids)
    enc = tok([to_text(r["prompt"], tok) for r in batch_rows], add_special_tokens=False, padding=True,
              return_tensors="pt").to(dev)
    P = enc["input_ids"].shape[1]
    with torch.no_grad():
        seqs = neutral_generate(pol.unwrapped.policy, gen_cfg, **enc)  # [B, P + R]
    t_gen = time.monotonic() - ts
    response = seqs[:, P:]  # [B, R]
    resp_mask = core.completion_mask(response, pol.eos_ids)  # [B, R]
    has_eos = core.ends_with_eos(response, pol.eos_ids)  # [B]
    attn = torch.cat([enc["attention_mask"], resp_mask], dim=1)  # [B, P + R]
    lengths = resp_mask.sum(1).tolist()
    ids_list = [response[i, : lengths[i]].tolist() for i in range(len(batch_rows))]
    texts = [tok.decode(ids, skip_special_tokens=True) for ids in ids_list]
    raw_scores, per_reward, reward_values = score_completions(reward_fns, batch_rows, texts, ids_list)
    source = outcome_source(reward_fns)
    valid = torch.tensor([s is not None for s in raw_scores], device=dev)  # [B]
    scores = torch.tensor([0.0 if s is None else s for s in raw_scores], device=dev)
    scores = core.apply_eos_penalty(scores, has_eos, cfg.missing_eos_penalty)  # [B]
    mask = resp_mask * valid.long().unsqueeze(1)  # [B, R]
    return _Rollout(rows=batch_rows, seqs=seqs, response=response, attn=attn, P=P, resp_mask=resp_mask, has_eos=has_eos,
                    texts=texts, raw_scores=raw_scores, per_reward=per_reward, reward_values=reward_values,
                    outcomes=list(source.last_outcomes) if source is not None else None, valid=valid, scores=scores,
                    mask=mask, t_gen=t_gen, t_score=time.monotonic() - ts - t_gen)


def _advantages(cfg: PPORunConfig, pol: _Policy, ro: _Rollout) -> tuple[Any, Any, Any, Any]:
    """Old log-probs, values and reference log-probs (in micro-batches), the KL-shaped token
    rewards and GAE: ``(old_logp, old_v, kl, (adv, returns))``, each ``[B, R]``."""
    import torch

    from sqlcoach.train import ppo_core as core

    B, micro, net = len(ro.rows), cfg.per_device_train_batch_size, pol.unwrapped
    with torch.no_grad():
        old_logp, old_v, ref_logp = [], [], []
        for a in range(0, B, micro):
            seqs, attn, resp = ro.seqs[a : a + micro], ro.attn[a : a + micro], ro.response[a : a + micro]
            logits, v = net(seqs, attn, ro.P, cfg.temperature)
            old_logp.append(core.logprobs_from_logits(logits, resp))
            old_v.append(v.float())
            del logits
            if not pol.measures_kl:  # kl_coef 0: no reference forward (uses_reference)
                continue
            if pol.ref_model is None:
                with net.policy.disable_adapter():
                    rl = core.reference_logits(net.policy, seqs, attn, ro.P, cfg.temperature)
            else:
                rl = core.reference_logits(pol.ref_model, seqs, attn, ro.P, cfg.temperature)
            ref_logp.append(core.logprobs_from_logits(rl, resp))
            del rl
        old_logp_t, old_v_t = torch.cat(old_logp), torch.cat(old_v)  # [B, R]
        ref_logp_t = torch.cat(ref_logp) if ref_logp else old_logp_t  # no reference: KL term 0
        kl = core.per_token_kl(old_logp_t, ref_logp_t, ro.mask)  # [B, R]
        tok_rewards = core.token_rewards(ro.scores, kl, ro.mask, pol.kl_ctl.value)  # [B, R]
        adv, returns = core.gae(tok_rewards, old_v_t, ro.mask, cfg.gamma, cfg.lam)  # [B, R]
        if cfg.whiten_advantages:  # over the whole rollout of every process, as one process would
            acc = pol.accelerator
            adv = core.masked_whiten(adv, ro.mask, sum_across=(lambda t: acc.reduce(t, "sum")) if acc.num_processes > 1 else None)
    return old_logp_t, old_v_t, kl, (adv, returns)


def _update(cfg: PPORunConfig, pol: _Policy, ro: _Rollout, old_logp: Any, old_v: Any, adv: Any, returns: Any) -> dict[str, list[float]]:
    """``ppo_epochs`` passes of clipped policy/value updates over shuffled mini-batches (each
    mini-batch one optimizer step); returns the per-micro-batch statistics."""
    import torch

    from sqlcoach.train import ppo_core as core

    acc, model, B = pol.accelerator, pol.model, len(ro.rows)
    micro, mini = cfg.per_device_train_batch_size, cfg.mini_batch_size
    stats: dict[str, list[float]] = {k: [] for k in ("pg_loss", "vf_loss", "entropy", "clipfrac", "approxkl", "vf_clipfrac")}
    for _epoch in range(cfg.ppo_epochs):
        perm = torch.randperm(B, device=acc.device)
        for m0 in range(0, B, mini):
            for a in range(m0, m0 + mini, micro):
                idx = perm[a : a + micro]
                with acc.accumulate(model):
                    logits, v = model(ro.seqs[idx], ro.attn[idx], ro.P, cfg.temperature)  # [b, R, V], [b, R]
                    logp = core.logprobs_from_logits(logits, ro.response[idx])
                    m = ro.mask[idx]
                    pg, pgs = core.policy_loss(logp, old_logp[idx], adv[idx], m, cfg.cliprange)
                    vf, vfs = core.value_loss(v.float(), old_v[idx], returns[idx], m, cfg.cliprange_value)
                    if cfg.ent_coef > 0:
                        ent = core.masked_mean(core.entropy_from_logits(logits), m)
                        loss = pg + cfg.vf_coef * vf - cfg.ent_coef * ent
                    else:  # a statistic only: no graph through a softmax over the vocabulary
                        with torch.no_grad():
                            ent = core.masked_mean(core.entropy_from_logits(logits.detach()), m)
                        loss = pg + cfg.vf_coef * vf
                    acc.backward(loss)
                    # One optimizer step per mini-batch: accelerate sets sync_gradients on the last of
                    # its gradient_accumulation_steps micro-batches (the config makes a mini-batch exactly
                    # that many), so the step, the clip and the zero_grad happen at that boundary only.
                    if acc.sync_gradients:
                        acc.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                        pol.optimizer.step()
                        pol.optimizer.zero_grad()
                for k, val in (("pg_loss", pg), ("vf_loss", vf), ("entropy", ent), ("clipfrac", pgs["clipfrac"]),
                               ("approxkl", pgs["approxkl"]), ("vf_clipfrac", vfs["vf_clipfrac"])):
                    stats[k].append(float(val.detach()))
                del logits, v, loss
    return stats


def _record(pol: _Policy, ro: _Rollout, kl: Any, stats: dict[str, list[float]], prog: _Progress,
            t_step: float, t_update: float) -> dict[str, Any]:
    """Statistics gathered across processes, the KL controller updated; one log record."""
    import torch

    acc = pol.accelerator
    seq_kl = kl.sum(1)  # [B]
    g = lambda t: acc.gather(t.detach().float().reshape(-1))  # noqa: E731
    g_valid = g(ro.valid.float())
    g_scores = g(torch.tensor([0.0 if s is None else s for s in ro.raw_scores], device=acc.device))
    n_valid = max(float(g_valid.sum()), 1.0)
    mean_kl = float((g(seq_kl) * g_valid).sum() / n_valid)
    kl_coef_used = pol.kl_ctl.value
    pol.kl_ctl.update(mean_kl, int(g_valid.numel()))
    new_tokens = int(g(ro.resp_mask.sum(1).float()).sum())
    prog.tokens_generated += new_tokens
    mean_stats = {k: float(g(torch.tensor(statistics.fmean(v), device=acc.device)).mean()) for k, v in stats.items()}
    return {
        "step": prog.step,
        "reward": float((g(ro.scores) * g_valid).sum() / n_valid),  # after the EOS penalty
        "score": float((g_scores * g_valid).sum() / n_valid),  # reward functions only
        "kl": mean_kl if pol.measures_kl else None,
        "kl_coef": kl_coef_used,
        **mean_stats,
        "no_eos": float(1.0 - g(ro.has_eos.float()).mean()),
        "unscored": float(1.0 - g_valid.mean()),
        "response_tokens": new_tokens / g_valid.numel(),
        **{k: round(v, 4) for k, v in ro.per_reward.items()},
        "step_seconds": round(t_step, 3),
        "generate_seconds": round(ro.t_gen, 3),
        "reward_seconds": round(ro.t_score, 3),
        "update_seconds": round(t_update, 3),
    }


def _ppo_step(cfg: PPORunConfig, pol: _Policy, rows: list[dict[str, Any]], reward_fns: list[RewardFn],
              prog: _Progress) -> tuple[_Rollout, dict[str, Any]]:
    """rollout -> score -> KL-shaped token rewards -> GAE -> clipped updates -> record."""
    ts = time.monotonic()
    acc = pol.accelerator
    batch_rows = rows_for_step(rows, prog.step, cfg.rollout_batch_size, acc.process_index, acc.num_processes, cfg.seed)
    ro = _rollout(cfg, pol, batch_rows, reward_fns)
    old_logp, old_v, kl, (adv, returns) = _advantages(cfg, pol, ro)
    t_update = time.monotonic()
    stats = _update(cfg, pol, ro, old_logp, old_v, adv, returns)
    prog.step += 1
    prog.step_seconds.append(time.monotonic() - ts)
    record = _record(pol, ro, kl, stats, prog, prog.step_seconds[-1], time.monotonic() - t_update)
    prog.reward_curve.append(record)
    return ro, record


def run_ppo(
    cfg: PPORunConfig,
    *,
    resume: bool = False,
    rows: list[dict[str, Any]] | None = None,
    reward_fns: list[RewardFn] | None = None,
    callbacks: list[Any] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train as ``cfg`` says; returns the summary dict (``train.run.RunSummary``, also in
    ``output_dir/summary.json``) with the details ``tokens_generated``, ``kl_coef_final``,
    ``curation`` (``train.rl.prompt_rows``' report) and ``reward_curve`` (one record per PPO step).

    Guarantees: ``output_dir/final`` holds the policy (full model or LoRA adapter) + tokenizer and
    ``value_head.pt``; ``output_dir/log_history.json`` one record per logged step;
    ``output_dir/samples.jsonl`` the sample rows. With ``resume=True`` the run continues from the
    last ``checkpoint-N`` (weights, optimizer, KL coefficient, RNG, step count, reward curve).
    ``rows`` replaces the prompt loading and building (RL rows: ``prompt`` + the columns the
    rewards read; curation still applies, as in GRPO); ``reward_fns`` replaces the rewards the
    config names; ``callbacks`` are ``TrainerCallback``s whose ``on_step_begin`` / ``on_step_end``
    run around each PPO step (PPO has no Trainer: no other hook is called)."""
    from sqlcoach.runtime.dist import main_log

    t0 = time.monotonic()
    say = main_log(log)  # every rank trains; rank 0 alone prints and writes the bookkeeping
    cfg, _ = with_model_prompt(cfg, say)
    nets = _setup_policy(cfg)
    samples = SampleLog(cfg.output_dir, every=cfg.sample_every, n=cfg.num_samples, log=say, fresh=not resume)
    pool = rl_pool(cfg)  # one executor pool for every SQL of the run, reward_timeout s per query
    try:
        if reward_fns is None:  # first: whether they read gold decides which questions the task keeps
            reward_fns = rl_rewards(cfg, pool, device="cpu" if cfg.use_cpu else "auto")
        rows, curation = prompt_rows(cfg, rl_task(cfg, pool, reward_fns), pool=pool, log=say, rows=rows,
                                     model=nets.model.policy, tokenizer=nets.tokenizer, rewards=reward_fns)
        pol = _prepare(cfg, nets)
        n_trainable = sum(p.numel() for p in pol.unwrapped.parameters() if p.requires_grad)
        say(f"PPO ({cfg.method}): {n_trainable:,} trainable parameters (value head "
            f"{sum(p.numel() for p in pol.unwrapped.value_head.parameters())}), {len(rows)} prompts, "
            f"{pol.accelerator.num_processes} process(es), reference: "
            f"{_reference_kind(pol)}")
        prog = _resume(pol, Path(cfg.output_dir), resume, say)
        train_seconds, peak = _loop(cfg, pol, rows, reward_fns, prog, samples, callbacks or [], say)
    finally:
        pool.close()

    summary = _summary(cfg, pol, prog, rows=len(rows), n_trainable=n_trainable, t0=t0,
                       train_seconds=train_seconds, peak=peak, curation=curation)
    return _save_final(cfg, pol, prog, summary)


def _loop(cfg: PPORunConfig, pol: _Policy, rows: list[dict[str, Any]], reward_fns: list[RewardFn], prog: _Progress,
          samples: SampleLog, callbacks: list[Any], say: Callable[[str], None]) -> tuple[float, Any]:
    """PPO steps until ``max_steps`` or the wall-clock budget, with the log line, the sample rows
    and the checkpoints; returns ``(training seconds, peak memory)``."""
    from sqlcoach.runtime.dist import shared_value
    from sqlcoach.runtime.memory import track_peak

    from transformers import TrainerControl, TrainerState

    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    main = pol.accelerator.is_main_process
    state, control = TrainerState(max_steps=cfg.max_steps), TrainerControl()  # what the callbacks' hooks see (args: None)
    loop_start = time.monotonic()
    with track_peak() as peak:
        while prog.step < cfg.max_steps:
            state.global_step = prog.step
            for cb in callbacks:
                cb.on_step_begin(None, state, control)
            ro, record = _ppo_step(cfg, pol, rows, reward_fns, prog)
            state.global_step = prog.step
            for cb in callbacks:
                cb.on_step_end(None, state, control)
            if main and (prog.step % cfg.logging_steps == 0 or prog.step == cfg.max_steps):
                say(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in record.items()}))
            if main and samples.due(prog.step):
                samples.write(prog.step, _sample_rows(ro, cfg.num_samples))
            # rank 0's clock decides for every rank: one rank stopping alone would hang the others
            spent = shared_value(prog.already + time.monotonic() - loop_start)
            stop = cfg.max_seconds is not None and spent >= cfg.max_seconds and prog.step < cfg.max_steps
            if prog.step % cfg.save_steps == 0 or stop:
                _save_checkpoint(pol, out / f"checkpoint-{prog.step}", prog, spent, cfg.save_total_limit)
            if stop:
                prog.stopped_by_clock = True
                say(f"stopping at step {prog.step}: max_seconds={cfg.max_seconds} spent; --resume continues")
                break
    return time.monotonic() - loop_start, peak


def _summary(cfg: PPORunConfig, pol: _Policy, prog: _Progress, *, rows: int, n_trainable: int, t0: float,
             train_seconds: float, peak: Any, curation: dict[str, Any]) -> RunSummary:
    return RunSummary(
        recipe="ppo", final_dir=str(Path(cfg.output_dir) / "final"), global_step=prog.step, max_steps=cfg.max_steps,
        seconds=round(time.monotonic() - t0, 2), train_seconds=round(train_seconds, 2),
        median_step_seconds=round(statistics.median(prog.step_seconds), 3) if prog.step_seconds else None,
        peak_memory_mb=round(peak.rss_mb, 1), peak_cuda_mb=None if peak.cuda_mb is None else round(peak.cuda_mb, 1),
        train_loss=None, rows=rows, skipped=0, trainable_parameters=int(n_trainable),
        device=pol.accelerator.device.type, resumed_from=str(prog.checkpoint) if prog.checkpoint else None,
        stopped_by_clock=prog.stopped_by_clock, plot_png=None, world_size=pol.accelerator.num_processes,
        global_batch=cfg.rollout_batch_size * pol.accelerator.num_processes,
        distributed_type=str(getattr(pol.accelerator.distributed_type, "value", pol.accelerator.distributed_type)),
        details={"tokens_generated": prog.tokens_generated, "kl_coef_final": pol.kl_ctl.value, "curation": curation,
                 "reward_curve": prog.reward_curve},
    )


def _save_final(cfg: PPORunConfig, pol: _Policy, prog: _Progress, summary: RunSummary) -> dict[str, Any]:
    """Rank 0 writes ``final/`` (policy or adapter, tokenizer, ``value_head.pt``), the log history
    and the summary; every rank returns the summary dict."""
    import torch

    pol.accelerator.wait_for_everyone()
    if not pol.accelerator.is_main_process:
        return summary.as_dict()
    out = Path(cfg.output_dir)
    final = out / "final"
    policy = pol.unwrapped.policy
    if lora_over_adapter_start(cfg):
        policy = policy.merge_and_unload()
    policy.save_pretrained(str(final))
    pol.tokenizer.save_pretrained(str(final))
    torch.save(pol.unwrapped.value_head.state_dict(), final / "value_head.pt")
    model_recipe(cfg, "ppo", max_new_tokens=cfg.max_completion_length).save(final)
    (out / "log_history.json").write_text(json.dumps(prog.reward_curve, indent=1) + "\n")
    return write_summary(cfg, summary)


# ----------------------------------------------------------------------------- helpers of the recipe


def _load_trainable(model: Any, state: dict[str, Any]) -> None:
    """Load a checkpoint's trainable tensors; every trainable parameter must be in it."""
    missing = [n for n, p in model.named_parameters() if p.requires_grad and n not in state]
    if missing:
        raise ConfigError(f"checkpoint does not match the model: {len(missing)} trainable tensors missing (e.g. {missing[:3]})")
    model.load_state_dict(state, strict=False)


def _save_checkpoint(pol: _Policy, path: Path, prog: _Progress, spent: float, keep: int | None) -> None:
    """Trainable weights (LoRA + value head, or everything for full), optimizer, RNG and counters.

    Written to ``path.tmp`` and renamed, so a run killed while saving leaves no half checkpoint."""
    import torch

    from sqlcoach.runtime.dist import gather_objects

    pol.accelerator.wait_for_everyone()
    rng_states = gather_objects(torch.get_rng_state())  # one per rank: each keeps sampling its own stream
    if not pol.accelerator.is_main_process:
        return
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save({n: p.detach().cpu() for n, p in pol.unwrapped.named_parameters() if p.requires_grad}, tmp / "trainable.pt")
    torch.save(pol.optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(rng_states[0] if len(rng_states) == 1 else rng_states, tmp / "rng.pt")
    state = {
        "global_step": prog.step, "train_seconds": round(spent, 3), "tokens_generated": prog.tokens_generated,
        "kl_controller": pol.kl_ctl.state_dict(), "reward_curve": prog.reward_curve,
    }
    (tmp / STATE_FILE).write_text(json.dumps(state) + "\n")
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    if keep is not None:
        older = sorted(
            (p for p in path.parent.glob("checkpoint-*") if p.name.split("-", 1)[1].isdigit()),
            key=lambda p: int(p.name.split("-", 1)[1]),
        )
        for p in older[:-keep]:
            shutil.rmtree(p, ignore_errors=True)


def _sample_rows(ro: _Rollout, n: int) -> list[dict[str, Any]]:
    """The sample-log rows of the first ``n`` completions of a rollout (``train.rl.sample_rows``);
    ``reward`` is the score the update used (after the EOS penalty)."""
    columns = {k: [r.get(k) for r in ro.rows] for k in ("question", "db_id", "gold_sql", "sql_names")}
    return sample_rows(ro.texts, columns, ro.reward_values, ro.outcomes, n=n, totals=[float(x) for x in ro.scores])
