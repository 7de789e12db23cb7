"""A verifier that reads results: candidates mined by execution, a score head trained with BCE.

Run it: ``sqlcoach train verifier --config configs/verifier/demo.yaml [key=value ...]``; use it with
``sqlcoach predict --n 8 --select verifier --verifier runs/verifier/final`` or as the ``verifier``
reward. Reads top to bottom:

1. **Mine** (no extra labels): ``max_examples`` training questions (shuffled with ``seed``, so
   every database contributes), ``k`` candidates each sampled from ``policy`` with its recorded
   prompt recipe (``train.pairs.sample_and_score``: the sampler and THE EX scorer pair mining
   uses). Each distinct candidate SQL of a question becomes one row, labelled 1 when EX counts it
   correct, else 0 with its class (``wrong_result``, ``exec_error``, ``timeout``, ``no_sql``, ...);
   its execution result on the question's database (the sandboxed pool, ``exec_timeout``) is
   rendered within ``result_budget`` tokens into the verifier's input
   (``sqlcoach.models.verifier.verifier_text``). Questions whose gold fails give no row. The rows
   go to ``output_dir/verifier_rows.jsonl`` (``rows_path`` trains on such a file instead).
2. **Split** by question (with ``ran_only``, after dropping the candidates that failed to run): ``holdout`` of the questions are held out (no candidate of a held-out
   question is trained on).
3. **Model**: ``model`` (any causal checkpoint) as ``AutoModelForSequenceClassification`` with
   ``num_labels=1`` (a new score head on the last token), full or LoRA (head trained in full).
4. **Train** pointwise BCE on the logit; ``balance=weight`` sets the positive weight to
   negatives / positives so that the rarer class is not ignored.
5. **Save** ``output_dir/final`` (LoRA merged) with the policy's prompt recipe and
   ``sqlcoach_verifier.json``; validate on the held-out rows (``evaluate_verifier``: AUC, accuracy
   at p = 0.5, and per question the share where the top-scored candidate that ran is correct,
   beside the share where any is: the selection headroom the verifier closes) before and after
   training, all in ``summary.json``.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlcoach.config.verifier import VerifierRunConfig
from sqlcoach.errors import DataError
from sqlcoach.train.run import RunSummary, fit, lora_config, main_log, on_main, precision_flags, save_final, \
    trainer_kwargs, write_summary

ROWS_FILE = "verifier_rows.jsonl"


def mine_verifier_rows(
    model: Any, tokenizer: Any, examples: Sequence[Any], builder: Any, *, verifier_tokenizer: Any, result_budget: int,
    k: int, temperature: float, top_p: float = 1.0, max_new_tokens: int = 96, batch_size: int = 16, seed: int = 0,
    chunk_size: int = 64, pool: Any, generate_fn: Callable[..., Any] | None = None, mode: str = "spider",
    progress: bool = True,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows ``{qid, db_id, question, sql, label, kind, count, ran, text}`` (one per distinct
    candidate of a question; ``count``: how many of the k samples wrote it; ``text``: the verifier's
    input) and counts by kind. See the module docstring. ``progress``: a bar over the questions
    (mining 1200 questions x 8 samples takes minutes on CPU)."""
    from sqlcoach.execution.render import token_length
    from sqlcoach.generate.predict import progress_bar
    from sqlcoach.models.verifier import verifier_text
    from sqlcoach.train.pairs import sample_and_score

    if generate_fn is None:
        from sqlcoach.generate.hf import generate_texts as generate_fn
    length = token_length(verifier_tokenizer)
    rows: list[dict[str, Any]] = []
    kinds: dict[str, int] = {}
    gold_errors = 0
    bar = progress_bar(len(examples), f"mine verifier rows (k={k})", unit="q") if progress else None
    for exs, _, _, sqls, outcomes in sample_and_score(
        model, tokenizer, examples, builder, generate_fn, pool, k=k, temperature=temperature, top_p=top_p,
        max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed, chunk_size=chunk_size, mode=mode,
    ):
        jobs = sorted({(str(ex.db_path), s) for ex, ss in zip(exs, sqls) if ex.db_path for s in ss if s})
        results = dict(zip(jobs, pool.run(jobs, cache=True)))
        for q, ex in enumerate(exs):
            outs = outcomes[q * k : (q + 1) * k]
            if any(o.error == "gold_error" for o in outs):
                gold_errors += 1
                continue
            schema_text = builder.lenient_schema_text(ex)
            seen: dict[str, dict[str, Any]] = {}
            for s, o in zip(sqls[q], outs):
                key = " ".join(s.split())
                if key in seen:
                    seen[key]["count"] += 1
                    continue
                res = results.get((str(ex.db_path), s)) if s else None
                kind = "correct" if o.ex else (o.error or "wrong_result")
                seen[key] = {
                    "qid": f"{ex.db_id}/{ex.id}", "db_id": ex.db_id, "question": ex.question, "sql": key,
                    "label": int(bool(o.ex)), "kind": kind, "count": 1,
                    "ran": bool(s) and res is not None and res.error is None and res.rows is not None,
                    "text": verifier_text(ex.question, schema_text, s, res, result_budget=result_budget, length=length),
                }
                kinds[kind] = kinds.get(kind, 0) + 1
            rows.extend(seen.values())
        if bar is not None:
            bar.update(len(exs))
    if bar is not None:
        bar.close()
    return rows, {"rows": len(rows), "by_kind": dict(sorted(kinds.items())), "gold_errors": gold_errors,
                  "questions": len({r["qid"] for r in rows})}


def split_by_question(rows: Sequence[dict[str, Any]], holdout: float, seed: int) -> tuple[list[dict], list[dict]]:
    """``(train, held_out)``: every candidate of a question on the same side; at least one
    question on each side when there are two or more."""
    qids = sorted({r["qid"] for r in rows})
    random.Random(seed).shuffle(qids)
    n_out = min(max(1, round(holdout * len(qids))), len(qids) - 1) if len(qids) > 1 else 0
    out = set(qids[:n_out])
    return [r for r in rows if r["qid"] not in out], [r for r in rows if r["qid"] in out]


def evaluate_verifier(scores: Sequence[float], rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Validation figures of ``scores`` (logits) on ``rows``: ``auc`` (``None`` with one class),
    ``accuracy`` at logit 0, ``positives`` share, and over questions ``pick_correct`` (the
    top-scored candidate that ran is correct; ties: the first), ``any_correct`` (some candidate is:
    the ceiling) and ``most_common_correct`` (the candidate most samples wrote: a vote by SQL text)."""
    from sqlcoach.metrics.stats import roc_auc

    labels = [r["label"] for r in rows]
    by_q: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_q.setdefault(r["qid"], []).append(i)
    pick = anyc = common = 0
    for idx in by_q.values():
        ran = [i for i in idx if rows[i]["ran"]] or idx
        pick += labels[max(ran, key=lambda i: scores[i])]
        anyc += any(labels[i] for i in idx)
        common += labels[max(idx, key=lambda i: rows[i]["count"])]
    nq = len(by_q) or 1
    return {
        "rows": len(rows), "questions": len(by_q), "positives": round(sum(labels) / max(len(rows), 1), 4),
        "auc": None if len(set(labels)) < 2 else round(roc_auc(scores, labels), 4),
        "accuracy": round(sum((s > 0) == bool(y) for s, y in zip(scores, labels)) / max(len(rows), 1), 4),
        "pick_correct": round(pick / nq, 4), "any_correct": round(anyc / nq, 4),
        "most_common_correct": round(common / nq, 4),
    }


def _write_rows(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows a verifier run mined (``verifier_rows.jsonl``); ``DataError`` naming the line otherwise."""
    p = Path(path)
    if not p.is_file():
        raise DataError("verifier rows file not found", str(p))
    rows = []
    for lineno, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            if not isinstance(r["text"], str) or r["label"] not in (0, 1) or not isinstance(r["qid"], str):
                raise TypeError("text must be a string, label 0 or 1, qid a string")
            r.setdefault("ran", True)
            r.setdefault("count", 1)
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"not a verifier row ({exc.__class__.__name__}: {exc})", str(p), lineno) from None
        rows.append(r)
    if not rows:
        raise DataError("no verifier row", str(p))
    return rows


def _mine(cfg: VerifierRunConfig, verifier_tok: Any, log: Callable[[str], None]) -> tuple[list[dict], dict, Any]:
    from sqlcoach.data import load_examples
    from sqlcoach.execution.pool import ExecutorPool
    from sqlcoach.execution.sandbox import Limits
    from sqlcoach.models.load import load_model
    from sqlcoach.prompts.recipe import PROMPT_KEYS, resolve_prompt

    policy = cfg.policy or cfg.model
    recipe = resolve_prompt(policy, **{key: getattr(cfg, key) for key in PROMPT_KEYS}, log=log)
    examples = [ex for ex in load_examples(cfg.data_kind, cfg.data_path, cfg.split) if ex.gold_sql]
    random.Random(cfg.seed).shuffle(examples)
    if cfg.max_examples is not None:
        examples = examples[: cfg.max_examples]
    if not examples:
        raise DataError("no training question with a gold SQL to mine candidates from", cfg.data_path)
    model, tok = load_model(policy, device="cpu" if cfg.use_cpu else "auto")
    builder = recipe.builder()
    t0 = time.monotonic()
    with ExecutorPool(workers=None, limits=Limits(timeout=cfg.exec_timeout)) as pool:
        rows, stats = mine_verifier_rows(
            model, tok, examples, builder, verifier_tokenizer=verifier_tok, result_budget=cfg.result_budget, k=cfg.k,
            temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
            batch_size=cfg.generation_batch_size, seed=cfg.seed, pool=pool, mode="bird" if cfg.data_kind == "bird" else "spider",
            progress=not cfg.disable_tqdm,
        )
    stats["seconds"] = round(time.monotonic() - t0, 1)
    log(f"mined {stats['rows']} candidates of {stats['questions']} questions from {policy} (k={cfg.k}): "
        f"{stats['by_kind']} in {stats['seconds']}s")
    del model
    return rows, stats, recipe


def _rows_and_recipe(cfg: VerifierRunConfig, rows: list[dict[str, Any]] | None, tok: Any,
                     log: Callable[[str], None]) -> tuple[list[dict[str, Any]], dict[str, Any], Any]:
    """The rows to train on (given, ``rows_path``'s, or mined now and written beside the run),
    what mining found, and the policy's prompt recipe."""
    from sqlcoach.prompts.recipe import PROMPT_KEYS, resolve_prompt

    if rows is None and cfg.rows_path:
        rows = read_rows(cfg.rows_path)
        mined: dict[str, Any] = {"rows": len(rows), "from": cfg.rows_path}
    elif rows is not None:
        mined = {"rows": len(rows), "from": "rows given by the caller"}
    if rows is None:
        rows, mined, recipe = _mine(cfg, tok, log)
        mined_rows = rows
        on_main(lambda: _write_rows(Path(cfg.output_dir) / ROWS_FILE, mined_rows))
        return rows, mined, recipe
    recipe = resolve_prompt(cfg.policy or cfg.model, **{key: getattr(cfg, key) for key in PROMPT_KEYS}, log=lambda _m: None)
    return rows, mined, recipe


def _load_scorer(cfg: VerifierRunConfig, tok: Any) -> tuple[Any, str]:
    """``cfg.model`` as a one-output sequence classifier (new score head; LoRA adapters with the
    head trained in full for ``method=lora``) on the training device."""
    from transformers import AutoModelForSequenceClassification, set_seed

    from sqlcoach.models.load import load_start
    from sqlcoach.runtime.device import resolve_dtype, training_device

    device = training_device(cfg.use_cpu)
    set_seed(cfg.seed)  # the score head is initialised randomly: make it reproducible
    # an adapter start (e.g. an SFT LoRA) merged first; final/ is saved merged for method=lora anyway
    model = load_start(cfg.model, AutoModelForSequenceClassification, num_labels=1, dtype=resolve_dtype(cfg.dtype, device))
    model.config.pad_token_id = tok.pad_token_id
    if cfg.method == "lora":
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(cfg, "SEQ_CLS", modules_to_save=["score"]))
    return model.to(device), device


def _bce_trainer_factory(cfg: VerifierRunConfig, model: Any, tok: Any, dataset: list[dict[str, Any]],
                         pos_weight: float) -> Callable[[list[Any]], Any]:
    """``make_trainer(callbacks)`` for ``train.run.fit``: a ``transformers.Trainer`` whose loss is
    BCE on the one logit with positives weighted by ``pos_weight``, batches right-padded."""
    import torch
    from transformers import Trainer, TrainingArguments

    weight = torch.tensor(pos_weight)

    def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
        padded = tok.pad({"input_ids": [b["input_ids"] for b in batch]}, padding=True, return_tensors="pt")
        padded["labels"] = torch.tensor([b["labels"] for b in batch], dtype=torch.float32)
        return padded

    class BCETrainer(Trainer):
        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, **_: Any) -> Any:
            labels = inputs.pop("labels")
            out = model(**inputs)
            logits = out.logits[:, 0]  # [B]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logits.float(), labels.float(), pos_weight=weight.to(logits.device))
            return (loss, out) if return_outputs else loss

    args = TrainingArguments(**trainer_kwargs(cfg, **precision_flags(model)), num_train_epochs=cfg.num_train_epochs,
                             remove_unused_columns=False)
    return lambda cbs: BCETrainer(model=model, args=args, train_dataset=dataset, data_collator=collate, callbacks=cbs)


def run_verifier(
    cfg: VerifierRunConfig,
    *,
    resume: bool = False,
    rows: list[dict[str, Any]] | None = None,
    callbacks: list[Any] | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """Train a verifier as ``cfg`` says (module docstring); returns the summary dict
    (``train.run.RunSummary``, also in ``output_dir/summary.json``) with the details ``mined``
    (counts by kind), ``eval_before`` and ``eval`` (``evaluate_verifier`` on the held-out
    questions before and after training). ``rows``: train on these rows instead of mining."""
    from sqlcoach.models.load import load_tokenizer
    from sqlcoach.models.verifier import VerifierSpec, encode, score_texts

    t0 = time.monotonic()
    log = main_log(log)
    tok = load_tokenizer(cfg.model, padding_side="right")
    rows, mined, recipe = _rows_and_recipe(cfg, rows, tok, log)
    if cfg.ran_only:  # a selection never lets a failing candidate win: learn to rank the others
        rows = [r for r in rows if r["ran"]]
    train_rows, held = split_by_question(rows, cfg.holdout, cfg.seed)
    pos = sum(r["label"] for r in train_rows)
    if not train_rows or pos in (0, len(train_rows)):
        raise DataError(f"the verifier needs correct and wrong candidates to learn from; the training rows have "
                        f"{pos} correct of {len(train_rows)} (sample more questions, raise k or temperature)")
    pos_weight = (len(train_rows) - pos) / pos if cfg.balance == "weight" else 1.0
    log(f"verifier rows: {len(train_rows)} train ({pos} correct, positive weight {pos_weight:.2f}), "
        f"{len(held)} held out ({len({r['qid'] for r in held})} questions)")
    model, device = _load_scorer(cfg, tok)

    def held_out() -> dict[str, Any] | None:
        model.eval()
        return evaluate_verifier(score_texts(model, tok, [r["text"] for r in held], max_length=cfg.max_length),
                                 held) if held else None

    before = held_out()
    dataset = [{"input_ids": encode(tok, r["text"], cfg.max_length), "labels": float(r["label"])} for r in train_rows]
    done = fit(cfg, _bce_trainer_factory(cfg, model, tok, dataset, pos_weight), resume=resume, callbacks=callbacks,
               log=log)
    after = held_out()
    if after:
        log(f"held-out: AUC {after['auc']} (before training {before['auc'] if before else None}), accuracy "
            f"{after['accuracy']}, top-scored candidate correct on {after['pick_correct']:.3f} of "
            f"{after['questions']} questions (most common {after['most_common_correct']:.3f}, any {after['any_correct']:.3f})")
    final = save_final(done.trainer, tok, cfg.output_dir, merge=cfg.method == "lora",
                       recipe=recipe.then("verifier", max_length=cfg.max_length))
    on_main(lambda: VerifierSpec(base_model=str(cfg.model), result_budget=cfg.result_budget, max_length=cfg.max_length,
                                 policy_prompt=recipe.settings()).save(final))
    summary = RunSummary.of_fit(
        "verifier", done, final=final, t0=t0, rows=len(dataset), skipped=0, device=device, plot=None,
        details={"mined": mined, "pos_weight": round(pos_weight, 4), "eval_before": before, "eval": after,
                 "policy": cfg.policy or cfg.model},
    )
    return write_summary(cfg, summary)
