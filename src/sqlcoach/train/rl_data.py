"""Prompts for reinforcement learning (GRPO, PPO): rows, gold curation, pass-rate filtering.

Shared by ``sqlcoach.train.grpo`` and ``sqlcoach.train.ppo``. Three steps, each optional after
the first:

1. ``build_rl_rows(examples, template=..., schema_style=...)``: one row per usable example, with
   ``prompt`` (conversational messages, what TRL's ``GRPOTrainer`` reads) and the columns the
   rewards read (``db_path``, ``gold_sql``, ``format_template``) plus ``id``, ``db_id``,
   ``question``, ``hardness`` for logs. The prompt is built by ``sqlcoach.prompts.builder.
   PromptBuilder``, the builder of the SFT rows too (same schema text, same template), so the
   policy sees in RL exactly what it saw in SFT.
2. ``curate_gold(rows, pool=...)``: drop rows whose gold SQL fails or returns nothing (an empty or
   all-NULL result): their execution reward is ``None`` or trivially matched by any empty answer.
3. ``pass_rate_filter(rows, model=..., tokenizer=..., k=8)``: sample ``k`` completions per prompt
   with the starting policy, score each with the EX comparer (the execution reward's own
   ``ExecutionScorer``), and drop prompts solved by all ``k`` (``drop_always``) or by none
   (``drop_never``). A GRPO group whose rewards are all equal has zero advantage everywhere: it
   costs a generation and teaches nothing. With a graded reward a never-solved prompt can still
   have variance (errors vs. wrong results), hence the two separate switches.

Everything is deterministic given the inputs and ``seed`` (generation seeds torch once per call).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from sqlcoach.errors import ConfigError, ModelError
from sqlcoach.generate.base import GenerateFn
from sqlcoach.prompts.builder import RL_COLUMNS  # noqa: F401  (defined in the builder; importable here)
from sqlcoach.prompts.settings import PromptSettings


def build_rl_rows(
    examples: list[Any],
    *,
    prompt: PromptSettings,
    tokenizer: Any = None,
    log: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Examples -> RL prompt rows (see the module docstring for the columns): the training rows
    of the single-turn execution task (``tasks.sql_exec.SqlExecutionTask.train_rows``).

    Examples without gold SQL (the task's rule), without a database, or whose database schema
    cannot be read are skipped (``log`` receives one line per skipped example when given). With a
    ``tokenizer`` each row also gets ``prompt_tokens``: the length of the chat-formatted prompt, so
    that callers can drop prompts that would not fit. Raises ``DataError`` when no example is usable."""
    from sqlcoach.prompts.builder import PromptBuilder
    from sqlcoach.tasks import SqlExecutionTask

    builder = PromptBuilder.from_settings(prompt)
    return SqlExecutionTask(builder).train_rows(examples, tokenizer=tokenizer, log=log)


def _gold_files(db_path: str) -> tuple[str, ...]:
    # A file is itself; a folder holds test-suite databases (every *.sqlite in it, sorted).
    p = Path(db_path)
    if p.is_dir():
        return tuple(sorted(str(f) for f in p.glob("*.sqlite")))
    return (db_path,)


def _empty(rows: Any) -> bool:
    """No rows, or only rows of NULLs: any answer that also returns nothing would 'match'."""
    return not rows or all(all(v is None for v in r) for r in rows)


def curate_gold(rows: list[dict[str, Any]], *, pool: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Keep the rows whose gold SQL runs and returns something, on every database file it is scored on.

    ``pool`` is an ``ExecutorPool`` (gold results are cached there, so the execution reward that
    later scores against the same gold does not run it again). Returns ``(kept, report)``;
    ``report`` = ``{"in", "kept", "dropped": {"gold_error": n, "gold_empty": n, "no_database": n},
    "examples": [{"id", "reason", "message"}, ...] (first 20)}``. Row order is preserved."""
    jobs: list[tuple[str, str]] = []
    spans: list[tuple[int, int]] = []
    for row in rows:
        files = _gold_files(row["db_path"])
        start = len(jobs)
        jobs.extend((f, row["gold_sql"]) for f in files)
        spans.append((start, len(jobs)))
    results = pool.run(jobs, cache=True) if jobs else []
    kept: list[dict[str, Any]] = []
    reasons: Counter[str] = Counter()
    examples: list[dict[str, str]] = []
    for row, (a, b) in zip(rows, spans):
        reason, message = None, ""
        if a == b:
            reason = "no_database"
            message = f"no *.sqlite file in {row['db_path']}"
        for res in results[a:b]:
            if res.error is not None:
                reason, message = "gold_error", f"{res.error}: {res.message}"[:300]
                break
            if _empty(res.rows):
                reason, message = "gold_empty", "the gold returns no rows (or only NULLs)"
                break
        if reason is None:
            kept.append(row)
        else:
            reasons[reason] += 1
            if len(examples) < 20:
                examples.append({"id": str(row.get("id", "")), "reason": reason, "message": message})
    report = {
        "in": len(rows),
        "kept": len(kept),
        "dropped": {k: reasons.get(k, 0) for k in ("gold_error", "gold_empty", "no_database")},
        "examples": examples,
    }
    return kept, report


def pass_rate_filter(
    rows: list[dict[str, Any]],
    *,
    model: Any,
    tokenizer: Any,
    k: int = 8,
    drop_always: bool = True,
    drop_never: bool = True,
    temperature: float = 1.0,
    max_new_tokens: int = 128,
    batch_size: int = 8,
    seed: int = 0,
    pool: Any = None,
    mode: str = "spider",
    generate: GenerateFn | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Drop prompts the starting policy solves always (``drop_always``) or never (``drop_never``).

    Samples ``k`` completions per prompt at ``temperature`` with
    ``sqlcoach.generate.hf.generate_texts`` (batched, ``batch_size`` prompts at a time; pass
    ``generate`` with the same signature to replace it, e.g. in tests), scores each with the EX
    comparer (``ExecutionScorer``, on ``pool``: an ``ExecutorPool``, a ``PoolHandle``, or ``None``
    for a fresh in-process one), and keeps the rest in their original order. Rows whose gold
    cannot be scored are dropped too (counted as ``unscorable``; run ``curate_gold`` first).

    Returns ``(kept, stats)``; ``stats`` = ``{"in", "kept", "k", "dropped_always", "dropped_never",
    "unscorable", "mean_pass_rate", "pass_rate_histogram": {"0/k": n, ...}, "pass_rates": [per
    input row], "generated_tokens", "seconds"}``."""
    from sqlcoach.prompts.chat import to_text
    if k < 1:
        raise ConfigError(f"k must be >= 1 (completions sampled per prompt), got {k}")
    t0 = time.monotonic()
    if generate is None:
        from sqlcoach.generate.hf import generate_texts as generate
    texts = [to_text(row["prompt"], tokenizer) for row in rows]
    gens = generate(
        model, tokenizer, texts, n=k, temperature=temperature, max_new_tokens=max_new_tokens,
        batch_size=batch_size, seed=seed,
    )
    samples: list[list[str]] = gens.texts  # [N][k]
    if len(samples) != len(rows) or any(len(s) != k for s in samples):
        raise ModelError(f"generate returned {[len(s) for s in samples][:5]}... completions; expected {k} for each of {len(rows)} prompts")
    outcomes = _score_groups(rows, samples, pool, mode)  # [N*k]
    rates: list[float | None] = []
    for i in range(len(rows)):
        group = outcomes[i * k : (i + 1) * k]  # the k outcomes of prompt i
        rates.append(sum(o.equal for o in group) / k if all(o.gold_ok for o in group) else None)
    return _keep_by_rate(rows, rates, k=k, drop_always=drop_always, drop_never=drop_never,
                         generated_tokens=int(getattr(gens, "generated_tokens", 0)), t0=t0)


def sharded_pass_rate_filter(rows: list[dict[str, Any]], **kwargs: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``pass_rate_filter`` shared out over the processes of a ``torchrun`` / ``accelerate`` launch:
    rank r samples and scores ``rows[r::N]`` (seed ``seed + r``), the pass rates are gathered, and
    every rank keeps the same rows in their original order (the Trainer then shards them). In one
    process it is ``pass_rate_filter`` itself. ``stats["generated_tokens"]`` sums all ranks."""
    from sqlcoach.runtime.dist import gather_objects, rank, world_size

    n = world_size()
    if n <= 1:
        return pass_rate_filter(rows, **kwargs)
    t0 = time.monotonic()
    r = rank()
    mine = rows[r::n]
    _, st = pass_rate_filter(mine, **{**kwargs, "seed": int(kwargs.get("seed", 0)) + r}) if mine else (
        [], {"pass_rates": [], "generated_tokens": 0})
    parts = gather_objects((st["pass_rates"], st["generated_tokens"]))  # [(rates of rows[j::n], tokens)] by rank j
    rates = [parts[i % n][0][i // n] for i in range(len(rows))]
    return _keep_by_rate(rows, rates, k=kwargs.get("k", 8), drop_always=kwargs.get("drop_always", True),
                         drop_never=kwargs.get("drop_never", True), generated_tokens=sum(p[1] for p in parts), t0=t0)


def _keep_by_rate(rows: list[dict[str, Any]], rates: list[float | None], *, k: int, drop_always: bool,
                  drop_never: bool, generated_tokens: int, t0: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows ``pass_rate_filter`` keeps, given each row's pass rate (``None``: unscorable), and its stats."""
    kept: list[dict[str, Any]] = []
    for row, rate in zip(rows, rates):
        solved = None if rate is None else round(rate * k)
        if solved is not None and not ((solved == k and drop_always) or (solved == 0 and drop_never)):
            kept.append(row)
    scored = [r for r in rates if r is not None]
    hist = Counter(round(r * k) for r in scored)
    return kept, {
        "in": len(rows),
        "kept": len(kept),
        "k": k,
        "dropped_always": hist.get(k, 0) if drop_always else 0,
        "dropped_never": hist.get(0, 0) if drop_never else 0,
        "unscorable": len(rates) - len(scored),
        "mean_pass_rate": round(sum(scored) / len(scored), 4) if scored else None,
        "pass_rate_histogram": {f"{s}/{k}": hist.get(s, 0) for s in range(k + 1)},
        "pass_rates": rates,
        "generated_tokens": generated_tokens,
        "seconds": round(time.monotonic() - t0, 2),
    }


def _score_groups(rows: list[dict[str, Any]], samples: list[list[str]], pool: Any, mode: str) -> list[Any]:
    """EX outcome of every sample, prompt-major ``[N*k]``, by the execution reward's own scorer
    (``pool``: an ``ExecutorPool``, a ``PoolHandle``, or ``None`` for a fresh in-process one)."""
    from sqlcoach.rewards.common import completion_sql
    from sqlcoach.rewards.execution import ExecutionScorer, PoolHandle

    handle = pool if isinstance(pool, PoolHandle) else PoolHandle(pool, workers=0 if pool is None else None)
    sqls = [completion_sql(t, row.get("sql_names")) for row, group in zip(rows, samples) for t in group]
    golds = [row["gold_sql"] for row, group in zip(rows, samples) for _ in group]
    dbs = [row["db_path"] for row, group in zip(rows, samples) for _ in group]
    try:
        return ExecutionScorer(handle, mode=mode).score(sqls, golds, dbs)
    finally:
        if pool is None:
            handle.close()
