"""What sqlcoach's RL recipes cost per step against plain TRL, and PPO against GRPO.

    OMP_NUM_THREADS=1 python benchmarks/step_overhead.py --model runs/compare-converged/start/sft/final \\
        --world runs/compare-converged/start/world [--steps 6] [--repeats 3] [--out runs/step-overhead]

Five runs (``--only-grpo``: A and B), interleaved ``--repeats`` times, each repeat starting one
run later (A B C D E, B C D E A, ...) so that a change in the machine's load hits all of them alike
and no run always goes first:

A. sqlcoach GRPO (``run_grpo``: reward recorder, sample log, wall-clock and step-timer callbacks,
   neutral generation config) for ``--steps`` optimizer steps; ``beta`` 0 (no reference model);
B. plain TRL ``GRPOTrainer`` on the same model, the same prompt rows, the same reward
   (sqlcoach's ``execution_binary``; TRL has no SQL reward), the same ``GRPOConfig`` and the same
   neutral generation config, timed by the same step-timer callback and nothing else. TRL's
   ``GRPOConfig`` turns activation checkpointing on by default; sqlcoach's recipe turns it off
   unless asked, so B turns it off too (otherwise B recomputes every forward and the ratio
   measures checkpointing, not bookkeeping);
C. sqlcoach PPO (``run_ppo``) with a rollout of the same size as one GRPO step (8 prompts x G=8 =
   64 completions; PPO draws one completion per prompt, so 64 prompts), the same forward
   micro-batch (8) and completion length, one pass over the rollout (as GRPO's one update per
   generation batch) and ``kl_coef`` 0 (no reference model, as A's ``beta`` 0);
D. the same with the KL penalty (``kl_coef`` 0.05: a reference forward per rollout);
E. D with two passes (``ppo_epochs: 2``, the demo's PPO config).

Every run: full fine-tuning, fp32 on CPU, forward micro-batches of 8 sequences, 64 completions per
step, ``max_completion_length`` 64, no pass-rate filter or gold curation (those run before the
steps and are not what is timed). Prints one JSON object: median seconds per step of each run over all its timed
steps, A/B (target <= 1.05) and C/A (target <= 1.5; D/A and E/A beside it), the per-repeat medians, and the mean reward of
A and B (equal work: the same seed gives the same completions, so these match when nothing but
bookkeeping differs). A and B are timed by the same step-timer callback (A gets it as an extra
callback), which also records the training thread's CPU seconds per step: on a shared machine
``sqlcoach_over_plain_trl_cpu`` (and ``_paired``, the median of the per-repeat ratios) are the
steadier figures, since the wall clock also measures the other tenants.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

COMMON = dict(num_generations=8, max_completion_length=64, temperature=0.8, learning_rate=1e-5,
              per_device_train_batch_size=8, gradient_accumulation_steps=8, seed=0)


def _rows(world: str, n: int) -> list:
    from sqlcoach.data import load_examples
    from sqlcoach.prompts.settings import PromptSettings
    from sqlcoach.train.rl_data import build_rl_rows

    examples = load_examples("spider", world, "train")[:n]
    return build_rl_rows(examples, prompt=PromptSettings.of(template="anonymized", schema_style="compact", schema_sample_values=0))


def run_sqlcoach_grpo(model: str, rows: list, out: Path, steps: int) -> dict:
    from sqlcoach.config import GRPORunConfig, build_config
    from sqlcoach.train.callbacks import step_timer
    from sqlcoach.train.grpo import run_grpo

    cfg = build_config(GRPORunConfig, dict(
        model=model, data_path="(rows)", output_dir=str(out), method="full", rewards="execution_binary",
        curate_gold=False, pass_rate_k=0, max_steps=steps, save_steps=10_000, logging_steps=1, sample_every=10_000,
        use_cpu=True, dtype="float32", disable_tqdm=True, reward_workers=1, lr_scheduler_type="constant",
        warmup_ratio=0.0, loss_type="dapo", beta=0.0, scale_rewards="none", template="anonymized",
        schema_style="compact", schema_sample_values=0, **COMMON))
    timer = step_timer()  # the same timer as B's, passed as an extra callback (run_grpo keeps its own too)
    run_grpo(cfg, rows=rows, callbacks=[timer], log=lambda m: None)
    hist = json.loads((out / "log_history.json").read_text())
    return {"median": statistics.median(timer.seconds), "cpu": statistics.median(timer.cpu_seconds),
            "reward": statistics.mean(h["reward"] for h in hist if "reward" in h)}


def run_plain_trl(model_dir: str, rows: list, out: Path, steps: int) -> dict:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from sqlcoach.execution.pool import ExecutorPool
    from sqlcoach.generate.hf import decoding_config
    from sqlcoach.models.load import load_model
    from sqlcoach.rewards import build_rewards
    from sqlcoach.train.callbacks import step_timer
    from sqlcoach.train.run import _checkpointing_field

    model, tok = load_model(model_dir, device="cpu", dtype="float32")
    tok.padding_side = "left"
    model.generation_config = decoding_config(model, tok, do_sample=False, max_new_tokens=COMMON["max_completion_length"])
    pool = ExecutorPool(workers=1)
    try:
        rewards = build_rewards("execution_binary", pool=pool)
        c = dict(COMMON)
        args = GRPOConfig(output_dir=str(out), max_steps=steps, save_steps=10_000, logging_steps=1, use_cpu=True,
                          bf16=False, report_to="none", disable_tqdm=True, lr_scheduler_type="constant", warmup_steps=0, data_seed=0,
                          loss_type="dapo", beta=0.0, scale_rewards="none", epsilon_high=0.2,
                          generation_kwargs={"use_cache": True}, log_completions=False,
                          **_checkpointing_field(False), **c)
        timer = step_timer()
        trainer = GRPOTrainer(model=model, reward_funcs=rewards, args=args, train_dataset=Dataset.from_list(rows),
                              processing_class=tok, callbacks=[timer])
        trainer.train()
    finally:
        pool.close()
    hist = trainer.state.log_history
    return {"median": statistics.median(timer.seconds), "cpu": statistics.median(timer.cpu_seconds),
            "reward": statistics.mean(h["reward"] for h in hist if "reward" in h)}


def run_sqlcoach_ppo(model: str, world: str, out: Path, steps: int, epochs: int = 1, kl_coef: float = 0.0) -> dict:
    from sqlcoach.config import PPORunConfig, build_config
    from sqlcoach.train.ppo import run_ppo

    cfg = build_config(PPORunConfig, dict(
        model=model, data_path=world, output_dir=str(out), method="full", rewards=["execution"], rollout_batch_size=64,
        per_device_train_batch_size=8, gradient_accumulation_steps=1, ppo_epochs=epochs, max_completion_length=64, temperature=0.8,
        max_steps=steps, save_steps=10_000, logging_steps=1, use_cpu=True, dtype="float32", template="anonymized",
        schema_style="compact", schema_sample_values=0, reward_workers=1, seed=0, learning_rate=1e-5,
        kl_coef=kl_coef))
    s = run_ppo(cfg, log=lambda m: None)
    return {"median": s["median_step_seconds"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--world", required=True)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="runs/step-overhead")
    ap.add_argument("--only-grpo", action="store_true", help="runs A and B only (the sqlcoach/TRL ratio), not the PPO runs")
    a = ap.parse_args()
    out = Path(a.out)
    rows = _rows(a.world, 64)
    runs = {
        "sqlcoach_grpo": lambda r: run_sqlcoach_grpo(a.model, rows, out / f"a{r}", a.steps),
        "plain_trl_grpo": lambda r: run_plain_trl(a.model, rows, out / f"b{r}", a.steps),
        "sqlcoach_ppo": lambda r: run_sqlcoach_ppo(a.model, a.world, out / f"c{r}", a.steps),
        "sqlcoach_ppo_kl": lambda r: run_sqlcoach_ppo(a.model, a.world, out / f"d{r}", a.steps, kl_coef=0.05),
        "sqlcoach_ppo_kl_2_epochs": lambda r: run_sqlcoach_ppo(a.model, a.world, out / f"e{r}", a.steps, epochs=2, kl_coef=0.05),
    }
    if a.only_grpo:
        runs = {k: v for k, v in runs.items() if k.endswith("grpo")}
    res: dict[str, list[dict]] = {k: [] for k in runs}
    names = list(runs)
    t0 = time.monotonic()
    for r in range(a.repeats):
        # each repeat starts one run later (A B C D E, B C D E A, ...): no run always goes first
        for k in names[r % len(names):] + names[:r % len(names)]:
            res[k].append(runs[k](r))
        print(f"repeat {r}: " + ", ".join(f"{k} {v[-1]['median']:.3f} s/step" for k, v in res.items()), flush=True)
    med = {k: statistics.median(x["median"] for x in v) for k, v in res.items()}
    report = {
        "steps_per_run": a.steps, "repeats": a.repeats, "seconds": round(time.monotonic() - t0, 1),
        "median_s_per_step": {k: round(v, 3) for k, v in med.items()},
        "per_repeat": {k: [round(x["median"], 3) for x in v] for k, v in res.items()},
        "sqlcoach_over_plain_trl": round(med["sqlcoach_grpo"] / med["plain_trl_grpo"], 3), "target_sqlcoach_over_trl": 1.05,
        # the same ratio within each repeat (the two runs a minute apart), then its median: steadier under changing load
        "sqlcoach_over_plain_trl_paired": round(statistics.median(
            x["median"] / y["median"] for x, y in zip(res["sqlcoach_grpo"], res["plain_trl_grpo"])), 3),
        # CPU seconds of the training thread per step (median): the work itself, whatever the load
        "cpu_s_per_step": {k: round(statistics.median(x["cpu"] for x in res[k]), 3) for k in ("sqlcoach_grpo", "plain_trl_grpo")},
        "cpu_per_repeat": {k: [round(x["cpu"], 3) for x in res[k]] for k in ("sqlcoach_grpo", "plain_trl_grpo")},
        "sqlcoach_over_plain_trl_cpu": round(statistics.median(x["cpu"] for x in res["sqlcoach_grpo"])
                                             / statistics.median(x["cpu"] for x in res["plain_trl_grpo"]), 3),
        "mean_reward": {k: [round(x["reward"], 4) for x in res[k]] for k in ("sqlcoach_grpo", "plain_trl_grpo")},
        "machine": {"cpu_count": os.cpu_count(), "omp_threads": os.environ.get("OMP_NUM_THREADS"),
                    "load_average_at_end": round(os.getloadavg()[0], 2)},
    }
    if not a.only_grpo:
        report.update({
            "ppo_over_grpo": round(med["sqlcoach_ppo"] / med["sqlcoach_grpo"], 3), "target_ppo_over_grpo": 1.5,
            "ppo_kl_over_grpo": round(med["sqlcoach_ppo_kl"] / med["sqlcoach_grpo"], 3),
            "ppo_kl_2_epochs_over_grpo": round(med["sqlcoach_ppo_kl_2_epochs"] / med["sqlcoach_grpo"], 3),
        })
    out.mkdir(parents=True, exist_ok=True)
    (out / "step_overhead.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
