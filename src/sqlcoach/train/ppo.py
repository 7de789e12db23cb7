"""PPO for text-to-SQL with execution rewards and/or a reward model (sqlcoach's own PPO).

Run it: ``sqlcoach train ppo --config configs/ppo/demo.yaml [key=value ...] [--resume]``, or on
several GPUs ``accelerate launch -m sqlcoach.cli train ppo --config ...`` (unchanged code: the
model and optimizer go through ``accelerate.Accelerator``; each process samples its own prompts
and statistics are gathered for the logs).

Why it exists: TRL's ``PPOTrainer`` moved to ``trl.experimental.ppo`` in 0.26, was removed in 1.13,
and only ever took a reward *model*. This recipe takes the project's reward functions
(``sqlcoach.rewards.build_rewards``: the execution reward IS the EX metric), a trained reward model
(``sqlcoach.rewards.reward_model.RewardModelReward``), or both summed. Rollout prompts and gold
curation are GRPO's (``sqlcoach.train.rl_data``); the tensor maths is in ``sqlcoach.train.ppo_core``.

Reads top to bottom: (1) accelerator, policy + value head, reference, (2) prompt rows and rewards,
(3) optimizer, (4) resume, (5) the loop: rollout -> score -> KL-shaped token rewards -> GAE ->
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
* on several processes advantages are whitened per process.
"""

from __future__ import annotations

import json
import random
import shutil
import statistics
import time
from pathlib import Path
from typing import Any, Callable

from sqlcoach.errors import ConfigError, DataError
from sqlcoach.train.common import config_to_dict
from sqlcoach.train.ppo_config import PPORunConfig

STATE_FILE = "ppo_state.json"


def last_checkpoint(output_dir: str | Path) -> Path | None:
    """The ``checkpoint-N`` folder with the largest N that holds a complete PPO state, or ``None``."""
    best: tuple[int, Path] | None = None
    for p in Path(output_dir).glob("checkpoint-*"):
        try:
            n = int(p.name.split("-", 1)[1])
        except ValueError:
            continue
        if (p / STATE_FILE).is_file() and (best is None or n > best[0]):
            best = (n, p)
    return best[1] if best else None


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
    reward_fns: list[Callable[..., Any]],
    rows: list[dict[str, Any]],
    texts: list[str],
    completion_ids: list[list[int]],
) -> tuple[list[float | None], dict[str, float]]:
    """Call every reward with TRL's contract; returns ``(scores, mean_per_reward)``.

    A completion's score is the sum of its rewards that are not ``None``; ``None`` when all are."""
    prompts = [r["prompt"] for r in rows]
    completions = [[{"role": "assistant", "content": t}] for t in texts]
    columns = {k: [r.get(k) for r in rows] for k in rows[0] if k != "prompt"}
    per_fn: list[list[float | None]] = []
    for fn in reward_fns:
        values = list(fn(prompts=prompts, completions=completions, completion_ids=completion_ids, **columns))
        if len(values) != len(texts):
            raise ValueError(f"reward {getattr(fn, '__name__', fn)!r} returned {len(values)} values for {len(texts)} completions")
        per_fn.append(values)
    scores: list[float | None] = []
    for i in range(len(texts)):
        got = [float(v[i]) for v in per_fn if v[i] is not None]
        scores.append(sum(got) if got else None)
    means = {}
    for fn, values in zip(reward_fns, per_fn):
        ok = [float(v) for v in values if v is not None]
        means[f"rewards/{getattr(fn, '__name__', 'reward')}"] = sum(ok) / len(ok) if ok else float("nan")
    return scores, means


def run_ppo(
    cfg: PPORunConfig,
    *,
    resume: bool = False,
    rows: list[dict[str, Any]] | None = None,
    reward_fns: list[Callable[..., Any]] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train as ``cfg`` says; returns the summary dict (also in ``output_dir/sqlcoach_ppo.json``).

    Guarantees: ``output_dir/final`` holds the policy (full model or LoRA adapter) + tokenizer and
    ``value_head.pt``; ``output_dir/log_history.json`` one record per logged step;
    ``output_dir/samples.jsonl`` the sample rows. With ``resume=True`` the run continues from the
    last ``checkpoint-N`` (weights, optimizer, KL coefficient, RNG, step count, reward curve).
    ``rows`` replaces the prompt loading (RL rows: ``prompt`` + the columns the rewards read);
    ``reward_fns`` replaces the rewards the config names."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import AutoModelForCausalLM

    from sqlcoach.bench.memory import track_peak
    from sqlcoach.models.load import load_tokenizer, resolve_dtype
    from sqlcoach.prompts.chat import to_text
    from sqlcoach.train import ppo_core as core

    t0 = time.monotonic()
    out = Path(cfg.output_dir)

    # (1) accelerator, tokenizer, policy + value head, reference -----------------------------
    accelerator = Accelerator(cpu=cfg.use_cpu, gradient_accumulation_steps=cfg.gradient_accumulation_steps)
    main = accelerator.is_main_process
    say = log if main else (lambda _m: None)
    set_seed(cfg.seed, device_specific=True)  # each process samples differently
    tokenizer = load_tokenizer(cfg.model, padding_side="left")
    device_name = "cpu" if cfg.use_cpu or accelerator.device.type == "cpu" else "cuda"
    dtype = resolve_dtype(cfg.dtype, device_name)
    policy = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=dtype)
    ref_model = None
    if cfg.method == "lora":
        from peft import get_peft_model

        from sqlcoach.train.common import lora_config

        policy = get_peft_model(policy, lora_config(cfg))
    else:
        ref_model = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=dtype).to(accelerator.device)
        ref_model.eval().requires_grad_(False)
    model = core.PolicyWithValue(policy, core.hidden_size_of(policy)).to(accelerator.device)
    model.eval()  # dropout off during rollouts *and* updates (N+ details)
    from sqlcoach.generate.hf import eos_ids as _stop_ids

    eos_ids = _stop_ids(policy, tokenizer)

    # (2) prompt rows (GRPO's) and rewards: one executor pool for gold curation, rewards, samples
    from sqlcoach.execution.pool import ExecutorPool

    pool = ExecutorPool(workers=cfg.reward_workers)
    try:
        if rows is None:
            from sqlcoach.data import load_examples
            from sqlcoach.train.rl_data import build_rl_rows, curate_gold

            examples = load_examples(cfg.data_kind, cfg.data_path, cfg.split)
            if cfg.max_examples is not None:
                examples = examples[: cfg.max_examples]
            rows = build_rl_rows(
                examples, template=cfg.template, schema_style=cfg.schema_style,
                schema_sample_values=cfg.schema_sample_values, log=say,
            )
            rows, report = curate_gold(rows, pool=pool)
            say(f"prompts: {report['kept']} of {report['in']} kept (dropped: {report['dropped']})")
        if not rows:
            raise DataError("no prompt rows to train on", path=cfg.data_path)
        if reward_fns is None:
            reward_fns = _build_reward_fns(cfg, pool)

        # (3) optimizer: policy (LoRA or all weights) and value head, through accelerate ---------
        trainable = [p for p in model.policy.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            [
                {"params": trainable, "lr": cfg.learning_rate},
                {"params": list(model.value_head.parameters()), "lr": cfg.value_learning_rate or cfg.learning_rate},
            ],
            weight_decay=cfg.weight_decay,
        )
        model, optimizer = accelerator.prepare(model, optimizer)
        unwrapped = accelerator.unwrap_model(model)
        kl_ctl = core.kl_controller(cfg.kl_coef, cfg.kl_target, cfg.kl_horizon)
        n_trainable = sum(p.numel() for p in unwrapped.parameters() if p.requires_grad)
        say(
            f"PPO ({cfg.method}): {n_trainable:,} trainable parameters (value head {sum(p.numel() for p in unwrapped.value_head.parameters())}), "
            f"{len(rows)} prompts, {accelerator.num_processes} process(es), reference: "
            f"{'policy with adapters disabled' if ref_model is None else 'frozen copy of the start model'}"
        )

        # (4) resume -------------------------------------------------------------------------
        step, already, tokens_generated = 0, 0.0, 0
        reward_curve: list[dict[str, Any]] = []
        ckpt = last_checkpoint(out) if resume else None
        if resume and ckpt is None:
            say(f"--resume: no checkpoint in {out}; starting from step 0")
        if ckpt is not None:
            state = json.loads((ckpt / STATE_FILE).read_text())
            _load_trainable(unwrapped, torch.load(ckpt / "trainable.pt", map_location=accelerator.device))
            optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location=accelerator.device))
            torch.set_rng_state(torch.load(ckpt / "rng.pt"))
            kl_ctl.load_state_dict(state["kl_controller"])
            step, already = int(state["global_step"]), float(state["train_seconds"])
            tokens_generated, reward_curve = int(state["tokens_generated"]), list(state["reward_curve"])
            say(f"resuming from {ckpt} at step {step}")
        out.mkdir(parents=True, exist_ok=True)
        step_seconds: list[float] = []
        loop_start = time.monotonic()
        stopped_by_clock = False
        gen_kwargs: dict[str, Any] = {
            "do_sample": True, "temperature": cfg.temperature, "top_k": cfg.top_k or None, "top_p": 1.0,
            "max_new_tokens": cfg.max_new_tokens, "eos_token_id": eos_ids, "pad_token_id": tokenizer.pad_token_id,
            "use_cache": True,
        }
        micro, mini, B = cfg.per_device_train_batch_size, cfg.mini_batch_size, cfg.rollout_batch_size

        # (5) the loop -----------------------------------------------------------------------
        with track_peak() as peak:
            while step < cfg.max_steps:
                ts = time.monotonic()
                batch_rows = rows_for_step(rows, step, B, accelerator.process_index, accelerator.num_processes, cfg.seed)

                # rollout: sample one completion per prompt with the current policy
                texts_in = [to_text(r["prompt"], tokenizer) for r in batch_rows]
                enc = tokenizer(texts_in, add_special_tokens=False, padding=True, return_tensors="pt").to(accelerator.device)
                P = enc["input_ids"].shape[1]  # padded prompt length (left padding)
                with torch.no_grad():
                    seqs = unwrapped.policy.generate(**enc, **gen_kwargs)  # [B, P + R]
                t_gen = time.monotonic() - ts
                response = seqs[:, P:]  # [B, R]
                resp_mask = core.completion_mask(response, eos_ids)  # [B, R]
                has_eos = core.ends_with_eos(response, eos_ids)  # [B]
                attn = torch.cat([enc["attention_mask"], resp_mask], dim=1)  # [B, P + R]
                lengths = resp_mask.sum(1).tolist()
                ids_list = [response[i, : lengths[i]].tolist() for i in range(B)]
                texts = [tokenizer.decode(ids, skip_special_tokens=True) for ids in ids_list]

                # score: reward functions (+ reward model), EOS penalty; None -> left out
                raw_scores, per_reward = score_completions(reward_fns, batch_rows, texts, ids_list)
                valid = torch.tensor([s is not None for s in raw_scores], device=accelerator.device)  # [B]
                scores = torch.tensor([0.0 if s is None else s for s in raw_scores], device=accelerator.device)
                scores = core.apply_eos_penalty(scores, has_eos, cfg.missing_eos_penalty)  # [B]
                mask = resp_mask * valid.long().unsqueeze(1)  # [B, R] tokens that train

                t_score = time.monotonic() - ts - t_gen
                # old log-probs, values and reference log-probs, in micro-batches
                with torch.no_grad():
                    old_logp, old_v, ref_logp = [], [], []
                    for a in range(0, B, micro):
                        logits, v = unwrapped(seqs[a : a + micro], attn[a : a + micro], P, cfg.temperature)
                        old_logp.append(core.logprobs_from_logits(logits, response[a : a + micro]))
                        old_v.append(v.float())
                        del logits
                        if ref_model is None:
                            with unwrapped.policy.disable_adapter():
                                rl = core.reference_logits(unwrapped.policy, seqs[a : a + micro], attn[a : a + micro], P, cfg.temperature)
                        else:
                            rl = core.reference_logits(ref_model, seqs[a : a + micro], attn[a : a + micro], P, cfg.temperature)
                        ref_logp.append(core.logprobs_from_logits(rl, response[a : a + micro]))
                        del rl
                    old_logp_t, old_v_t, ref_logp_t = torch.cat(old_logp), torch.cat(old_v), torch.cat(ref_logp)  # [B, R]
                    kl = core.per_token_kl(old_logp_t, ref_logp_t, mask)  # [B, R]
                    tok_rewards = core.token_rewards(scores, kl, mask, kl_ctl.value)  # [B, R]
                    adv, returns = core.gae(tok_rewards, old_v_t, mask, cfg.gamma, cfg.lam)  # [B, R]
                    if cfg.whiten_advantages:
                        adv = core.masked_whiten(adv, mask)

                t_update_start = time.monotonic()
                # PPO epochs over shuffled mini-batches; each mini-batch is one optimizer step
                stats: dict[str, list[float]] = {k: [] for k in ("pg_loss", "vf_loss", "entropy", "clipfrac", "approxkl", "vf_clipfrac")}
                for _epoch in range(cfg.ppo_epochs):
                    perm = torch.randperm(B, device=accelerator.device)
                    for m0 in range(0, B, mini):
                        for a in range(m0, m0 + mini, micro):
                            idx = perm[a : a + micro]
                            with accelerator.accumulate(model):
                                logits, v = model(seqs[idx], attn[idx], P, cfg.temperature)  # [b, R, V], [b, R]
                                logp = core.logprobs_from_logits(logits, response[idx])
                                m = mask[idx]
                                pg, pgs = core.policy_loss(logp, old_logp_t[idx], adv[idx], m, cfg.cliprange)
                                vf, vfs = core.value_loss(v.float(), old_v_t[idx], returns[idx], m, cfg.cliprange_value)
                                ent = core.masked_mean(core.entropy_from_logits(logits), m)
                                loss = pg + cfg.vf_coef * vf - cfg.ent_coef * ent
                                accelerator.backward(loss)
                                if accelerator.sync_gradients:
                                    accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                                optimizer.step()
                                optimizer.zero_grad()
                            for k, val in (("pg_loss", pg), ("vf_loss", vf), ("entropy", ent), ("clipfrac", pgs["clipfrac"]),
                                           ("approxkl", pgs["approxkl"]), ("vf_clipfrac", vfs["vf_clipfrac"])):
                                stats[k].append(float(val.detach()))
                            del logits, v, loss

                # bookkeeping: gather across processes, adapt the KL coefficient, log
                seq_kl = kl.sum(1)  # [B]
                g = lambda t: accelerator.gather(t.detach().float().reshape(-1))  # noqa: E731
                g_valid = g(valid.float())
                g_scores = g(torch.tensor([0.0 if s is None else s for s in raw_scores], device=accelerator.device))
                n_valid = max(float(g_valid.sum()), 1.0)
                mean_kl = float((g(seq_kl) * g_valid).sum() / n_valid)
                kl_coef_used = kl_ctl.value
                kl_ctl.update(mean_kl, int(g_valid.numel()))
                new_tokens = int(g(resp_mask.sum(1).float()).sum())
                tokens_generated += new_tokens
                step += 1
                step_seconds.append(time.monotonic() - ts)
                mean_stats = {k: float(g(torch.tensor(statistics.fmean(v), device=accelerator.device)).mean()) for k, v in stats.items()}
                record = {
                    "step": step,
                    "reward": float((g(scores) * g_valid).sum() / n_valid),  # after the EOS penalty
                    "score": float((g_scores * g_valid).sum() / n_valid),  # reward functions only
                    "kl": mean_kl,
                    "kl_coef": kl_coef_used,
                    **mean_stats,
                    "no_eos": float(1.0 - g(has_eos.float()).mean()),
                    "unscored": float(1.0 - g_valid.mean()),
                    "response_tokens": new_tokens / g_valid.numel(),
                    **{k: round(v, 4) for k, v in per_reward.items()},
                    "step_seconds": round(step_seconds[-1], 3),
                    "generate_seconds": round(t_gen, 3),
                    "reward_seconds": round(t_score, 3),
                    "update_seconds": round(time.monotonic() - t_update_start, 3),
                }
                reward_curve.append(record)
                if main and (step % cfg.logging_steps == 0 or step == cfg.max_steps):
                    say(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in record.items()}))
                if main and cfg.sample_every and cfg.num_samples and (step % cfg.sample_every == 0 or step == 1):
                    _log_samples(step, batch_rows[: cfg.num_samples], texts, raw_scores, scores, pool, out, say)

                spent = already + time.monotonic() - loop_start
                stop = cfg.max_seconds is not None and spent >= cfg.max_seconds and step < cfg.max_steps
                if step % cfg.save_steps == 0 or stop:
                    _save_checkpoint(accelerator, unwrapped, optimizer, kl_ctl, out / f"checkpoint-{step}",
                                     step, spent, tokens_generated, reward_curve, cfg.save_total_limit)
                if stop:
                    stopped_by_clock = True
                    say(f"stopping at step {step}: max_seconds={cfg.max_seconds} spent; --resume continues")
                    break

        # (6) save the final policy and the summary ------------------------------------------
        accelerator.wait_for_everyone()
        final = out / "final"
        if main:
            unwrapped.policy.save_pretrained(str(final))
            tokenizer.save_pretrained(str(final))
            torch.save(unwrapped.value_head.state_dict(), final / "value_head.pt")
            (out / "log_history.json").write_text(json.dumps(reward_curve, indent=1) + "\n")
        summary = {
            "final_dir": str(final),
            "global_step": step,
            "max_steps": cfg.max_steps,
            "method": cfg.method,
            "resumed_from": str(ckpt) if ckpt else None,
            "stopped_by_clock": stopped_by_clock,
            "prompts": len(rows),
            "trainable_parameters": int(n_trainable),
            "seconds": round(time.monotonic() - t0, 2),
            "median_step_seconds": round(statistics.median(step_seconds), 3) if step_seconds else None,
            "peak_memory_mb": round(peak.cuda_mb if peak.cuda_mb is not None else peak.rss_mb, 1),
            "peak_rss_mb": round(peak.rss_mb, 1),
            "peak_cuda_mb": None if peak.cuda_mb is None else round(peak.cuda_mb, 1),
            "tokens_generated": tokens_generated,
            "kl_coef_final": kl_ctl.value,
            "reward_curve": reward_curve,
        }
        if main:
            (out / "sqlcoach_ppo.json").write_text(json.dumps({"config": config_to_dict(cfg), "summary": summary}, indent=2) + "\n")
        return summary
    finally:
        pool.close()


# ----------------------------------------------------------------------------- helpers of the recipe


def _build_reward_fns(cfg: PPORunConfig, pool: Any) -> list[Callable[..., Any]]:
    """The configured reward functions (sharing ``pool``) and the reward model, if any."""
    fns: list[Callable[..., Any]] = []
    if cfg.rewards:
        from sqlcoach.rewards import build_rewards

        spec: Any = cfg.rewards[0] if len(cfg.rewards) == 1 else list(cfg.rewards)
        fns.extend(build_rewards(spec, pool=pool))
    if cfg.reward_model:
        from sqlcoach.rewards.reward_model import RewardModelReward

        fns.append(RewardModelReward(cfg.reward_model, weight=cfg.reward_model_weight, device="cpu" if cfg.use_cpu else "auto"))
    return fns


def _load_trainable(model: Any, state: dict[str, Any]) -> None:
    """Load a checkpoint's trainable tensors; every trainable parameter must be in it."""
    missing = [n for n, p in model.named_parameters() if p.requires_grad and n not in state]
    if missing:
        raise ConfigError(f"checkpoint does not match the model: {len(missing)} trainable tensors missing (e.g. {missing[:3]})")
    model.load_state_dict(state, strict=False)


def _save_checkpoint(
    accelerator: Any, model: Any, optimizer: Any, kl_ctl: Any, path: Path, step: int, spent: float,
    tokens_generated: int, reward_curve: list[dict[str, Any]], keep: int | None,
) -> None:
    """Trainable weights (LoRA + value head, or everything for full), optimizer, RNG and counters.

    Written to ``path.tmp`` and renamed, so a run killed while saving leaves no half checkpoint."""
    import torch

    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save({n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad}, tmp / "trainable.pt")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(torch.get_rng_state(), tmp / "rng.pt")
    state = {
        "global_step": step, "train_seconds": round(spent, 3), "tokens_generated": tokens_generated,
        "kl_controller": kl_ctl.state_dict(), "reward_curve": reward_curve,
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


def _log_samples(
    step: int, rows: list[dict[str, Any]], texts: list[str], raw: list[float | None], scores: Any,
    pool: Any, out: Path, say: Callable[[str], None],
) -> None:
    """Show (question, SQL, result, gold, reward) rows: to the log and to ``samples.jsonl``."""
    from sqlcoach.rewards.common import completion_sql

    sqls = [completion_sql(t, r.get("sql_names")) for t, r in zip(texts, rows)]
    results = pool.run([(r["db_path"], s or "SELECT NULL WHERE 0") for r, s in zip(rows, sqls)])
    with (out / "samples.jsonl").open("a", encoding="utf-8") as fh:
        for i, (row, sql, res) in enumerate(zip(rows, sqls, results)):
            result = f"{res.error}: {res.message[:120]}" if res.error else repr(list(res.rows or [])[:3])[:200]
            rec = {
                "step": step, "question": row.get("question", ""), "sql": sql, "result": result if sql else "(no SQL)",
                "gold": row.get("gold_sql", ""), "score": raw[i], "reward": round(float(scores[i]), 4),
                "completion": texts[i][:500],
            }
            fh.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
            say(f"  sample step {step}: Q: {rec['question']} | SQL: {sql} | result: {rec['result']} | gold: {rec['gold']} | reward {rec['reward']}")
