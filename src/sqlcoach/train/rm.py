"""Reward model from execution-mined pairs (TRL's ``RewardTrainer``), full or LoRA, and its
pairwise evaluation.

Run it: ``sqlcoach train rm --config configs/rm/demo.yaml [key=value ...] [--resume]``, then
``sqlcoach rm eval --model runs/rm/final --pairs pairs_eval.jsonl``; use the result in GRPO/PPO as
``build_rewards([..., "reward_model"], reward_model={"model_dir": "runs/rm/final"})``.

Reads top to bottom: (1) preference rows, (2) the causal checkpoint loaded as
``AutoModelForSequenceClassification`` with ``num_labels=1`` (a new score head on the last
token; ``pad_token_id`` set so the head finds that token), LoRA adapters plus a fully trained head
with ``method=lora``, (3) ``RewardConfig``, (4) train (Bradley-Terry loss ``-log σ(r_chosen -
r_rejected)``) with the wall-clock budget and checkpoints, (5) save ``output_dir/final`` as a plain
sequence-classification checkpoint (LoRA is merged, so every consumer loads one kind of folder),
``log_history.json``, ``rm.png`` (loss and margin) and ``summary.json``; with
``eval_pairs_path`` the summary holds ``evaluate_rm`` on those held-out pairs.

Departures from the usual RLHF reward model (Ouyang et al., 2022): the comparisons are not human
rankings but execution verdicts (correct vs wrong result / error), so the RM learns to predict
"would this SQL run and match the gold", without the database; one pair per comparison, no
K-wise ranking. It only approximates the execution reward it was mined from: prefer that reward
where the database and gold are available, and use the RM where they are not (or as a dense
extra signal).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

from sqlcoach.config import RMRunConfig
from sqlcoach.errors import DataError
from sqlcoach.runtime.dist import is_main
from sqlcoach.train.pairs import pair_rows
from sqlcoach.train.run import (
    RunSummary,
    check_rows_kept,
    fit,
    lora_config,
    main_log,
    model_recipe,
    on_main,
    preference_args,
    save_final,
    write_summary,
)


def evaluate_rm(
    model_dir: str | Path,
    pairs: str | Path | Sequence[dict[str, Any]],
    *,
    batch_size: int = 16,
    device: str = "auto",
    max_length: int | None = None,
) -> dict[str, Any]:
    """Pairwise accuracy of a reward model on preference pairs (a JSONL path or rows).

    Returns ``{"pairs": n, "accuracy": share with score(chosen) > score(rejected), "ties": n
    equal, "mean_margin": mean of score(chosen) - score(rejected), "by_rejected_kind": {kind:
    {"pairs", "accuracy"}}}`` (kinds from the pairs file's ``rejected_kind`` column when present).
    A tie counts as wrong. Texts are formatted as in training (``rewards.reward_model.encode``)."""
    from sqlcoach.rewards.reward_model import encode, load_reward_model, score_ids
    from sqlcoach.train.pairs import read_pairs

    rows = read_pairs(pairs) if isinstance(pairs, (str, Path)) else list(pairs)
    if not rows:
        raise DataError("no pair to evaluate the reward model on", path=str(pairs) if isinstance(pairs, (str, Path)) else None)
    model, tok = load_reward_model(model_dir, device=device)
    chosen = [encode(tok, r["prompt"], r["chosen"], max_length) for r in rows]
    rejected = [encode(tok, r["prompt"], r["rejected"], max_length) for r in rows]
    scores = score_ids(model, tok, chosen + rejected, batch_size=batch_size)
    n = len(rows)
    margins = [scores[i] - scores[n + i] for i in range(n)]  # [n]
    by_kind: dict[str, list[bool]] = {}
    for r, m in zip(rows, margins):
        by_kind.setdefault(str(r.get("rejected_kind", "unknown")), []).append(m > 0)
    return {
        "pairs": n,
        "accuracy": round(sum(m > 0 for m in margins) / n, 4),
        "ties": sum(m == 0 for m in margins),
        "mean_margin": round(sum(margins) / n, 4),
        "by_rejected_kind": {k: {"pairs": len(v), "accuracy": round(sum(v) / len(v), 4)} for k, v in sorted(by_kind.items())},
    }


def _load_rm_for_training(cfg: RMRunConfig) -> tuple[Any, Any, str]:
    from transformers import AutoModelForSequenceClassification, set_seed

    from sqlcoach.models.load import export_merged, is_adapter, load_tokenizer
    from sqlcoach.runtime.device import resolve_dtype, training_device

    src = cfg.model
    if is_adapter(src):  # an SFT LoRA: merge it once (rank 0; the others wait, then read it)
        from sqlcoach.runtime.dist import ensure_group, main_first

        ensure_group(cfg.use_cpu)
        src = str(main_first(lambda: export_merged(src, Path(cfg.output_dir) / "start-merged") if is_main() else
                             Path(cfg.output_dir) / "start-merged"))
    device = training_device(cfg.use_cpu)
    set_seed(cfg.seed)  # the score head is initialised randomly: make it reproducible
    model = AutoModelForSequenceClassification.from_pretrained(src, num_labels=1, dtype=resolve_dtype(cfg.dtype, device))
    tok = load_tokenizer(src, padding_side="right")
    model.config.pad_token_id = tok.pad_token_id
    return model, tok, device


def run_rm(
    cfg: RMRunConfig,
    *,
    resume: bool = False,
    rows: list[dict[str, Any]] | None = None,
    eval_rows: list[dict[str, Any]] | None = None,
    callbacks: list[Any] | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """Train a reward model as ``cfg`` says; returns the summary dict (``train.run.RunSummary``,
    also in ``output_dir/summary.json``) with the details ``train_accuracy`` (the last logged batch
    accuracy) and ``eval`` (``evaluate_rm`` on the held-out pairs, when given). The saved model is
    a plain sequence-classification checkpoint (LoRA merged: one kind of RM folder for every consumer)."""
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    from sqlcoach.runtime.plots import plot_preference

    t0 = time.monotonic()
    log = main_log(log)  # every rank trains; rank 0 alone prints and writes the bookkeeping
    rows, eval_rows = pair_rows(cfg, rows, eval_rows, eval_all_columns=True)
    model, tokenizer, device = _load_rm_for_training(cfg)
    peft_config = lora_config(cfg, "SEQ_CLS", modules_to_save=["score"]) if cfg.method == "lora" else None
    args = preference_args(cfg, RewardConfig, model, center_rewards_coefficient=cfg.center_rewards_coefficient)

    def make_trainer(cbs: list[Any]) -> Any:
        return RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                             peft_config=peft_config, callbacks=cbs)

    def check(trainer: Any) -> None:
        kept = check_rows_kept(trainer, len(rows), what="pairs", max_length=cfg.max_length, hint="raise max_length", log=log)
        log(f"reward model ({cfg.method}) on {kept} pairs")

    done = fit(cfg, make_trainer, resume=resume, callbacks=callbacks, log=log, check=check)
    final = save_final(done.trainer, tokenizer, cfg.output_dir, merge=cfg.method == "lora",
                       recipe=model_recipe(cfg, "rm", max_length=cfg.max_length))
    history = list(done.trainer.state.log_history)
    png = on_main(lambda: plot_preference(history, Path(cfg.output_dir) / "rm.png", title=f"reward model ({cfg.method})",
                                          margin_key="margin"))
    last = next((h for h in reversed(history) if "accuracy" in h), {})
    evaluation = on_main(lambda: evaluate_rm(final, eval_rows, device=device, max_length=cfg.max_length)) if eval_rows else None
    if evaluation:
        log(f"held-out pairwise accuracy {evaluation['accuracy']:.3f} on {evaluation['pairs']} pairs")
    kept = len(done.trainer.train_dataset)
    summary = RunSummary.of_fit("rm", done, final=final, t0=t0, rows=kept, skipped=len(rows) - kept, device=device, plot=png,
                                details={"train_accuracy": last.get("accuracy"), "eval": evaluation})
    return write_summary(cfg, summary)
