"""Predict and score one model on a list of examples: the step the demo and the comparison share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Scored:
    """A prediction run and its scores: ``predict``'s summary, the metrics report
    (``metrics.evaluate_examples``), the SQL lines, and the first few (question, prediction, gold,
    EX) rows for people to read."""

    predict: Any
    report: Any
    predictions: list[str]
    samples: list[dict[str, Any]]


def predict_and_score(
    model: Any,
    tokenizer: Any,
    examples: list[Any],
    pred_path: str | Path,
    *,
    template: str,
    schema_style: str,
    schema_sample_values: int,
    n: int = 1,
    temperature: float = 0.0,
    batch_size: int = 32,
    max_new_tokens: int = 96,
    seed: int = 0,
    tables_path: str | Path | None = None,
    progress: bool = True,
    samples: int = 8,
) -> Scored:
    """Predict every example afresh (``resume=False``: an older model's predictions in
    ``pred_path`` are never reused), then score EX/EM by hardness (Spider rules)."""
    from sqlcoach.generate.predict import predict

    summ = predict(
        model, tokenizer, examples, pred_path, n=n, temperature=temperature, batch_size=batch_size,
        max_new_tokens=max_new_tokens, template=template, schema_style=schema_style,
        schema_sample_values=schema_sample_values, seed=seed, progress=progress, resume=False,
    )
    return score_predictions(summ, examples, pred_path, tables_path=tables_path, samples=samples)


def score_predictions(summ: Any, examples: list[Any], pred_path: str | Path, *, tables_path: str | Path | None = None,
                      samples: int = 8) -> Scored:
    """Score the SQL file ``pred_path`` (one line per example) against ``examples``: EX/EM by
    hardness under Spider rules, the EXPLAIN audit; every backend's predictions go through here."""
    from sqlcoach.metrics import evaluate_examples

    preds = Path(pred_path).read_text().split("\n")[: len(examples)]
    tables = str(tables_path) if tables_path and Path(tables_path).is_file() else None
    rep = evaluate_examples(examples, preds, etype="all", mode="spider", tables_path=tables)
    rows = [{"question": ex.question, "db_id": ex.db_id, "pred": p, "gold": ex.gold_sql, "ex": bool(v.ex), "error": v.error}
            for v, ex, p in list(zip(rep.verdicts, examples, preds))[:samples]]
    return Scored(predict=summ, report=rep, predictions=preds, samples=rows)


def api_predict_and_score(client: Any, examples: list[Any], pred_path: str | Path, *, template: str, schema_style: str,
                          schema_sample_values: int, max_new_tokens: int = 96, seed: int | None = 0,
                          concurrency: int = 4, tables_path: str | Path | None = None, progress: bool = True,
                          samples: int = 8) -> Scored:
    """``predict_and_score`` for a model behind an OpenAI-compatible endpoint (``client``, a
    ``generate.openai_client.ChatClient``): greedy, then scored by ``score_predictions``. Unlike
    local models it resumes (``resume=True``): the API backend's records are keyed by content
    (question + endpoint, model, decoding, prompt), so only answers to this very request are
    reused, and an interrupted comparison does not pay for its API calls twice."""
    from sqlcoach.generate.api_backend import predict_api

    summ = predict_api(client, examples, pred_path, temperature=0.0, max_tokens=max_new_tokens, seed=seed,
                       template=template, schema_style=schema_style, schema_sample_values=schema_sample_values,
                       concurrency=concurrency, resume=True, progress=progress)
    return score_predictions(summ, examples, pred_path, tables_path=tables_path, samples=samples)


def spread(pool: list[Any], n: int) -> list[Any]:
    """``n`` items evenly spread over ``pool`` (data files are grouped by database, so the first
    ``n`` would come from one or two databases)."""
    n = min(int(n), len(pool))
    return [pool[int(i * len(pool) / n)] for i in range(n)] if n else []
