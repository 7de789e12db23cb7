"""``predict --agent``: every example answered by a multi-turn trajectory (``sqlcoach.generate.agent``).

``predict_agent(model, tokenizer, examples, out_path, config=AgentConfig(...))`` writes the same
two files as ``predict``:

* ``out_path`` (Spider format): each trajectory's final answer on one line (``""`` when it gave
  none), so ``sqlcoach evaluate`` scores it like any prediction file;
* ``out_path.with_suffix(".jsonl")``: one record per example with ``sql`` (the answer), ``raw``
  (the whole completion, observations included), ``turns`` (each turn's kind, text, SQL as run,
  observation, error class, generated tokens, execution seconds), ``finish`` (``solution``,
  ``turn_limit``, ``observation_budget``, ``length``), ``queries`` and the seconds spent generating
  and executing.

The prompt is the model's usual prediction prompt with the agent instruction appended to the user
message (``sqlcoach.prompts.agent``); with ``config.protocol == "tools"`` it is rendered with the
``run_sql`` tool by the model's chat template (refused when the template cannot carry tool calls). Greedy unless ``temperature > 0``; no resume (a run is
written afresh). Queries run in one ``ExecutorPool`` (``workers`` processes; 0 = in this process).
``recoveries`` needs the gold and so runs at scoring time (``predict`` calls it when the data has
gold SQL).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlcoach.execution.select import DEFAULT_SELECTOR, Selector
from sqlcoach.generate.agent import AgentConfig, SqlAgentEnv, TurnProtocol, make_protocol, run_agent
from sqlcoach.prompts.settings import PromptSettings
from sqlcoach.runtime.files import atomic_write
from sqlcoach.types import Example


@dataclass
class AgentSummary:
    """What an agent run did: the throughput fields of ``PredictSummary`` plus the trajectories'."""

    examples: int
    predicted_now: int
    seconds: float
    generated_tokens: int
    sql_path: str
    jsonl_path: str
    max_turns: int
    mean_turns: float
    queries_run: int
    answered: int
    finish: dict[str, int] = field(default_factory=dict)
    generation_seconds: float = 0.0
    execution_seconds: float = 0.0
    recoveries: int | None = None
    first_query_failed: int | None = None
    resumed: int = 0
    prompt_tokens: int = 0
    #: prompt and history tokens read from the shared-prefix cache instead of encoded again, over all rounds
    cached_prompt_tokens: int = 0
    examples_per_s: float = 0.0
    tokens_per_s: float = 0.0

    def line(self) -> str:
        ends = ", ".join(f"{k} {v}" for k, v in sorted(self.finish.items()))
        rec = ""
        if self.recoveries is not None:
            rec = (f"; recoveries {self.recoveries} (first query failed, final answer correct) of "
                   f"{self.first_query_failed} trajectories whose first query failed")
        return (
            f"agent: {self.predicted_now} trajectories in {self.seconds:.1f}s (generation {self.generation_seconds:.1f}s, "
            f"execution {self.execution_seconds:.2f}s); mean turns {self.mean_turns:.2f} of {self.max_turns}, "
            f"{self.queries_run} queries run, {self.answered} answered; ends: {ends}{rec}"
        )


def agent_prompts(examples: Sequence[Example], tokenizer: Any, builder: Any, max_turns: int,
                  instruction: bool = True, protocol: TurnProtocol | None = None) -> list[str]:
    """Each example's prediction prompt (chat-formatted text by ``protocol``, default the tag
    protocol; the tool protocol hands the template the ``run_sql`` tool), with the protocol's
    instruction unless ``instruction=False`` (a model trained on agent rows without it, or one that
    never learnt to read prose: the tiny demo models)."""
    from sqlcoach.generate.agent import TagProtocol

    protocol = protocol or TagProtocol()
    return [protocol.prompt(builder.prediction_messages(ex), tokenizer, max_turns, instruction) for ex in examples]


def env_for(ex: Example, config: AgentConfig, template: str, executor: Any = None, length: Any = None,
            protocol: TurnProtocol | None = None) -> SqlAgentEnv:
    """The environment of one example: its database, and its template's placeholder mapping both
    ways (the model's SQL to real names before it runs; with ``config.observation_names ==
    "template"``, the default, the observation's real names to placeholders). ``protocol``: the
    run's ``make_protocol(config, tokenizer)`` (default: the tag protocol)."""
    from sqlcoach.prompts.templates import get_template, placeholder_sql, restore_sql

    encode = None
    if get_template(template).anonymize and ex.db_path:
        encode = lambda text: placeholder_sql(text, ex, template)  # noqa: E731 - real names -> placeholders
    return SqlAgentEnv(ex.db_path, config, executor=executor, length=length, encode=encode,
                       restore=lambda s: restore_sql(s, ex, template), protocol=protocol)


def _record(index: int, ex: Example, trajs: list[dict[str, Any]], pool: Any, selector: Any,
            schema_text: str = "") -> dict[str, Any]:
    """The JSONL record of one example: its one trajectory, or with several the one whose final
    answer ``selector`` chose (each distinct answer executed once; a learned selector reads
    ``schema_text`` beside the question and each answer's result), every trajectory kept."""
    from sqlcoach.execution.select import Candidates

    rec: dict[str, Any] = {"index": index, "id": ex.id, "db_id": ex.db_id, "agent": True}
    if len(trajs) == 1:
        rec.update(trajs[0])
        return rec
    answers = [t["sql"] for t in trajs]
    jobs = sorted({a for a in answers if a}) if ex.db_path else []
    ran = dict(zip(jobs, pool.run([(str(ex.db_path), a) for a in jobs]))) if jobs else {}
    v = selector(Candidates.of(answers, [ran.get(a) for a in answers], question=ex.question, schema_text=schema_text))
    rec.update(trajs[v.chosen] if v.chosen >= 0 else trajs[0])
    rec.update(sql=v.sql, trajectories=trajs, votes=list(v.votes), chosen=v.chosen, fallback=v.fallback, select=v.rule)
    if v.scores is not None:  # a learned selector: every trajectory's score and the chosen one's
        rec["scores"] = list(v.scores)
        rec["score"] = v.scores[v.chosen] if v.chosen >= 0 else None
    return rec


def predict_agent(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    out_path: str | Path,
    *,
    config: AgentConfig = AgentConfig(),
    temperature: float = 0.0,
    top_p: float = 1.0,
    batch_size: int = 8,
    max_new_tokens: int = 256,
    max_total_tokens: int = 1024,
    prompt: PromptSettings | None = None,
    workers: int | None = 1,
    chunk_size: int = 64,
    seed: int = 0,
    progress: bool = True,
    instruction: bool = True,
    n: int = 1,
    select: str | Selector = DEFAULT_SELECTOR,
    prefix_cache: bool | None = None,
) -> AgentSummary:
    """Run one trajectory per example and write the files (module docstring). Observation
    budgets are counted in the tokenizer's tokens. ``prompt``: the prompt settings (default
    ``PromptSettings()``; a model's own are ``prompts.recipe.resolve_prompt(model).prompt``).
    ``instruction``: append the agent instruction to the prompt (``agent_prompts``).

    ``n > 1`` (with ``temperature > 0``): self-consistency over whole trajectories: ``n`` per
    example, their final answers executed once each and the answer chosen by ``select``: the name
    of a rule of ``sqlcoach.execution.select``, or a ``Selector`` such as a trained verifier's
    (``generate.verifier_select.build_selector``; it reads each final answer's result, the question
    and the schema text). The record holds the chosen trajectory's fields, every trajectory under
    ``trajectories``, and ``votes``/``chosen``/``select`` (a verifier adds ``scores`` and the chosen
    one's ``score``). The summary counts every trajectory.

    ``prefix_cache`` (``generate.prefix_cache.prefix_cache_for``): each round's batches share an
    encoded prompt prefix (system prompt + schema), one cache kept for the whole run. ``None``
    (default): on for greedy decoding, whose trajectories it leaves unchanged; off when sampling.
    ``True``/``False``: on/off whatever the decoding."""
    from sqlcoach.errors import ConfigError
    from sqlcoach.execution.select import get_selector

    if n < 1:
        raise ConfigError(f"n must be >= 1 (trajectories per question), got {n}")
    selector = get_selector(select) if isinstance(select, str) else select
    protocol = make_protocol(config, tokenizer)  # tools: refused here when the template cannot carry them
    reads_schema = n > 1 and getattr(selector, "reads_schema", False)
    from sqlcoach.execution.pool import ExecutorPool
    from sqlcoach.execution.render import token_length
    from sqlcoach.generate.predict import append_records, progress_bar, records_path, sql_file_text
    from sqlcoach.generate.prefix_cache import prefix_cache_for
    from sqlcoach.prompts.builder import PromptBuilder

    # the agent's prompt is single-turn: a multi-turn example's history setting does not apply
    builder = PromptBuilder.from_settings(prompt or PromptSettings())
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    jsonl = records_path(out)
    for old in (out, jsonl):
        old.unlink(missing_ok=True)
    length = token_length(tokenizer)
    reuse = prefix_cache_for(model, prefix_cache, sampling=temperature > 0)
    records: list[dict[str, Any]] = []
    t0 = time.monotonic()
    gen_tokens = prompt_tokens = 0
    bar = progress_bar(len(examples), f"predict --agent (turns <= {config.max_turns})") if progress and examples else None
    with ExecutorPool(workers, config.limits()) as pool:
        for start in range(0, len(examples), chunk_size):
            exs = list(examples[start : start + chunk_size])
            rep = [ex for ex in exs for _ in range(n)]  # n trajectories per example, side by side
            envs = [env_for(ex, config, builder.template, pool, length, protocol) for ex in rep]
            prompts = agent_prompts(rep, tokenizer, builder, config.max_turns, instruction, protocol)
            rolls = run_agent(model, tokenizer, prompts, envs, max_new_tokens=max_new_tokens,
                              max_total_tokens=max_total_tokens, temperature=temperature, top_p=top_p,
                              batch_size=batch_size, seed=seed + start, executor=pool, prefix_cache=reuse)
            prompt_tokens += sum(len(r.prompt_ids) for r in rolls)
            chunk = []
            for k, ex in enumerate(exs):
                trajs = [_trajectory(envs[k * n + j], rolls[k * n + j], tokenizer) for j in range(n)]
                gen_tokens += sum(t["generated_tokens"] for t in trajs)
                schema = builder.lenient_schema_text(ex) if reads_schema else ""
                chunk.append(_record(start + k, ex, trajs, pool, selector, schema))
            append_records(jsonl, chunk)
            records += chunk
            if bar is not None:
                bar.update(len(exs))
    if bar is not None:
        bar.close()
    secs = time.monotonic() - t0
    atomic_write(out, sql_file_text(examples, [r["sql"] for r in records]))
    return summarize(records, config.max_turns, seconds=secs, sql_path=str(out), jsonl_path=str(jsonl),
                     generated_tokens=gen_tokens, prompt_tokens=prompt_tokens,
                     cached_prompt_tokens=reuse.cached_tokens if reuse is not None else 0)


def _trajectory(env: SqlAgentEnv, roll: Any, tokenizer: Any) -> dict[str, Any]:
    """One trajectory's fields as the JSONL keeps them."""
    return {
        "sql": env.answer or "",
        "raw": tokenizer.decode(roll.completion_ids, skip_special_tokens=True),
        "finish": env.finish, "turns": [t.as_json() for t in env.turns], "queries": env.queries_run,
        "generated_tokens": sum(roll.env_mask), "observation_tokens": len(roll.env_mask) - sum(roll.env_mask),
        "generation_seconds": round(roll.gen_seconds, 4), "execution_seconds": round(roll.exec_seconds, 4),
    }


def summarize(records: Sequence[dict[str, Any]], max_turns: int, *, seconds: float, sql_path: str,
              jsonl_path: str, generated_tokens: int, prompt_tokens: int = 0,
              cached_prompt_tokens: int = 0) -> AgentSummary:
    """The summary of agent records (as ``predict_agent`` writes them): turns, queries, ends and
    seconds over every trajectory (all ``n`` of a self-consistency record), answers per record."""
    n = len(records)
    trajs = [t for r in records for t in (r.get("trajectories") or [r])]
    finish: dict[str, int] = {}
    for t in trajs:
        finish[str(t.get("finish"))] = finish.get(str(t.get("finish")), 0) + 1
    return AgentSummary(
        examples=n, predicted_now=n, seconds=round(seconds, 3), generated_tokens=generated_tokens,
        prompt_tokens=prompt_tokens, cached_prompt_tokens=cached_prompt_tokens,
        sql_path=sql_path, jsonl_path=jsonl_path, max_turns=max_turns,
        mean_turns=round(sum(len(t["turns"]) for t in trajs) / len(trajs), 3) if trajs else 0.0,
        queries_run=sum(int(t["queries"]) for t in trajs),
        answered=sum(1 for r in records if r["sql"]), finish=finish,
        generation_seconds=round(sum(t["generation_seconds"] for t in trajs), 3),
        execution_seconds=round(sum(t["execution_seconds"] for t in trajs), 3),
        examples_per_s=round(n / seconds, 3) if seconds > 0 else 0.0,
        tokens_per_s=round(generated_tokens / seconds, 2) if seconds > 0 else 0.0,
    )


def failed_first_query(record: dict[str, Any]) -> bool:
    """Whether a trajectory's first turn ran a query that failed (an error class): the trajectories
    a recovery is counted among."""
    turns = record.get("turns") or []
    return bool(turns) and turns[0].get("kind") == "sql" and turns[0].get("error") is not None


def first_answer(record: dict[str, Any]) -> str:
    """The SQL a trajectory committed to first: its first turn's query (run or not), or its final
    answer when no turn carried SQL before it. Scoring these beside the final answers says what the
    turns after the first query added or lost."""
    first = next((t.get("sql") for t in record.get("turns") or [] if t.get("sql")), None)
    return first or record.get("sql") or ""


def recoveries(records: Sequence[dict[str, Any]], examples: Sequence[Example], pool: Any,
               mode: str = "spider") -> tuple[int, int]:
    """``(recovered, first_failed)``: of the trajectories whose first turn ran a query that failed
    (an error class: exec_error, timeout, ...), how many end with a final answer that is correct
    under execution accuracy (``metrics.ex.score_execution``, the same EX ``evaluate`` reports).
    Needs gold SQL; examples without gold or database are left out of both counts."""
    from sqlcoach.metrics.ex import ExItem, score_execution

    failed = [r for r in records if failed_first_query(r)
              and examples[r["index"]].gold_sql and examples[r["index"]].db_path]
    items = [ExItem(r["sql"] or "", str(examples[r["index"]].gold_sql), (str(examples[r["index"]].db_path),))
             for r in failed]
    outcomes = score_execution(items, pool=pool, mode=mode) if items else []
    return sum(1 for o in outcomes if o.ex), len(failed)
