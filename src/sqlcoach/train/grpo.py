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
4. ``GRPOConfig`` + ``GRPOTrainer`` (LoRA through ``peft_config``), callbacks: wall-clock budget
   (``train.common.clock_callback``, also written into checkpoints for ``--resume``) and
   ``_StepLog`` (step times; every ``sample_log_every`` steps ``num_examine`` rows of question,
   SQL, execution result, rewards printed and appended to ``output_dir/samples.jsonl``);
5. train under ``bench.memory.track_peak``; save ``output_dir/final`` (full model, or the adapter,
   or with ``merge_lora`` the merged model), ``log_history.json``, ``reward.png`` and
   ``summary.json``; close the executor pool.

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

import json
import random
import statistics
import time
from pathlib import Path
from typing import Any, Callable

from sqlcoach.errors import ConfigError, DataError
from sqlcoach.train.common import clock_callback, config_to_dict, lora_config, read_clock, trainer_kwargs
from sqlcoach.train.grpo_config import GRPORunConfig
from sqlcoach.train.rl_data import build_rl_rows, curate_gold, pass_rate_filter
from sqlcoach.train.sft import last_checkpoint

SUMMARY_FILE = "summary.json"
SAMPLES_FILE = "samples.jsonl"


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


def _step_log(cfg: GRPORunConfig, recorder: RewardRecorder, log: Callable[[str], None]) -> Any:
    """A ``TrainerCallback``: step durations, and the sample rows every ``sample_log_every`` steps."""
    from transformers import TrainerCallback

    samples_path = Path(cfg.output_dir) / SAMPLES_FILE

    class _StepLog(TrainerCallback):
        def __init__(self) -> None:
            self.step_seconds: list[float] = []
            self._t: float | None = None

        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
            self._t = time.monotonic()
            return control

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
            if self._t is not None:
                self.step_seconds.append(time.monotonic() - self._t)
            step = state.global_step
            if cfg.num_examine and (step == 1 or step % cfg.sample_log_every == 0):
                rows = recorder.sample_rows(cfg.num_examine, cfg.num_generations)
                if rows:
                    samples_path.parent.mkdir(parents=True, exist_ok=True)
                    with samples_path.open("a", encoding="utf-8") as fh:
                        for r in rows:
                            fh.write(json.dumps({"step": step, **r}, ensure_ascii=False) + "\n")
                    log(f"--- step {step}: {len(rows)} sampled completions")
                    for r in rows:
                        log(f"  Q [{r['db_id']}] {r['question']}")
                        log(f"    SQL    {r['sql']!s:.200}")
                        log(f"    result {r['result']}   reward {r['reward']}  {r['rewards']}")
            return control

    return _StepLog()


def _load_policy(cfg: GRPORunConfig) -> tuple[Any, Any, Any]:
    """(model, tokenizer, peft_config or None); an adapter folder as ``model`` is merged into its base."""
    from sqlcoach.models.load import load_model

    device = "cpu" if cfg.use_cpu else "auto"
    model, tokenizer = load_model(cfg.model, dtype=cfg.dtype, device=device, merge=True, padding_side="left")
    if tokenizer.chat_template is None:
        raise ConfigError(
            f"{cfg.model}: the tokenizer has no chat template; GRPO samples from chat-formatted prompts "
            "(use an instruct checkpoint, an SFT run's final/, or a model from `sqlcoach model init`)"
        )
    peft_config = None
    if cfg.method == "lora":
        peft_config = lora_config(cfg)
    return model, tokenizer, peft_config


def _grpo_args(cfg: GRPORunConfig, bf16: bool, fp16: bool) -> Any:
    from trl import GRPOConfig

    return GRPOConfig(
        **trainer_kwargs(cfg, bf16=bf16, fp16=fp16),
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
        use_vllm=cfg.use_vllm,
        vllm_mode=cfg.vllm_mode,
        vllm_gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
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
            zero_curve.append({"step": h["step"], "frac": h["frac_reward_zero_std"]})
    return reward_curve, zero_curve


def plot_rewards(reward_curve: list[dict[str, Any]], out_png: str | Path, *, title: str = "GRPO reward") -> Path | None:
    """Total reward and each component against step; ``None`` when there is nothing to draw."""
    if not reward_curve:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [p["step"] for p in reward_curve]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    keys = [k for k in reward_curve[0] if k != "step"]
    for key in keys:
        ys = [p.get(key) for p in reward_curve]
        if all(y is None for y in ys):
            continue
        ax.plot(steps, [float("nan") if y is None else y for y in ys], label=key, lw=1.8 if key == "reward" else 1.0)
    ax.set_xlabel("step")
    ax.set_ylabel("mean reward")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


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
    """Train as ``cfg`` says; returns the summary dict (also written to ``output_dir/summary.json``).

    Summary keys: ``final_dir``, ``global_step``, ``max_steps``, ``seconds`` (whole call),
    ``train_seconds``, ``median_step_seconds``, ``peak_memory_mb`` (this process's RSS, sampled;
    executor workers not counted), ``peak_cuda_mb``, ``tokens_generated``, ``prompts`` (after
    curation), ``curation`` (``build``, ``gold``, ``pass_rate`` reports), ``reward_curve``
    (``[{step, reward, <component>: mean, <exec>/ex: ...}]``), ``zero_std_frac_curve``
    (``[{step, frac}]``), ``final_reward``, ``stopped_by_clock``, ``resumed_from``,
    ``reward_png``, ``samples_path``.

    ``examples`` replaces the data loading; ``rows`` (ready RL rows, e.g. from ``build_rl_rows``)
    replaces loading and prompt building (curation still applies); ``callbacks`` are extra
    ``TrainerCallback``s; ``extra_rewards`` are reward callables of your own (TRL's contract, a
    distinct ``__name__`` each) added after the configured ones. With ``resume=True`` training continues from the last checkpoint in
    ``output_dir`` (the wall-clock budget continues too)."""
    import torch

    from sqlcoach.bench.memory import track_peak
    from sqlcoach.execution.pool import ExecutorPool
    from sqlcoach.execution.sandbox import Limits
    from sqlcoach.rewards import build_rewards, close_rewards

    t0 = time.monotonic()
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not resume and (out / SAMPLES_FILE).is_file():
        (out / SAMPLES_FILE).unlink()  # a fresh run starts a fresh sample log; --resume appends

    # 1. policy
    model, tokenizer, peft_config = _load_policy(cfg)

    # 2. prompts
    build_report: dict[str, Any] = {}
    if rows is None:
        if examples is None:
            from sqlcoach.data import load_examples

            examples = load_examples(cfg.data_kind, cfg.data_path, cfg.split)
        examples = list(examples)
        random.Random(cfg.seed).shuffle(examples)
        if cfg.max_examples is not None:
            examples = examples[: cfg.max_examples]
        skipped: list[str] = []
        rows = build_rl_rows(
            examples, template=cfg.template, schema_style=cfg.schema_style,
            schema_sample_values=cfg.schema_sample_values, log=skipped.append,
        )
        for s in skipped:
            log(s)
        build_report = {"examples": len(examples), "rows": len(rows)}
    elif cfg.max_examples is not None:
        rows = rows[: cfg.max_examples]
    pool = ExecutorPool(workers=cfg.reward_workers, limits=Limits(timeout=cfg.reward_timeout))
    rewards: list[Any] = []
    try:
        gold_report = None
        if cfg.curate_gold:
            rows, gold_report = curate_gold(rows, pool=pool)
            log(f"gold curation: kept {gold_report['kept']} of {gold_report['in']} prompts; dropped {gold_report['dropped']}")
        pass_report = None
        if cfg.pass_rate_k:
            head = rows if cfg.pass_rate_max_prompts is None else rows[: cfg.pass_rate_max_prompts]
            kept, pass_report = pass_rate_filter(
                head, model=model, tokenizer=tokenizer, k=cfg.pass_rate_k, drop_always=cfg.drop_always,
                drop_never=cfg.drop_never, temperature=cfg.temperature, max_new_tokens=cfg.max_completion_length,
                seed=cfg.seed, pool=pool,
            )
            rows = kept
            log(
                f"pass-rate filter (k={cfg.pass_rate_k}, {pass_report['seconds']} s): kept {pass_report['kept']} of "
                f"{pass_report['in']}; dropped {pass_report['dropped_always']} always solved, "
                f"{pass_report['dropped_never']} never solved; mean pass rate {pass_report['mean_pass_rate']}"
            )
            pass_report = {k: v for k, v in pass_report.items() if k != "pass_rates"}
        if not rows:
            raise DataError("no RL prompt left after curation (see the curation log lines)", path=cfg.data_path)
        model.train()

        # 3. rewards: one executor pool for every reward call; the recorder keeps the last batch
        rewards = build_rewards(cfg.rewards, pool=pool, **dict(cfg.reward_options)) + list(extra_rewards or [])
        names = [r.__name__ for r in rewards]
        if len(set(names)) != len(names):
            raise ConfigError(f"reward names must be distinct (TRL logs each by name), got {names}")
        recorder = RewardRecorder(rewards)
        log(f"rewards: {[r.__name__ for r in rewards]}; {len(rows)} prompts; G={cfg.num_generations}")

        # 4. trainer
        from datasets import Dataset
        from trl import GRPOTrainer

        dtype = next(model.parameters()).dtype
        args = _grpo_args(cfg, dtype == torch.bfloat16, dtype == torch.float16)
        ckpt = last_checkpoint(cfg.output_dir) if resume else None
        clock = clock_callback(cfg.max_seconds, already=read_clock(ckpt))
        steps = _step_log(cfg, recorder, log)
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=recorder.wrapped,
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=[clock, steps, *(callbacks or [])],
        )
        clock.bind(trainer)
        if resume and ckpt is None:
            log(f"--resume: no checkpoint in {cfg.output_dir}; starting from step 0")
        elif ckpt is not None:
            log(f"resuming from {ckpt}")

        # 5. train, save
        t_train = time.monotonic()
        with track_peak() as peak:
            trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
        train_seconds = time.monotonic() - t_train
    finally:
        close_rewards(rewards)
        pool.close()

    final = out / "final"
    if cfg.method == "lora" and cfg.merge_lora:
        merged = trainer.model.merge_and_unload()
        merged.save_pretrained(str(final))
    else:
        trainer.save_model(str(final))
    tokenizer.save_pretrained(str(final))
    history = list(trainer.state.log_history)
    (out / "log_history.json").write_text(json.dumps(history, indent=1) + "\n")
    reward_curve, zero_curve = _curves(history, names)
    png = plot_rewards(reward_curve, out / "reward.png", title=f"GRPO ({cfg.method}, G={cfg.num_generations}) reward")
    samples = out / SAMPLES_FILE
    summary = {
        "final_dir": str(final),
        "global_step": int(trainer.state.global_step),
        "max_steps": int(trainer.state.max_steps),
        "seconds": round(time.monotonic() - t0, 2),
        "train_seconds": round(train_seconds, 2),
        "median_step_seconds": round(statistics.median(steps.step_seconds), 3) if steps.step_seconds else None,
        "peak_memory_mb": round(peak.rss_mb, 1),
        "peak_cuda_mb": None if peak.cuda_mb is None else round(peak.cuda_mb, 1),
        "tokens_generated": int(recorder.tokens_generated),
        "prompts": len(rows),
        "rewards": names,
        "curation": {"build": build_report, "gold": gold_report, "pass_rate": pass_report},
        "reward_curve": reward_curve,
        "zero_std_frac_curve": zero_curve,
        "final_reward": reward_curve[-1]["reward"] if reward_curve else None,
        "stopped_by_clock": clock.stopped_at is not None,
        "resumed_from": str(ckpt) if ckpt else None,
        "reward_png": str(png) if png else None,
        "samples_path": str(samples) if samples.is_file() else None,
    }
    (out / SUMMARY_FILE).write_text(json.dumps({"config": config_to_dict(cfg), "summary": summary}, indent=2) + "\n")
    return summary
