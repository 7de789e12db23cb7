"""Preference pairs mined by execution: no human labels, the database is the judge.

Run it: ``sqlcoach pairs mine --model M --data D --k 8 --out pairs.jsonl [--holdout 0.1]``.

For every question the policy samples ``k`` answers; each answer's SQL (``extract_sql``) is scored
by THE execution-accuracy scorer (``sqlcoach.metrics.ex.score_execution``: the reward is the
metric, no second comparer). Each sample then has one class: correct, or an error class from
``types.ERROR_CLASSES`` (``wrong_result``, ``exec_error``, ``parse_error``, ``timeout``,
``too_large``, ``no_sql``). A pair is (chosen, rejected):

* **chosen** (``chosen=``): ``"correct_or_gold"`` (default) takes a correct sample, else the gold
  SQL rendered as the template's completion (``render_completion``); ``"correct"`` keeps only
  questions with a correct sample (on-policy pairs only); ``"gold"`` always uses the gold.
  Among correct samples the *most common* SQL text (after whitespace collapsing) comes first:
  it is what the policy already believes most, so DPO sharpens the mode instead of chasing a
  rare lucky sample; further pairs of the same question take the next distinct correct samples.
* **rejected**: distinct wrong samples ranked by ``rejected_order`` (default: a wrong result
  first, since it is the "near miss" that teaches most, then an execution error, then a parse
  error, ...). Kinds not in ``rejected_order`` are never used, so
  ``rejected_order=("wrong_result",)`` restricts rejected answers to wrong results.
* ``pairs_per_question`` (default 1) keeps up to that many pairs per question, each with a
  different rejected sample.

Questions whose gold fails (``gold_error``) give no pair; they are counted in the stats.

**Without gold** (``scorer="verifier"`` with a trained verifier, ``sqlcoach pairs mine --scorer
verifier --verifier DIR``): each sample's SQL runs in the sandbox (each distinct one once) and the
verifier scores it reading the question, the schema text the policy saw and the result
(``sqlcoach.models.verifier``); the gold is never read, so unlabeled questions give pairs.

* **chosen**: the highest-scored sample whose SQL ran (ties: the earlier sample); none ran, no pair.
* **rejected**: a sample whose result differs from the chosen one's (another result group under the
  project's comparer, as the vote groups them, or a failure) and whose score is lower; a sample that
  failed to run is rejectable whatever its score, as selection never prefers it. Kinds:
  ``wrong_result`` (ran, a different result: wrong *by the verifier's judgment*, not by a gold)
  or the error class; ranked by ``rejected_order``, then lowest score first (the widest margin).
  Samples with the chosen one's result are never rejected.

Rows then carry ``chosen_kind="verifier"`` and the two scores (``chosen_score``, ``rejected_score``).

Rows are TRL's conversational preference format: ``prompt`` (messages), ``chosen`` and
``rejected`` (one assistant message each), plus ``id``, ``db_id``, ``db_path``, ``gold_sql``,
``question``, ``chosen_kind`` (``sample``/``gold``), ``rejected_kind`` (the error class),
``chosen_sql``, ``rejected_sql``. ``DPOTrainer`` and ``RewardTrainer`` read the first three.

Departures from the papers that mine execution-verified pairs (e.g. the DPO stages of
SENSE/ExCoT-style pipelines): one sampling round per question (no iterative re-mining), and the
gold fallback makes a question with no correct sample still useful (off-policy chosen text).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlcoach.errors import ConfigError, DataError
from sqlcoach.generate.predict import progress_bar
from sqlcoach.prompts.settings import PromptSettings
from sqlcoach.runtime.files import atomic_write
from sqlcoach.types import Example

CHOSEN_MODES = ("correct_or_gold", "correct", "gold")
#: what decides which sample is better: execution against the gold, or a trained verifier (no gold)
SCORERS = ("execution", "verifier")
#: Default preference among wrong samples: a wrong result teaches most, a missing SQL least.
REJECTED_ORDER: tuple[str, ...] = ("wrong_result", "exec_error", "parse_error", "timeout", "too_large", "no_sql")
#: Columns written for every pair, in this order.
PAIR_COLUMNS = (
    "prompt", "chosen", "rejected", "id", "db_id", "db_path", "gold_sql", "question",
    "chosen_kind", "rejected_kind", "chosen_sql", "rejected_sql",
)


@dataclass
class MineStats:
    """What mining found. ``share_correct`` is over all scored samples (gold errors excluded)."""

    questions: int = 0
    questions_with_pairs: int = 0
    pairs: int = 0
    gold_errors: int = 0
    samples: int = 0
    samples_correct: int = 0
    questions_any_correct: int = 0
    questions_all_correct: int = 0  # every sample correct: no rejected answer to pair with
    scorer: str = "execution"
    samples_ran: int = 0  # scorer "verifier": samples whose SQL ran without error (correctness is unknown)
    questions_none_ran: int = 0  # scorer "verifier": no sample ran, so no chosen answer
    chosen_sample: int = 0
    chosen_gold: int = 0
    by_rejected_kind: dict[str, int] = field(default_factory=dict)
    by_sample_class: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def share_correct(self) -> float:
        return self.samples_correct / self.samples if self.samples else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["share_correct"] = round(self.share_correct, 4)
        return d

    def table(self) -> str:
        """Plain-text table of the stats (what the CLI prints)."""
        rows = [
            ("questions", self.questions),
            ("questions with pairs", f"{self.questions_with_pairs} ({_pct(self.questions_with_pairs, self.questions)})"),
            ("pairs", self.pairs),
            ("  chosen = correct sample", self.chosen_sample),
            ("  chosen = gold", self.chosen_gold),
        ]
        rows += [(f"  rejected = {k}", v) for k, v in sorted(self.by_rejected_kind.items(), key=lambda kv: -kv[1])]
        if self.scorer == "verifier":  # no gold: what ran and what the verifier could rank
            rows[3] = ("  chosen = best verifier score", self.chosen_sample)
            del rows[4]
            rows += [("samples", self.samples),
                     ("samples that ran", f"{self.samples_ran} ({_pct(self.samples_ran, self.samples)})")]
            rows += [(f"  samples {k}", v) for k, v in sorted(self.by_sample_class.items(), key=lambda kv: -kv[1])]
            rows += [("questions where no sample ran (no pair)", self.questions_none_ran),
                     ("seconds", round(self.seconds, 1))]
        else:
            rows += [
                ("samples", self.samples),
                ("samples correct", f"{self.samples_correct} ({_pct(self.samples_correct, self.samples)})"),
            ]
            rows += [(f"  samples {k}", v) for k, v in sorted(self.by_sample_class.items(), key=lambda kv: -kv[1])]
            rows += [
                ("questions with a correct sample", self.questions_any_correct),
                ("questions all correct (no pair)", self.questions_all_correct),
                ("questions with gold error", self.gold_errors),
                ("seconds", round(self.seconds, 1)),
            ]
        width = max(len(str(k)) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _pct(a: int, b: int) -> str:
    return f"{100.0 * a / b:.1f}%" if b else "n/a"


def _norm(sql: str) -> str:
    return " ".join(sql.split())


def build_pairs_for_question(
    texts: Sequence[str],
    sqls: Sequence[str],
    classes: Sequence[str | None],
    *,
    gold_completion: str,
    chosen: str = "correct_or_gold",
    rejected_order: Sequence[str] = REJECTED_ORDER,
    pairs_per_question: int = 1,
) -> list[dict[str, str]]:
    """The pairs of one question from its samples (pure: no model, no database).

    ``texts[i]`` is sample i's raw completion, ``sqls[i]`` its extracted SQL and ``classes[i]``
    ``None`` when correct, else its error class. Returns dicts with ``chosen``, ``rejected`` (raw
    texts), ``chosen_kind``, ``rejected_kind``, ``chosen_sql``, ``rejected_sql``."""
    if chosen not in CHOSEN_MODES:
        raise ConfigError(f"chosen must be one of {CHOSEN_MODES}, got {chosen!r}")
    rank = {k: i for i, k in enumerate(rejected_order)}
    # correct samples: distinct SQL, most common first (ties: first seen)
    counts: Counter[str] = Counter()
    first: dict[str, int] = {}
    for i, c in enumerate(classes):
        if c is None:
            key = _norm(sqls[i])
            counts[key] += 1
            first.setdefault(key, i)
    correct = [first[k] for k, _ in sorted(counts.items(), key=lambda kv: (-kv[1], first[kv[0]]))]
    if chosen == "gold" or (chosen == "correct_or_gold" and not correct):
        chosen_list = [(gold_completion, "gold", "")]
    elif correct:
        chosen_list = [(texts[i], "sample", sqls[i]) for i in correct]
    else:
        return []
    # rejected samples: distinct raw text, by kind rank then sample order
    seen: set[str] = set()
    wrong: list[int] = []
    for i in sorted((i for i, c in enumerate(classes) if c is not None and c in rank), key=lambda i: (rank[classes[i]], i)):
        key = texts[i].strip()
        if key in seen or not key and classes[i] != "no_sql":
            continue
        seen.add(key)
        wrong.append(i)
    out = []
    for j, i in enumerate(wrong[:pairs_per_question]):
        ctext, ckind, csql = chosen_list[j % len(chosen_list)]
        if ctext.strip() == texts[i].strip():
            continue  # a gold completion identical to a wrong sample cannot happen unless the gold fails
        out.append(
            {"chosen": ctext, "rejected": texts[i], "chosen_kind": ckind, "rejected_kind": str(classes[i]),
             "chosen_sql": csql, "rejected_sql": sqls[i]}
        )
    return out


def build_pairs_by_score(
    texts: Sequence[str],
    sqls: Sequence[str],
    results: Sequence[Any],
    scores: Sequence[float],
    *,
    rejected_order: Sequence[str] = REJECTED_ORDER,
    pairs_per_question: int = 1,
) -> list[dict[str, Any]]:
    """The pairs of one question ranked by a verifier's ``scores`` (pure: no model, no database;
    the rules are the module docstring's "Without gold"). ``results[i]``: sample i's
    ``ExecResult`` (``None`` when it has no SQL). Returns dicts with ``chosen``, ``rejected`` (raw
    texts), ``chosen_kind`` (``"verifier"``), ``rejected_kind``, ``chosen_sql``, ``rejected_sql``,
    ``chosen_score``, ``rejected_score``."""
    from sqlcoach.execution.select import Candidates
    from sqlcoach.execution.vote import vote

    c = Candidates.of(sqls, results)
    ran = [i for i in range(len(sqls)) if c.ran(i)]
    if not ran:
        return []
    best = max(ran, key=lambda i: (scores[i], -i))
    group = vote(sqls, results).group_of

    def kind(i: int) -> str:
        if i in ran:
            return "wrong_result"
        return "no_sql" if not sqls[i] else str(getattr(results[i], "error", None) or "exec_error")

    rank = {k: j for j, k in enumerate(rejected_order)}
    others = [i for i in range(len(sqls)) if group[i] != group[best] or i not in ran]
    rejectable = [i for i in others if kind(i) in rank and (i not in ran or scores[i] < scores[best])]
    seen: set[str] = {texts[best].strip()}
    out = []
    for i in sorted(rejectable, key=lambda i: (rank[kind(i)], scores[i], i)):
        key = texts[i].strip()
        if key in seen:
            continue
        seen.add(key)
        out.append({"chosen": texts[best], "rejected": texts[i], "chosen_kind": "verifier", "rejected_kind": kind(i),
                    "chosen_sql": sqls[best], "rejected_sql": sqls[i], "chosen_score": float(scores[best]),
                    "rejected_score": float(scores[i])})
        if len(out) == pairs_per_question:
            break
    return out


def mine_pairs(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    k: int = 8,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_new_tokens: int = 256,
    prompt: PromptSettings | None = None,
    pool: Any = None,
    seed: int = 0,
    batch_size: int = 8,
    chunk_size: int = 64,
    chosen: str = "correct_or_gold",
    rejected_order: Sequence[str] = REJECTED_ORDER,
    pairs_per_question: int = 1,
    mode: str = "spider",
    progress: bool = True,
    show: int = 3,
    log: Callable[[str], None] = print,
    generate_fn: Callable[..., Any] | None = None,
    scorer: str = "execution",
    verifier: Any = None,
) -> tuple[list[dict[str, Any]], MineStats]:
    """Sample ``k`` answers per example, execute them, and pair a correct one with a wrong one;
    with ``scorer="verifier"`` and a loaded ``verifier`` (``models.verifier.Verifier`` or anything
    with its ``score``), pair the best-scored with a lower-scored one whose result differs, the
    gold never read (``chosen`` then must stay at its default).

    Returns ``(pairs, stats)``; see the module docstring for the rules. ``pool`` is an
    ``ExecutorPool`` (one is created and closed here when ``None``); ``generate_fn`` replaces HF
    generation (same signature as ``sqlcoach.generate.hf.generate_texts``; tests pass a fake).
    Work goes in chunks of ``chunk_size`` questions (generate, then execute). ``show`` pairs are
    logged (question, chosen SQL, rejected SQL and kind) so that a reader sees what DPO learns."""
    import time

    from sqlcoach.prompts.builder import PromptBuilder

    _check_mine_args(k, chosen, pairs_per_question, rejected_order, temperature, log)
    if scorer not in SCORERS:
        raise ConfigError(f"scorer must be one of {', '.join(SCORERS)}, got {scorer!r}")
    if (scorer == "verifier") != (verifier is not None):
        raise ConfigError("the verifier scorer needs a trained verifier (--verifier DIR), and a verifier is read "
                          "only by --scorer verifier")
    if scorer == "verifier" and chosen != "correct_or_gold":
        raise ConfigError(f"--chosen {chosen} reads the gold; with --scorer verifier the chosen answer is the "
                          "best-scored sample (leave --chosen out)")
    # Unknown template or schema style: a clear error before any generation.
    builder = PromptBuilder.from_settings(prompt or PromptSettings())
    if generate_fn is None:
        from sqlcoach.generate.hf import generate_texts as generate_fn
    own_pool = pool is None
    if own_pool:
        from sqlcoach.execution.pool import ExecutorPool

        pool = ExecutorPool(min(2, os.cpu_count() or 1))
    t0 = time.monotonic()
    # Pair mining's rule (PromptBuilder.messages(lenient=True)): an absent or unreadable database
    # gives an empty schema (its gold fails too and the question is skipped), with one warning per
    # database, all read up front; a template error is not caught.
    for ex in examples:
        builder.lenient_schema_text(ex)
    stats = MineStats(scorer=scorer)
    pairs: list[dict[str, Any]] = []
    bar = progress_bar(len(examples), f"mine pairs (k={k})", unit="q") if progress else None
    try:
        for exs, messages, outs, sqls, outcomes in sample_and_score(
            model, tokenizer, examples, builder, generate_fn, pool, k=k, temperature=temperature, top_p=top_p,
            max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed, chunk_size=chunk_size, mode=mode,
            score=_score_samples if scorer == "execution" else _run_samples,
        ):
            if scorer == "verifier":  # every sample of the chunk in one call (each distinct text scored once)
                scores = verifier.score([(ex.question, builder.lenient_schema_text(ex), s, outcomes[q * k + j])
                                         for q, ex in enumerate(exs) for j, s in enumerate(sqls[q])])
            for q, (ex, msgs) in enumerate(zip(exs, messages)):
                found = (_question_pairs(ex, msgs, outs[q], sqls[q], outcomes[q * k : (q + 1) * k], stats, template=builder.template,
                                         chosen=chosen, rejected_order=rejected_order, pairs_per_question=pairs_per_question)
                         if scorer == "execution" else
                         _verifier_pairs(ex, msgs, outs[q], sqls[q], outcomes[q * k : (q + 1) * k],
                                         scores[q * k : (q + 1) * k], stats, rejected_order=rejected_order,
                                         pairs_per_question=pairs_per_question))
                for row in found:
                    pairs.append(row)
                    if len(pairs) <= show:
                        log(
                            f"[pair {len(pairs)}] {ex.db_id}: {ex.question}\n"
                            f"  chosen ({row['chosen_kind']}): {_norm(row['chosen_sql'])[:200]}\n"
                            f"  rejected ({row['rejected_kind']}): {_norm(row['rejected_sql'])[:200] or '(no SQL)'}"
                        )
            if bar is not None:
                bar.update(len(exs))
    finally:
        if bar is not None:
            bar.close()
        if own_pool:
            pool.close()
    stats.seconds = time.monotonic() - t0
    return pairs, stats


def sample_and_score(
    model: Any, tokenizer: Any, examples: Sequence[Example], builder: Any, generate_fn: Callable[..., Any], pool: Any, *,
    k: int, temperature: float, top_p: float, max_new_tokens: int, batch_size: int, seed: int, chunk_size: int,
    mode: str = "spider", score: Callable[..., Any] | None = None,
) -> Any:
    """Chunk by chunk of ``chunk_size`` examples: sample ``k`` answers per example with the
    builder's prompts (``messages(ex, lenient=True)``) and score every sample by THE EX scorer
    (``score``, default ``_score_samples``; ``_run_samples`` only executes them, for a scorer
    that needs no gold).

    Yields ``(examples, messages, texts [Q][k], sqls [Q][k], outcomes [Q*k] question-major)``:
    the one sampler behind pair mining and the verifier's training data (``train.verifier``)."""
    from sqlcoach.prompts.chat import to_text

    for start in range(0, len(examples), chunk_size):
        exs = list(examples[start : start + chunk_size])
        messages = [builder.messages(ex, lenient=True) for ex in exs]
        gen = generate_fn(
            model, tokenizer, [to_text(m, tokenizer) for m in messages], n=k, temperature=temperature, top_p=top_p,
            max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed + start,
        )
        outs: list[list[str]] = gen.texts  # [Q][k]
        sqls, outcomes = (score or _score_samples)(exs, outs, builder.template, pool, mode)
        yield exs, messages, outs, sqls, outcomes


def _check_mine_args(k: int, chosen: str, pairs_per_question: int, rejected_order: Sequence[str], temperature: float,
                     log: Callable[[str], None]) -> None:
    from sqlcoach.types import ERROR_CLASSES

    if k < 1:
        raise ConfigError(f"k must be >= 1 (samples per question), got {k}")
    if chosen not in CHOSEN_MODES:
        raise ConfigError(f"chosen must be one of {CHOSEN_MODES}, got {chosen!r}")
    if pairs_per_question < 1:
        raise ConfigError(f"pairs_per_question must be >= 1, got {pairs_per_question}")
    bad = [r for r in rejected_order if r not in ERROR_CLASSES or r == "gold_error"]
    if bad or not rejected_order:
        raise ConfigError(
            f"rejected_order must list error classes from {[c for c in ERROR_CLASSES if c != 'gold_error']}, got {list(rejected_order)}"
        )
    if chosen != "gold" and k == 1 and temperature <= 0:
        log("warning: k=1 at temperature 0 gives one greedy answer per question: few pairs")


def _score_samples(exs: list[Example], outs: list[list[str]], template: str, pool: Any, mode: str) -> tuple[list[list[str]], list[Any]]:
    """The SQL of every sample (placeholders mapped back) ``[Q][k]`` and its EX outcome ``[Q*k]``
    (question-major), scored by THE execution-accuracy scorer."""
    from sqlcoach.metrics.evaluate import example_database_files
    from sqlcoach.metrics.ex import ExItem, score_execution

    sqls = _sample_sqls(exs, outs, template)
    items = [ExItem(pred=s, gold=ex.gold_sql or "", files=example_database_files(ex, mode)) for ex, row in zip(exs, sqls) for s in row]
    return sqls, score_execution(items, pool=pool, mode=mode)


def _sample_sqls(exs: list[Example], outs: list[list[str]], template: str) -> list[list[str]]:
    """The SQL of every sample ``[Q][k]`` (``extract_sql``, placeholders mapped back)."""
    from sqlcoach.prompts.templates import restore_sql
    from sqlcoach.sql.extract import extract_sql

    return [[restore_sql((extract_sql(t) or "").strip(), ex, template) for t in row] for ex, row in zip(exs, outs)]


def _run_samples(exs: list[Example], outs: list[list[str]], template: str, pool: Any, mode: str) -> tuple[list[list[str]], list[Any]]:
    """The SQL of every sample ``[Q][k]`` and its ``ExecResult`` ``[Q*k]`` (question-major; ``None``
    for an empty SQL or a question without a database), each distinct (database, SQL) run once in
    the sandbox. No gold is read. ``mode`` is unused (the signature of ``_score_samples``)."""
    sqls = _sample_sqls(exs, outs, template)
    jobs = sorted({(str(ex.db_path), s) for ex, row in zip(exs, sqls) if ex.db_path for s in row if s})
    ran = dict(zip(jobs, pool.run(jobs))) if jobs else {}
    return sqls, [ran.get((str(ex.db_path), s)) if ex.db_path and s else None for ex, row in zip(exs, sqls) for s in row]


def _verifier_pairs(ex: Example, msgs: list[dict], outs: list[str], sqls: list[str], results: list[Any],
                    scores: list[float], stats: MineStats, *, rejected_order: Sequence[str],
                    pairs_per_question: int) -> list[dict[str, Any]]:
    """The pair rows of one question ranked by the verifier (``build_pairs_by_score``); ``stats`` updated."""
    stats.questions += 1
    stats.samples += len(sqls)
    ran = 0
    for s, r in zip(sqls, results):
        key = "ran" if s and r is not None and r.error is None else ("no_sql" if not s else str(getattr(r, "error", None)))
        stats.by_sample_class[key] = stats.by_sample_class.get(key, 0) + 1
        ran += key == "ran"
    stats.samples_ran += ran
    stats.questions_none_ran += ran == 0
    found = build_pairs_by_score(outs, sqls, results, scores, rejected_order=rejected_order,
                                 pairs_per_question=pairs_per_question)
    stats.questions_with_pairs += bool(found)
    rows = []
    for p in found:
        rows.append({**_pair_row(ex, msgs, p, p["chosen_sql"]),
                     "chosen_score": p["chosen_score"], "rejected_score": p["rejected_score"]})
        stats.pairs += 1
        stats.chosen_sample += 1
        stats.by_rejected_kind[p["rejected_kind"]] = stats.by_rejected_kind.get(p["rejected_kind"], 0) + 1
    return rows


def _pair_row(ex: Example, msgs: list[dict], p: dict[str, Any], chosen_sql: str) -> dict[str, Any]:
    """One pair as a row (``PAIR_COLUMNS``): TRL's conversational preference columns and what people read."""
    return {
        "prompt": msgs,
        "chosen": [{"role": "assistant", "content": p["chosen"]}],
        "rejected": [{"role": "assistant", "content": p["rejected"]}],
        "id": ex.id, "db_id": ex.db_id, "db_path": ex.db_path or "", "gold_sql": ex.gold_sql or "",
        "question": ex.question, "chosen_kind": p["chosen_kind"], "rejected_kind": p["rejected_kind"],
        "chosen_sql": chosen_sql, "rejected_sql": p["rejected_sql"],
    }


def _question_pairs(ex: Example, msgs: list[dict], outs: list[str], sqls: list[str], res: list[Any], stats: MineStats, *,
                    template: str, chosen: str, rejected_order: Sequence[str], pairs_per_question: int) -> list[dict[str, Any]]:
    """The pair rows of one question from its ``k`` samples and their outcomes; ``stats`` updated."""
    from sqlcoach.prompts.templates import render_completion

    k = len(res)
    stats.questions += 1
    if any(o.error == "gold_error" for o in res) or not ex.gold_sql:
        stats.gold_errors += 1
        return []
    classes = [None if o.ex else (o.error or "wrong_result") for o in res]
    n_ok = sum(c is None for c in classes)
    stats.samples += k
    stats.samples_correct += n_ok
    stats.questions_any_correct += n_ok > 0
    stats.questions_all_correct += n_ok == k
    for c in classes:
        key = "correct" if c is None else c
        stats.by_sample_class[key] = stats.by_sample_class.get(key, 0) + 1
    found = build_pairs_for_question(
        outs, sqls, classes, gold_completion=render_completion(ex.gold_sql, template, example=ex),
        chosen=chosen, rejected_order=rejected_order, pairs_per_question=pairs_per_question,
    )
    stats.questions_with_pairs += bool(found)
    rows = []
    for p in found:
        rows.append(_pair_row(ex, msgs, p, p["chosen_sql"] or ex.gold_sql))
        stats.pairs += 1
        stats.by_rejected_kind[p["rejected_kind"]] = stats.by_rejected_kind.get(p["rejected_kind"], 0) + 1
        if p["chosen_kind"] == "gold":
            stats.chosen_gold += 1
        else:
            stats.chosen_sample += 1
    return rows


def split_holdout(
    pairs: Sequence[dict[str, Any]], fraction: float, *, by: str = "question", seed: int = 0
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(train, held_out)``: a deterministic split that never puts one question's pairs (``by=
    "question"``) or one database's pairs (``by="database"``) on both sides.

    Groups are ordered by a hash of (seed, group key) and the first ``round(fraction * groups)``
    are held out (at least one when ``fraction > 0`` and there are two or more groups), so the
    split depends on the keys only, not on the order of the rows or on Python's hash seed."""
    if not 0 <= fraction < 1:
        raise ConfigError(f"holdout fraction must be in [0, 1), got {fraction}")
    if by not in ("question", "database"):
        raise ConfigError(f"holdout split must be by 'question' or 'database', got {by!r}")
    if fraction == 0 or not pairs:
        return list(pairs), []

    def key(p: dict[str, Any]) -> str:
        return str(p.get("db_id", "")) if by == "database" else f"{p.get('db_id', '')}\x1f{p.get('id', '')}\x1f{p.get('question', '')}"

    groups = sorted({key(p) for p in pairs}, key=lambda g: hashlib.sha256(f"{seed}\x1e{g}".encode()).hexdigest())
    n_out = round(fraction * len(groups))
    if n_out == 0 and len(groups) > 1:
        n_out = 1
    n_out = min(n_out, len(groups) - 1)
    held = set(groups[:n_out])
    train = [p for p in pairs if key(p) not in held]
    evals = [p for p in pairs if key(p) in held]
    return train, evals


def write_pairs(path: str | Path, pairs: Sequence[dict[str, Any]]) -> Path:
    """Write JSONL atomically (temporary file + rename); returns the path."""
    return atomic_write(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in pairs))


def read_pairs(path: str | Path) -> list[dict[str, Any]]:
    """Read preference rows; every row needs ``prompt``, ``chosen`` and ``rejected``.

    Raises ``DataError`` naming the file and line of the first bad row."""
    p = Path(path)
    if not p.is_file():
        raise DataError("preference pairs file not found", path=str(p))
    rows = []
    with p.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"line {lineno}: not JSON ({exc.msg})", path=str(p)) from None
            missing = [c for c in ("prompt", "chosen", "rejected") if c not in row]
            if not isinstance(row, dict) or missing:
                raise DataError(f"line {lineno}: a preference row needs prompt, chosen and rejected (missing {missing})", path=str(p))
            rows.append(row)
    return rows


#: The columns TRL's preference trainers read; everything else in a pairs file is for people.
PREF_COLUMNS = ("prompt", "chosen", "rejected")


def preference_rows(path: str, max_pairs: int | None = None) -> list[dict[str, Any]]:
    """``prompt``/``chosen``/``rejected`` rows of a pairs JSONL (first ``max_pairs``)."""
    rows = [{k: r[k] for k in PREF_COLUMNS} for r in read_pairs(path)]
    if max_pairs is not None:
        rows = rows[:max_pairs]
    if not rows:
        raise DataError("no preference pair in the file (did mining find any? see its stats)", path=path)
    return rows


def pair_rows(cfg: Any, rows: list[dict[str, Any]] | None, eval_rows: list[dict[str, Any]] | None,
              *, eval_all_columns: bool = False) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """The training pairs (given, or read from ``cfg.pairs_path``) cut to ``max_pairs``, and the
    held-out pairs (given, or read from ``eval_pairs_path``; with ``eval_all_columns`` every
    column of the file, for per-kind accuracy)."""
    if rows is None:
        rows = preference_rows(cfg.pairs_path, cfg.max_pairs)
    elif cfg.max_pairs is not None:
        rows = rows[: cfg.max_pairs]
    if eval_rows is None and cfg.eval_pairs_path:
        if eval_all_columns:
            eval_rows = read_pairs(cfg.eval_pairs_path)
        else:
            eval_rows = preference_rows(cfg.eval_pairs_path)
    if not rows:
        raise DataError("no preference pair to train on", path=cfg.pairs_path)
    return rows, eval_rows
