"""Direct Preference Optimisation on execution-mined pairs (TRL's ``DPOTrainer``), full or LoRA.

Run it: ``sqlcoach train dpo --config configs/dpo/demo.yaml [key=value ...] [--resume]``
(pairs from ``sqlcoach pairs mine``).

Reads top to bottom: (1) preference rows (conversational ``prompt``/``chosen``/``rejected``),
(2) policy and tokenizer, and the reference: LoRA -> the same network with adapters disabled (no
second copy); full -> a frozen deep copy of the starting weights (or none with
``precompute_ref_log_probs``: TRL computes reference log-probs once, before training), (3)
``DPOConfig`` (any TRL 1.16 ``loss_type``: sigmoid, ipo, hinge, robust, ...), (4) train with the
wall-clock budget and checkpoints (``--resume`` continues from the last one), (5) save
``output_dir/final`` (model or adapter + tokenizer), ``log_history.json``, ``dpo.png`` (loss and
reward margin per logged step) and ``sqlcoach_dpo.json`` (config + summary).

Departures from the DPO paper (Rafailov et al., 2023): the preference data is not human labelled
but mined by executing the policy's own samples (``sqlcoach.train.pairs``), and the chosen answer
falls back to the gold SQL when no sample is correct (off-policy for those pairs). The reference
is the starting checkpoint itself (no separate SFT-on-chosen stage). Prompts longer than
``max_length`` are truncated by TRL from the end of the whole sequence (``keep_start``), so a
very long schema can cut the answer: keep prompts short (compact schema) or raise ``max_length``.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

from sqlcoach.errors import ConfigError, DataError
from sqlcoach.train.common import clock_callback, config_to_dict, lora_config, read_clock, trainer_kwargs
from sqlcoach.train.pref_config import DPORunConfig, _PrefRunConfig
from sqlcoach.train.sft import last_checkpoint

#: The columns TRL's preference trainers read; everything else in a pairs file is for people.
PREF_COLUMNS = ("prompt", "chosen", "rejected")


def preference_rows(path: str, max_pairs: int | None = None) -> list[dict[str, Any]]:
    """``prompt``/``chosen``/``rejected`` rows of a pairs JSONL (first ``max_pairs``)."""
    from sqlcoach.train.pairs import read_pairs

    rows = [{k: r[k] for k in PREF_COLUMNS} for r in read_pairs(path)]
    if max_pairs is not None:
        rows = rows[:max_pairs]
    if not rows:
        raise DataError("no preference pair in the file (did mining find any? see its stats)", path=path)
    return rows


def step_timer() -> Any:
    """A ``TrainerCallback`` recording each optimizer step's wall-clock seconds in ``.seconds``."""
    from transformers import TrainerCallback

    class _Steps(TrainerCallback):
        def __init__(self) -> None:
            self.seconds: list[float] = []
            self._t = 0.0

        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
            self._t = time.monotonic()
            return control

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
            self.seconds.append(time.monotonic() - self._t)
            return control

    return _Steps()


def load_policy(cfg: _PrefRunConfig) -> tuple[Any, Any, str]:
    """(model, tokenizer, device) for preference training; a LoRA adapter folder as ``model`` is
    merged into its base first (DPO/RM then start from the merged weights)."""
    import torch

    from sqlcoach.models.load import load_model

    device = "cpu" if cfg.use_cpu or not torch.cuda.is_available() else "cuda"
    model, tok = load_model(cfg.model, dtype=cfg.dtype, device=device, merge=True, padding_side="right")
    if tok.chat_template is None:
        raise ConfigError(
            f"{cfg.model}: the tokenizer has no chat template; mined pairs are chat-formatted "
            "(use an instruct checkpoint or a model from `sqlcoach model init`)"
        )
    return model, tok, device


def trainer_args(cfg: _PrefRunConfig, config_cls: type, bf16: bool, fp16: bool, **extra: Any) -> Any:
    """The ``transformers.TrainingArguments`` fields both preference recipes set the same way."""
    return config_cls(
        **trainer_kwargs(cfg, bf16=bf16, fp16=fp16),
        num_train_epochs=cfg.num_train_epochs,
        per_device_eval_batch_size=cfg.per_device_train_batch_size,
        max_length=cfg.max_length,
        **extra,
    )


def plot_preference(history: list[dict[str, Any]], out_png: str | Path, *, title: str, margin_key: str) -> Path | None:
    """Two panels against step: ``loss`` and ``margin_key`` (DPO: ``rewards/margins``; RM:
    ``margin``); ``None`` when nothing was logged."""
    loss = [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h]
    margin = [(h["step"], h[margin_key]) for h in history if margin_key in h and "step" in h and "eval_loss" not in h]
    if not loss and not margin:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, pts, name in ((axes[0], loss, "loss"), (axes[1], margin, margin_key)):
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="." if len(pts) < 30 else None)
        ax.set_xlabel("step")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def run_dpo(
    cfg: DPORunConfig,
    *,
    resume: bool = False,
    rows: list[dict[str, Any]] | None = None,
    eval_rows: list[dict[str, Any]] | None = None,
    callbacks: list[Any] | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """Train as ``cfg`` says; returns the summary dict (also in ``output_dir/sqlcoach_dpo.json``).

    Summary keys (aligned with SFT's): ``final_dir``, ``global_step``, ``max_steps``,
    ``train_loss``, ``resumed_from``, ``stopped_by_clock``, ``pairs``, ``trainable_parameters``,
    ``seconds`` (whole call), ``train_seconds``, ``median_step_seconds``, ``peak_memory_mb`` (CUDA
    allocator peak on a GPU, else this process's sampled RSS), ``last_metrics`` (the last logged
    ``rewards/*`` values), ``eval`` (TRL's eval metrics on ``eval_pairs_path``, when given) and
    ``plot_png``. ``rows``/``eval_rows`` replace reading the pairs files (tests)."""
    import copy

    import torch
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from sqlcoach.bench.memory import track_peak

    t0 = time.monotonic()
    # (1) preference rows
    if rows is None:
        rows = preference_rows(cfg.pairs_path, cfg.max_pairs)
    elif cfg.max_pairs is not None:
        rows = rows[: cfg.max_pairs]
    if eval_rows is None and cfg.eval_pairs_path:
        eval_rows = preference_rows(cfg.eval_pairs_path)
    if not rows:
        raise DataError("no preference pair to train on", path=cfg.pairs_path)

    # (2) policy, tokenizer, reference
    model, tokenizer, device = load_policy(cfg)
    peft_config = None
    ref_model = None
    if cfg.method == "lora":
        peft_config = lora_config(cfg, "CAUSAL_LM")  # reference = adapters disabled
    elif not cfg.precompute_ref_log_probs:
        ref_model = copy.deepcopy(model).eval()  # frozen copy of the starting weights
        for p in ref_model.parameters():
            p.requires_grad_(False)
    model.train()

    # (3) TRL config
    dtype = next(model.parameters()).dtype
    args = trainer_args(
        cfg, DPOConfig, dtype == torch.bfloat16, dtype == torch.float16,
        loss_type=list(cfg.loss_type), loss_weights=cfg.loss_weights, beta=cfg.beta,
        label_smoothing=cfg.label_smoothing, precompute_ref_log_probs=cfg.precompute_ref_log_probs,
        eval_strategy="no",
    )

    # (4) train
    ckpt = last_checkpoint(cfg.output_dir) if resume else None
    clock = clock_callback(cfg.max_seconds, already=read_clock(ckpt), anneal=cfg.anneal_by_clock, warmup_ratio=cfg.warmup_ratio)
    steps = step_timer()
    trainer = DPOTrainer(
        model=model,
        ref_model=ref_model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[*(callbacks or []), clock, steps],
    )
    clock.bind(trainer)
    if resume and ckpt is None:
        log(f"--resume: no checkpoint in {cfg.output_dir}; starting from step 0")
    elif ckpt is not None:
        log(f"resuming from {ckpt}")
    log(f"DPO ({cfg.method}, loss {'+'.join(cfg.loss_type)}, beta {cfg.beta}) on {len(rows)} pairs; sample pair:\n"
        f"  chosen:   {_text(rows[0]['chosen'])[:160]!r}\n  rejected: {_text(rows[0]['rejected'])[:160]!r}")
    t_train = time.monotonic()
    with track_peak() as peak:
        result = trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
        train_seconds = time.monotonic() - t_train  # training only; the held-out evaluation follows
        eval_metrics = trainer.evaluate() if eval_rows else None

    # (5) save and report
    out = Path(cfg.output_dir)
    final = out / "final"
    trainer.save_model(str(final))
    tokenizer.save_pretrained(str(final))
    history = list(trainer.state.log_history)
    (out / "log_history.json").write_text(json.dumps(history, indent=1) + "\n")
    png = plot_preference(history, out / "dpo.png", title=f"DPO ({cfg.method}, {'+'.join(cfg.loss_type)})", margin_key="rewards/margins")
    last = next((h for h in reversed(history) if "rewards/margins" in h and "eval_loss" not in h), {})
    summary = {
        "final_dir": str(final),
        "global_step": int(trainer.state.global_step),
        "max_steps": int(trainer.state.max_steps),
        "train_loss": float(result.training_loss),
        "resumed_from": str(ckpt) if ckpt else None,
        "stopped_by_clock": clock.stopped_at is not None,
        "pairs": len(rows),
        "trainable_parameters": int(sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)),
        "seconds": round(time.monotonic() - t0, 2),
        "train_seconds": round(train_seconds, 2),
        "median_step_seconds": round(statistics.median(steps.seconds), 3) if steps.seconds else None,
        "peak_memory_mb": round(peak.cuda_mb if peak.cuda_mb is not None else peak.rss_mb, 1),
        "device": device,
        "last_metrics": {k: v for k, v in last.items() if k.startswith("rewards/") or k == "loss"},
        "eval": eval_metrics,
        "plot_png": str(png) if png else None,
    }
    (out / "sqlcoach_dpo.json").write_text(json.dumps({"config": config_to_dict(cfg), "summary": summary}, indent=2) + "\n")
    return summary


def _text(messages: Any) -> str:
    from sqlcoach.rewards.common import completion_text

    return " ".join(completion_text(messages).split())
