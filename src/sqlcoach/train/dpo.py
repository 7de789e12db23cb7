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

Departures from the DPO paper (Rafailov et al., 2023): the preference data is not human labelled
but mined by executing the policy's own samples (``sqlcoach.train.pairs``), and the chosen answer
falls back to the gold SQL when no sample is correct (off-policy for those pairs). The reference
is the starting checkpoint itself (no separate SFT-on-chosen stage). Prompts longer than
``max_length`` are truncated by TRL from the end of the whole sequence (``keep_start``), so a
very long schema can cut the answer: keep prompts short (compact schema) or raise ``max_length``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlcoach.config import DPORunConfig
from sqlcoach.train.pairs import pair_rows
from sqlcoach.train.run import (
    RunSummary,
    fit,
    load_policy,
    lora_config,
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

    from sqlcoach.models.load import is_adapter
    from sqlcoach.runtime.plots import plot_preference

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
    # a LoRA on top of a merged start adapter is saved merged (an adapter would name the wrong base)
    final = save_final(done.trainer, tokenizer, cfg.output_dir, merge=cfg.method == "lora" and is_adapter(cfg.model),
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
