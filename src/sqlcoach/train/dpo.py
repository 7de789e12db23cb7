"""Direct Preference Optimisation on execution-mined pairs (TRL's ``DPOTrainer``), full or LoRA.

Run it: ``sqlcoach train dpo --config configs/dpo/demo.yaml [key=value ...] [--resume]``
(pairs from ``sqlcoach pairs mine``).

Reads top to bottom: (1) preference rows (conversational ``prompt``/``chosen``/``rejected``),
(2) policy and tokenizer, and the reference: LoRA -> the same network with adapters disabled (no
second copy); full -> a frozen deep copy of the starting weights (or none with
``precompute_ref_log_probs``: TRL computes reference log-probs once, before training), (3)
``DPOConfig`` (any TRL 1.16 ``loss_type``: sigmoid, ipo, hinge, robust, ...), (4) train with the
wall-clock budget and checkpoints (``--resume`` continues from the last one), (5) save
``output_dir/final`` (model or adapter + tokenizer; merged when the start was itself an adapter), ``log_history.json``, ``dpo.png`` (loss and
reward margin per logged step) and ``summary.json`` (config + summary: ``train.run.RunSummary``).

Iterative DPO (``rounds`` > 1; the online variants of Xu et al. 2023 "Some things are more
CRINGE than others" / Xiong et al. 2024 "Iterative preference learning"): each round samples
``mine_k`` answers from the *current* policy on ``mine_limit`` questions not used before, executes
them, mines pairs (``train.pairs.mine_pairs``), and trains DPO on them with the reference reset to
the policy the round started from (LoRA: merged after each round, so "adapters disabled" is that
policy). The budget (``max_steps`` or ``max_seconds``) is shared by the rounds; with
``max_seconds`` mining time counts against it. ``--resume`` and several processes are not
supported for rounds > 1.

Departures from the DPO paper (Rafailov et al., 2023): the preference data is not human labelled
but mined by executing the policy's own samples (``sqlcoach.train.pairs``), and the chosen answer
falls back to the gold SQL when no sample is correct (off-policy for those pairs). The reference
is the starting checkpoint itself (no separate SFT-on-chosen stage). Prompts longer than
``max_length`` are truncated by TRL from the end of the whole sequence (``keep_start``), so a
very long schema can cut the answer: keep prompts short (compact schema) or raise ``max_length``.
"""

from __future__ import annotations

import dataclasses
import random
import time
from pathlib import Path
from typing import Any

from sqlcoach.config import DPORunConfig
from sqlcoach.errors import ConfigError
from sqlcoach.train.pairs import PREF_COLUMNS, mine_pairs, pair_rows, write_pairs
from sqlcoach.train.run import (
    RunSummary,
    fit,
    load_policy,
    lora_config,
    lora_over_adapter_start,
    main_log,
    model_recipe,
    on_main,
    preference_args,
    save_final,
    write_summary,
)


def _reference(cfg: DPORunConfig, model: Any) -> tuple[Any, Any]:
    """(peft_config, ref_model): LoRA -> adapters disabled are the reference; full -> a frozen
    deep copy of the starting weights, or none with ``precompute_ref_log_probs``."""
    import copy

    if cfg.method == "lora":
        return lora_config(cfg, "CAUSAL_LM"), None
    if cfg.precompute_ref_log_probs:
        return None, None
    ref_model = copy.deepcopy(model).eval()
    for p in ref_model.parameters():
        p.requires_grad_(False)
    return None, ref_model


def run_dpo(
    cfg: DPORunConfig,
    *,
    resume: bool = False,
    rows: list[dict[str, Any]] | None = None,
    eval_rows: list[dict[str, Any]] | None = None,
    callbacks: list[Any] | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """Train as ``cfg`` says; returns the summary dict (``train.run.RunSummary``, also in
    ``output_dir/summary.json``) with the details ``last_metrics`` (the last logged ``rewards/*``
    values) and ``eval`` (TRL's eval metrics on ``eval_pairs_path``, when given). ``rows`` /
    ``eval_rows`` replace reading the pairs files (tests)."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from sqlcoach.runtime.plots import plot_preference

    if cfg.rounds > 1:
        return run_iterative_dpo(cfg, resume=resume, callbacks=callbacks, log=log)
    t0 = time.monotonic()
    log = main_log(log)  # every rank trains; rank 0 alone prints and writes the bookkeeping
    rows, eval_rows = pair_rows(cfg, rows, eval_rows)
    model, tokenizer, device = load_policy(cfg, padding_side="right", why="mined pairs are chat-formatted")
    peft_config, ref_model = _reference(cfg, model)
    model.train()
    args = preference_args(
        cfg, DPOConfig, model, loss_type=list(cfg.loss_type), loss_weights=cfg.loss_weights, beta=cfg.beta,
        label_smoothing=cfg.label_smoothing, precompute_ref_log_probs=cfg.precompute_ref_log_probs, eval_strategy="no",
    )

    def make_trainer(cbs: list[Any]) -> Any:
        return DPOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=Dataset.from_list(rows),
                          eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None, processing_class=tokenizer,
                          peft_config=peft_config, callbacks=cbs)

    log(f"DPO ({cfg.method}, loss {'+'.join(cfg.loss_type)}, beta {cfg.beta}) on {len(rows)} pairs; sample pair:\n"
        f"  chosen:   {_text(rows[0]['chosen'])[:160]!r}\n  rejected: {_text(rows[0]['rejected'])[:160]!r}")
    done = fit(cfg, make_trainer, resume=resume, callbacks=callbacks, log=log,
               after=(lambda t: t.evaluate()) if eval_rows else None)
    final = save_final(done.trainer, tokenizer, cfg.output_dir, merge=lora_over_adapter_start(cfg),
                       recipe=model_recipe(cfg, "dpo", max_length=cfg.max_length))
    history = list(done.trainer.state.log_history)
    png = on_main(lambda: plot_preference(history, Path(cfg.output_dir) / "dpo.png", margin_key="rewards/margins",
                                          title=f"DPO ({cfg.method}, {'+'.join(cfg.loss_type)})"))
    last = next((h for h in reversed(history) if "rewards/margins" in h and "eval_loss" not in h), {})
    summary = RunSummary.of_fit("dpo", done, final=final, t0=t0, rows=len(rows), skipped=0, device=device, plot=png, details={
        "last_metrics": {k: v for k, v in last.items() if k.startswith("rewards/") or k == "loss"}, "eval": done.after,
    })
    return write_summary(cfg, summary)


def _text(messages: Any) -> str:
    from sqlcoach.rewards.common import completion_text

    return " ".join(completion_text(messages).split())


def _round_budget(cfg: DPORunConfig, r: int, t0: float) -> dict[str, Any]:
    """Round ``r``'s share of the run's budget: max_steps split evenly, max_seconds what is left
    (mining included) over the rounds left."""
    out: dict[str, Any] = {}
    if cfg.max_steps > 0:
        out["max_steps"] = max(1, cfg.max_steps // cfg.rounds + (1 if r < cfg.max_steps % cfg.rounds else 0))
    if cfg.max_seconds is not None:
        left = cfg.max_seconds - (time.monotonic() - t0)
        out["max_seconds"] = max(1.0, left / (cfg.rounds - r))
    return out


def _mine_round(cfg: DPORunConfig, model: Any, tokenizer: Any, questions: list[Any], r: int, pool: Any, prompt: Any,
                log: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Round ``r``'s pairs, mined from ``model``'s samples on its slice of ``questions`` (written
    to ``output_dir/round<r>/pairs.jsonl``), and the mining statistics."""
    n = cfg.mine_limit
    exs = [questions[(r * n + i) % len(questions)] for i in range(min(n, len(questions)))]
    was_training = model.training
    model.eval()
    pairs, stats = mine_pairs(model, tokenizer, exs, k=cfg.mine_k, temperature=cfg.mine_temperature,
                              max_new_tokens=cfg.mine_max_new_tokens, prompt=prompt.prompt, pool=pool, seed=cfg.seed + 1000 * r, progress=not cfg.disable_tqdm, show=1, log=log)
    model.train(was_training)
    path = write_pairs(Path(cfg.output_dir) / f"round{r}" / "pairs.jsonl", pairs)
    info = {"round": r, "questions": len(exs), "pairs": len(pairs), "mine_seconds": round(stats.seconds, 1),
            "pairs_path": str(path), "stats": {k: v for k, v in dataclasses.asdict(stats).items() if not isinstance(v, (list, dict))}}
    log(f"round {r}: {len(pairs)} pairs from {len(exs)} questions in {stats.seconds:.0f} s")
    return [{k: p[k] for k in PREF_COLUMNS} for p in pairs], info


def run_iterative_dpo(cfg: DPORunConfig, *, resume: bool = False, callbacks: list[Any] | None = None,
                      log: Any = print) -> dict[str, Any]:
    """Iterative DPO (module docstring): ``rounds`` of mine-then-train, one final model; returns the
    summary dict with the details ``rounds`` (per round: questions, pairs, mining seconds, steps)."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from sqlcoach.data import load_examples
    from sqlcoach.execution.pool import ExecutorPool
    from sqlcoach.prompts.recipe import resolve_prompt
    from sqlcoach.runtime.plots import plot_preference
    from sqlcoach.train.run import Fit

    from sqlcoach.runtime.dist import world_size

    if resume:
        raise ConfigError("--resume is not supported for iterative DPO (rounds > 1): start it again, or use rounds: 1")
    if world_size() > 1:
        raise ConfigError("iterative DPO (rounds > 1) runs in one process: each rank would mine its own pairs; "
                          "launch it without torchrun/accelerate, or use rounds: 1")
    t0 = time.monotonic()
    prompt = resolve_prompt(cfg.model, template=None, schema_style=None, schema_sample_values=None, log=log)
    questions = list(load_examples(cfg.mine_data_kind, cfg.mine_data_path, cfg.mine_split))
    random.Random(cfg.seed).shuffle(questions)
    model, tokenizer, device = load_policy(cfg, padding_side="right", why="mined pairs are chat-formatted")
    pool = ExecutorPool(1)
    fits: list[Any] = []
    rounds: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    try:
        for r in range(cfg.rounds):
            rows, info = _mine_round(cfg, model, tokenizer, questions, r, pool, prompt, log)
            rounds.append(info)
            if not rows:
                log(f"round {r}: no pair mined (every sample right, or none runs); the policy is unchanged this round")
                continue
            cfg_r = dataclasses.replace(cfg, rounds=1, output_dir=str(Path(cfg.output_dir) / f"round{r}"),
                                        pairs_path=info["pairs_path"], **_round_budget(cfg, r, t0))
            peft_config, ref_model = _reference(cfg_r, model)
            model.train()
            args = preference_args(cfg_r, DPOConfig, model, loss_type=list(cfg.loss_type), loss_weights=cfg.loss_weights,
                                   beta=cfg.beta, label_smoothing=cfg.label_smoothing,
                                   precompute_ref_log_probs=cfg.precompute_ref_log_probs, eval_strategy="no")

            def make_trainer(cbs: list[Any], cfg_r: Any = cfg_r, rows: Any = rows, peft_config: Any = peft_config,
                             ref_model: Any = ref_model, args: Any = args) -> Any:
                return DPOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=Dataset.from_list(rows),
                                  processing_class=tokenizer, peft_config=peft_config, callbacks=cbs)

            done = fit(cfg_r, make_trainer, resume=False, callbacks=callbacks, log=log)
            fits.append(done)
            offset = sum(f.trainer.state.global_step for f in fits[:-1])
            history += [dict(h, step=h.get("step", 0) + offset, round=r) for h in done.trainer.state.log_history]
            info["steps"] = int(done.trainer.state.global_step)
            # the next round's reference is this round's result: LoRA is merged into the weights
            model = done.trainer.model.merge_and_unload() if cfg.method == "lora" else done.trainer.model
    finally:
        pool.close()
    if not fits:
        raise ConfigError(f"iterative DPO mined no pair in {cfg.rounds} rounds: nothing was trained (see the round lines)")
    last = fits[-1]
    total = Fit(trainer=last.trainer, result=last.result, checkpoint=None, stopped_by_clock=any(f.stopped_by_clock for f in fits),
                step_seconds=[x for f in fits for x in f.step_seconds], train_seconds=sum(f.train_seconds for f in fits),
                peak_memory_mb=max(f.peak_memory_mb for f in fits),
                peak_cuda_mb=max((f.peak_cuda_mb for f in fits if f.peak_cuda_mb is not None), default=None),
                trainable_parameters=fits[0].trainable_parameters)
    final = save_final(last.trainer, tokenizer, cfg.output_dir, model=model,
                       recipe=model_recipe(cfg, "dpo", max_length=cfg.max_length))
    _write_history(Path(cfg.output_dir), history)
    png = plot_preference(history, Path(cfg.output_dir) / "dpo.png", title=f"iterative DPO ({cfg.rounds} rounds, {cfg.method})",
                          margin_key="rewards/margins")
    summary = RunSummary.of_fit("dpo", total, final=final, t0=t0, rows=sum(x["pairs"] for x in rounds), skipped=0,
                                device=device, plot=png, details={"rounds": rounds})
    steps = sum(f.trainer.state.global_step for f in fits)
    return write_summary(cfg, dataclasses.replace(summary, global_step=int(steps), max_steps=int(steps)))


def _write_history(out: Path, history: list[dict[str, Any]]) -> None:
    """``log_history.json`` of the whole run: every round's log, steps numbered across rounds."""
    import json

    (out / "log_history.json").write_text(json.dumps(history, indent=1, default=str) + "\n")

