"""GRPO with rewards computed by executing the model's SQL, on TRL's ``GRPOTrainer``.

Run it: ``sqlcoach train grpo --config configs/grpo/demo.yaml [key=value ...] [--resume]``
(from Python: ``run_grpo(load_config(GRPORunConfig, path, overrides))``; a script that calls it
needs an ``if __name__ == "__main__":`` guard, since the SQL executor starts worker processes).

Reads top to bottom:

1. model and tokenizer (``sqlcoach.models.load``; a LoRA adapter given as ``model`` is merged
   first, so GRPO continues from exactly the SFT policy);
2. prompts: questions -> ``rl_data.build_rl_rows`` (the SFT recipe's own prompt), shuffled with
   ``seed`` and cut to ``max_examples``; ``curate_gold`` drops prompts whose gold fails or returns
   nothing; with ``pass_rate_k`` the start policy samples k answers per prompt and prompts solved
   always or never are dropped (their groups would have zero reward variance: no signal);
3. rewards: ``sqlcoach.rewards.build_rewards`` on ONE ``ExecutorPool`` shared by every reward call
   (gold results cached there), wrapped by a recorder that keeps the last batch for the sample log;
4. ``GRPOConfig`` + ``GRPOTrainer`` (LoRA through ``peft_config``) run by ``train.run.fit``
   (wall-clock budget written into checkpoints for ``--resume``, step timer, peak memory) with
   the sample log (``train.samples``: every ``sample_log_every`` steps ``num_examine`` rows of
   question, SQL, execution result, rewards printed and appended to ``output_dir/samples.jsonl``);
5. save ``output_dir/final`` (full model, or the adapter, or with ``merge_lora`` or a start that
   was itself an adapter the merged model), ``log_history.json``, ``reward.png`` and
   ``summary.json``; close the executor pool.

With ``dynamic_sampling`` (DAPO's dynamic sampling, online) every generation batch's groups whose
binary execution outcome is uniform (all G completions match the gold, or none does) are masked
out of the loss (``with_dynamic_sampling``; the shaped reward's variance is not what decides).

Per step TRL logs ``reward``, ``rewards/<name>/mean`` for every component, ``frac_reward_zero_std``
(the share of groups whose rewards are all equal: those contribute no gradient) and the execution
reward's own ``<name>/ex`` and ``<name>/executes``; the summary turns them into curves.

Departures from the GRPO paper (DeepSeekMath, Shao et al. 2024): TRL's default ``loss_type`` is
``dapo`` (token-level normalisation over the batch, no per-sequence length bias) rather than the
paper's per-sequence mean; ``beta`` (KL to a reference) defaults to 0 as in DAPO / Dr. GRPO, where
the paper used 0.04; one policy update per generation batch (``num_iterations=1``), so the
clipped ratio is 1 and the objective is the plain policy gradient with group-normalised advantages.
Departures from Arctic-Text2SQL-R1 (Yao et al. 2025): on CPU there is no vLLM (Hugging Face
``generate``), groups are small (G=8 instead of 16) and completions short (the demo's
``sql_terminal`` template has no reasoning). The demo keeps Arctic's binary reward (the
``arctic`` preset without its format term) but turns off std scaling (``scale_rewards: none``,
as Dr. GRPO) and filters prompts by the start policy's pass rate once before training, because on
this weak start (EX ~3 % on training questions) the 0.1 "it runs" credit otherwise dominates and
the policy collapses to one short query per database (seen here: execution rate 20 % -> 99.7 %,
EX down). configs/grpo/qwen2.5-coder-7b-arctic.yaml is the GPU recipe closer to the paper.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any, Callable

from sqlcoach.config import GRPORunConfig
from sqlcoach.errors import ConfigError, DataError
from sqlcoach.prompts.settings import PromptSettings
from sqlcoach.train.rl_data import build_rl_rows, curate_gold, sharded_pass_rate_filter
from sqlcoach.train.run import (
    RunSummary,
    fit,
    load_policy,
    lora_config,
    main_log,
    model_recipe,
    on_main,
    precision_flags,
    save_final,
    trainer_kwargs,
    with_model_prompt,
    write_summary,
)
from sqlcoach.train.samples import SampleLog, sample_log_callback


class RewardRecorder:
    """Wraps the reward callables (TRL's contract kept, ``__name__`` kept) and remembers the last
    batch: completions, dataset columns, each component's rewards, and the execution outcomes.
    Also counts the generated tokens (``completion_ids``) over the whole run."""

    def __init__(self, rewards: list[Callable[..., Any]]):
        self.rewards = rewards
        self.last: dict[str, Any] = {}
        self.tokens_generated = 0
        self.batches = 0
        self.wrapped = [self._wrap(i, r) for i, r in enumerate(rewards)]

    def _wrap(self, i: int, fn: Callable[..., Any]) -> Callable[..., Any]:
        recorder = self

        def reward(prompts=None, completions=(), completion_ids=None, **columns):  # noqa: ANN001 - TRL's contract
            values = fn(prompts=prompts, completions=completions, completion_ids=completion_ids, **columns)
            if i == 0:  # the first reward of a batch starts a new record
                recorder.batches += 1
                if completion_ids is not None:
                    recorder.tokens_generated += sum(len(ids) for ids in completion_ids)
                recorder.last = {
                    "completions": list(completions),
                    "columns": {k: v for k, v in columns.items() if isinstance(v, list)},
                    "rewards": {},
                    "outcomes": None,
                }
            recorder.last["rewards"][fn.__name__] = list(values)
            outcomes = getattr(fn, "last_outcomes", None)
            if outcomes and recorder.last.get("outcomes") is None:
                recorder.last["outcomes"] = list(outcomes)
            return values

        reward.__name__ = fn.__name__
        return reward

    def sample_rows(self, n: int, group: int) -> list[dict[str, Any]]:
        """Up to ``n`` rows of the last batch, the first completion of each of the first groups
        (so the rows show different questions), then the rest in order."""
        from sqlcoach.rewards.common import completion_sql, completion_text

        last = self.last
        completions = last.get("completions") or []
        if not completions or n <= 0:
            return []
        order = list(range(0, len(completions), group)) + [i for i in range(len(completions)) if i % group]
        cols = last["columns"]
        rows = []
        for i in order[:n]:
            text = completion_text(completions[i])
            o = last["outcomes"][i] if last.get("outcomes") else None
            if o is None:
                result = None
            elif o.error:
                result = f"{o.error}: {o.message}"[:200] if o.message else o.error
            else:
                result = "equal to gold" if o.equal else f"ran, wrong result (jaccard {o.jaccard:.2f})"
            comp = {name: vals[i] for name, vals in last["rewards"].items()}
            rows.append(
                {
                    "index": i,
                    "question": (cols.get("question") or [None] * len(completions))[i],
                    "db_id": (cols.get("db_id") or [None] * len(completions))[i],
                    "gold_sql": (cols.get("gold_sql") or [None] * len(completions))[i],
                    "completion": text[:500],
                    "sql": o.sql if o is not None else completion_sql(completions[i], (cols.get("sql_names") or [None] * len(completions))[i]),
                    "result": result,
                    "rewards": comp,
                    "reward": round(sum(v for v in comp.values() if v is not None), 4),
                }
            )
        return rows


def vllm_args(cfg: GRPORunConfig) -> dict[str, Any]:
    """The vLLM fields of TRL's ``GRPOConfig`` (``use_vllm``: rollouts by vLLM; ``colocate``: an
    engine inside each training process, sharing its GPU; ``server``: ``trl vllm-serve`` on GPUs
    of its own, reached at ``vllm_server_base_url`` or host:port; docs/scale.md)."""
    out: dict[str, Any] = dict(use_vllm=cfg.use_vllm, vllm_mode=cfg.vllm_mode,
                               vllm_gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
                               vllm_tensor_parallel_size=cfg.vllm_tensor_parallel_size,
                               vllm_enable_sleep_mode=cfg.vllm_enable_sleep_mode,
                               vllm_server_host=cfg.vllm_server_host, vllm_server_port=cfg.vllm_server_port,
                               vllm_server_timeout=cfg.vllm_server_timeout)
    if cfg.vllm_server_base_url:
        out["vllm_server_base_url"] = cfg.vllm_server_base_url
    if cfg.vllm_max_model_length:
        out["vllm_max_model_length"] = cfg.vllm_max_model_length
    return out


def rollout_generate_fn(cfg: GRPORunConfig, tokenizer: Any) -> Callable[..., Any] | None:
    """What samples the pass-rate filter: the rollout backend (``use_vllm``: the vLLM server in
    server mode, a vLLM engine of the start model in colocate mode), else ``None`` (HF generate)."""
    if not cfg.use_vllm:
        return None
    from sqlcoach.generate.vllm_backend import vllm_generate_fn, vllm_server_generate_fn

    if cfg.vllm_mode == "server":
        return vllm_server_generate_fn(tokenizer, base_url=cfg.vllm_server_base_url, host=cfg.vllm_server_host,
                                       port=cfg.vllm_server_port, timeout=cfg.vllm_server_timeout)
    return vllm_generate_fn(cfg.model, gpu_memory_utilization=cfg.vllm_gpu_memory_utilization, release_after=1)


def summary_prompts(done: Any, cfg: GRPORunConfig) -> int:
    """Prompts per optimizer step over all processes (a global batch holds ``num_generations`` completions of each)."""
    a = done.trainer.args
    return int(a.per_device_train_batch_size * a.gradient_accumulation_steps * a.world_size // cfg.num_generations)


def binary_outcomes(recorder: RewardRecorder, n: int) -> list[float]:
    """1.0 / 0.0 per completion of the last batch: its SQL's result equals the gold's or not; NaN
    where the gold cannot be scored. Raises ``ConfigError`` when no reward exposes outcomes."""
    outcomes = recorder.last.get("outcomes")
    if outcomes is None or len(outcomes) != n:
        raise ConfigError("dynamic_sampling needs an execution reward (its outcomes say which completions match the gold)")
    return [float("nan") if not o.gold_ok else float(bool(o.equal)) for o in outcomes]


def uniform_groups(flags: Any, group: int) -> Any:
    """``[N]`` bool tensor: True for the completions of every group (``group`` consecutive rows of
    ``flags``, ``[N]`` of 1/0/NaN) whose scored outcomes are all 1 or all 0 (NaN rows ignored; a
    group with nothing scored counts as uniform: it carries no signal either)."""
    import torch

    g = flags.view(-1, group)  # [N/G, G]
    scored = ~torch.isnan(g)
    ones = (torch.nan_to_num(g, nan=0.0) * scored).sum(dim=1)
    count = scored.sum(dim=1)
    uniform = (ones == 0) | (ones == count)
    return uniform.repeat_interleave(group)  # [N]


def with_dynamic_sampling(trainer_cls: type, recorder: RewardRecorder, group: int) -> type:
    """``trainer_cls`` (TRL's ``GRPOTrainer``) with DAPO's dynamic sampling as a filter: after each
    generation batch is scored, completions of groups whose binary outcome is uniform (all solved,
    or none) get zero advantage and are masked out of the loss and of its token normaliser, and
    ``dynamic_sampling/skipped_frac`` is logged. Departure from DAPO (Yu et al. 2025): DAPO keeps
    sampling until the batch is full of informative groups; here the batch shrinks instead (no
    extra generation, so a step costs what it costs without the filter). Outcomes are gathered
    across processes, since a group may span ranks."""

    class DynamicSamplingGRPOTrainer(trainer_cls):  # type: ignore[misc, valid-type]
        def _generate_and_score_completions(self, inputs: Any) -> dict[str, Any]:
            import torch

            out = super()._generate_and_score_completions(inputs)
            if not self.model.training:
                return out
            adv = out["advantages"]
            local = torch.tensor(binary_outcomes(recorder, adv.shape[0]), device=adv.device)
            everyone = self.accelerator.gather(local)  # [N], groups contiguous as in TRL's advantages
            skip_all = uniform_groups(everyone, group)
            i = self.accelerator.process_index
            skip = skip_all[i * adv.shape[0]:(i + 1) * adv.shape[0]]
            out["advantages"] = torch.where(skip, torch.zeros_like(adv), adv)
            out["completion_mask"] = out["completion_mask"] * (~skip).unsqueeze(1).to(out["completion_mask"].dtype)
            if "num_items_in_batch" in out:
                out["num_items_in_batch"] = self.accelerator.gather(out["completion_mask"].sum()).sum()
            self._metrics["train"]["dynamic_sampling/skipped_frac"].append(skip_all.float().mean().item())
            return out

    return DynamicSamplingGRPOTrainer


def _grpo_args(cfg: GRPORunConfig, model: Any) -> Any:
    from trl import GRPOConfig

    return GRPOConfig(
        **trainer_kwargs(cfg, **precision_flags(model)),
        # GRPO
        num_generations=cfg.num_generations,
        loss_type=cfg.loss_type,
        beta=cfg.beta,
        epsilon=cfg.epsilon,
        epsilon_high=cfg.epsilon_high,
        scale_rewards=cfg.scale_rewards,
        num_iterations=cfg.num_iterations,
        mask_truncated_completions=cfg.mask_truncated_completions,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        max_completion_length=cfg.max_completion_length,
        generation_kwargs={"use_cache": True},  # checkpoints saved for training may say use_cache=false
        **vllm_args(cfg),
        log_completions=False,  # sqlcoach's own sample log (samples.jsonl) instead of rich tables
    )


def _curves(history: list[dict[str, Any]], names: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(reward_curve, zero_std_frac_curve) from TRL's log history."""
    reward_curve, zero_curve = [], []
    for h in history:
        if "reward" not in h or "step" not in h:
            continue
        point: dict[str, Any] = {"step": h["step"], "reward": h["reward"]}
        for name in names:
            point[name] = h.get(f"rewards/{name}/mean")
            if f"{name}/ex" in h:
                point[f"{name}/ex"] = h[f"{name}/ex"]
        reward_curve.append(point)
        if "frac_reward_zero_std" in h:
            zero_curve.append({"step": h["step"], "frac": h["frac_reward_zero_std"],
                               **({"skipped": h["dynamic_sampling/skipped_frac"]} if "dynamic_sampling/skipped_frac" in h else {})})
    return reward_curve, zero_curve


def _prompt_rows(cfg: GRPORunConfig, model: Any, tokenizer: Any, examples: list[Any] | None,
                 rows: list[dict[str, Any]] | None, pool: Any, log: Callable[[str], None]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """RL rows (built from shuffled examples unless given), gold curation, the pass-rate filter;
    returns ``(rows, curation report)``."""
    build_report: dict[str, Any] = {}
    if rows is None:
        if examples is None:
            from sqlcoach.data import load_examples

            examples = load_examples(cfg.data_kind, cfg.data_path, cfg.split)
        examples = list(examples)
        random.Random(cfg.seed).shuffle(examples)
        if cfg.max_examples is not None:
            examples = examples[: cfg.max_examples]
        rows = build_rl_rows(examples, prompt=PromptSettings.of(cfg), log=log)
        build_report = {"examples": len(examples), "rows": len(rows)}
    elif cfg.max_examples is not None:
        rows = rows[: cfg.max_examples]
    gold_report = pass_report = None
    if cfg.curate_gold:
        rows, gold_report = curate_gold(rows, pool=pool)
        log(f"gold curation: kept {gold_report['kept']} of {gold_report['in']} prompts; dropped {gold_report['dropped']}")
    if cfg.pass_rate_k:
        head = rows if cfg.pass_rate_max_prompts is None else rows[: cfg.pass_rate_max_prompts]
        # each rank samples its share of the prompts (rows[r::N]) and the pass rates are gathered
        rows, pass_report = sharded_pass_rate_filter(
            head, model=model, tokenizer=tokenizer, generate=rollout_generate_fn(cfg, tokenizer), k=cfg.pass_rate_k,
            drop_always=cfg.drop_always, drop_never=cfg.drop_never, temperature=cfg.temperature, max_new_tokens=cfg.max_completion_length,
            seed=cfg.seed, pool=pool,
        )
        log(
            f"pass-rate filter (k={cfg.pass_rate_k}, {pass_report['seconds']} s): kept {pass_report['kept']} of "
            f"{pass_report['in']}; dropped {pass_report['dropped_always']} always solved, "
            f"{pass_report['dropped_never']} never solved; mean pass rate {pass_report['mean_pass_rate']}"
        )
        pass_report = {k: v for k, v in pass_report.items() if k != "pass_rates"}
    if not rows:
        raise DataError("no RL prompt left after curation (see the curation log lines)", path=cfg.data_path)
    return rows, {"build": build_report, "gold": gold_report, "pass_rate": pass_report}


def _rewards(cfg: GRPORunConfig, pool: Any, extra: list[Callable[..., Any]] | None) -> list[Callable[..., Any]]:
    from sqlcoach.rewards import build_rewards

    rewards = build_rewards(cfg.rewards, pool=pool, **dict(cfg.reward_options)) + list(extra or [])
    names = [r.__name__ for r in rewards]
    if len(set(names)) != len(names):
        raise ConfigError(f"reward names must be distinct (TRL logs each by name), got {names}")
    if cfg.dynamic_sampling and not any(hasattr(r, "last_outcomes") for r in rewards):
        raise ConfigError(f"dynamic_sampling filters on the execution outcome, but none of the rewards {names} executes SQL "
                          "(add 'execution' or a preset that has it)")
    return rewards


def run_grpo(
    cfg: GRPORunConfig,
    *,
    resume: bool = False,
    examples: list[Any] | None = None,
    rows: list[dict[str, Any]] | None = None,
    callbacks: list[Any] | None = None,
    extra_rewards: list[Callable[..., Any]] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train as ``cfg`` says; returns the summary dict (``train.run.RunSummary``, also in
    ``output_dir/summary.json``) with these details: ``tokens_generated``, ``rewards`` (names),
    ``curation`` (``build``, ``gold``, ``pass_rate`` reports), ``reward_curve`` (``[{step, reward,
    <component>: mean, <exec>/ex: ...}]``), ``zero_std_frac_curve`` (``[{step, frac}]``),
    ``final_reward``, ``samples_path``.

    ``examples`` replaces the data loading; ``rows`` (ready RL rows, e.g. from ``build_rl_rows``)
    replaces loading and prompt building (curation still applies); ``callbacks`` are extra
    ``TrainerCallback``s; ``extra_rewards`` are reward callables of your own (TRL's contract, a
    distinct ``__name__`` each) added after the configured ones. With ``resume=True`` training
    continues from the last checkpoint in ``output_dir`` (the wall-clock budget continues too)."""
    from datasets import Dataset
    from trl import GRPOTrainer

    from sqlcoach.execution.pool import ExecutorPool
    from sqlcoach.execution.sandbox import Limits
    from sqlcoach.models.load import is_adapter
    from sqlcoach.rewards import close_rewards
    from sqlcoach.runtime.dist import ensure_group, gather_objects
    from sqlcoach.runtime.plots import plot_rewards

    t0 = time.monotonic()
    log = main_log(log)  # every rank trains; rank 0 alone prints and writes the bookkeeping
    ensure_group(cfg.use_cpu)  # torchrun: join the process group now (the pass-rate filter gathers over it)
    cfg, _ = with_model_prompt(cfg, log)
    samples = SampleLog(cfg.output_dir, every=cfg.sample_log_every, n=cfg.num_examine, log=log, fresh=not resume)
    model, tokenizer, device = load_policy(cfg, padding_side="left", why="GRPO samples from chat-formatted prompts")
    # TRL's GenerationConfig leaves many fields None, and transformers fills None fields from the
    # model's own generation_config (a checkpoint's no_repeat_ngram_size, bad words, ...): make
    # that config neutral, so the rollouts sample from softmax(logits / T) with TRL's top_p/top_k.
    from sqlcoach.generate.hf import decoding_config

    model.generation_config = decoding_config(model, tokenizer, do_sample=False, max_new_tokens=cfg.max_completion_length)
    peft_config = lora_config(cfg) if cfg.method == "lora" else None
    pool = ExecutorPool(workers=cfg.reward_workers, limits=Limits(timeout=cfg.reward_timeout))
    rewards: list[Any] = []
    try:
        rows, curation = _prompt_rows(cfg, model, tokenizer, examples, rows, pool, log)
        model.train()
        # one executor pool for every reward call; the recorder keeps the last batch for the sample log
        rewards = _rewards(cfg, pool, extra_rewards)
        names = [r.__name__ for r in rewards]
        recorder = RewardRecorder(rewards)
        log(f"rewards: {names}; {len(rows)} prompts; G={cfg.num_generations}")
        args = _grpo_args(cfg, model)

        trainer_cls = with_dynamic_sampling(GRPOTrainer, recorder, cfg.num_generations) if cfg.dynamic_sampling else GRPOTrainer

        def make_trainer(cbs: list[Any]) -> Any:
            return trainer_cls(model=model, reward_funcs=recorder.wrapped, args=args, train_dataset=Dataset.from_list(rows),
                               processing_class=tokenizer, peft_config=peft_config, callbacks=cbs)

        shown = sample_log_callback(samples, lambda: recorder.sample_rows(cfg.num_examine, cfg.num_generations))
        done = fit(cfg, make_trainer, resume=resume, callbacks=[shown, *(callbacks or [])], log=log)
    finally:
        close_rewards(rewards)
        pool.close()

    # A LoRA trained on top of a merged start adapter must be saved merged: an adapter file would name
    # the start adapter's base and lose the start's own weights.
    merge = cfg.method == "lora" and (cfg.merge_lora or is_adapter(cfg.model))
    final = save_final(done.trainer, tokenizer, cfg.output_dir, merge=merge,
                       recipe=model_recipe(cfg, "grpo", max_new_tokens=cfg.max_completion_length))
    reward_curve, zero_curve = _curves(list(done.trainer.state.log_history), names)
    png = on_main(lambda: plot_rewards(reward_curve, Path(cfg.output_dir) / "reward.png",
                                       title=f"GRPO ({cfg.method}, G={cfg.num_generations}) reward"))
    tokens = sum(gather_objects(int(recorder.tokens_generated)))  # each rank counted its own completions
    summary = RunSummary.of_fit("grpo", done, final=final, t0=t0, rows=len(rows), skipped=0, device=device, plot=png, details={
        "tokens_generated": tokens, "rewards": names, "prompts_per_step": summary_prompts(done, cfg), "curation": curation,
        "reward_curve": reward_curve, "zero_std_frac_curve": zero_curve,
        "final_reward": reward_curve[-1]["reward"] if reward_curve else None, "samples_path": samples.written,
    })
    return write_summary(cfg, summary)
