"""The RL layer GRPO and PPO share (and the RL recipes that come next): one executor pool, one
task, one way to build the prompt rows, one reward list, one sample-row builder, one reward-curve
shape. A recipe keeps only what is its own (TRL's ``GRPOTrainer``; PPO's value head and loop).

* ``rl_pool(cfg)``: the ``ExecutorPool`` every SQL of the run goes through (rewards, gold
  curation, the pass-rate filter), with ``reward_timeout`` seconds per query;
* ``rl_task(cfg, pool)``: the configured ``tasks.Task`` (``RLFields.task``) on the run's prompt
  settings;
* ``prompt_rows(cfg, task, ...)``: examples -> shuffled with ``seed`` -> cut to ``max_examples``
  -> the task's training rows -> gold curation (when the task needs gold and ``curate_gold``) ->
  the start policy's pass-rate filter (``pass_rate_k``); returns ``(rows, curation report)``;
* ``rl_rewards(cfg, pool, extra)``: the configured rewards, the reward model, then ``extra``;
* ``outcome_source(rewards)``: the reward whose execution outcomes the sample log and DAPO's
  dynamic sampling read (``rewards.base.OutcomeSource``), or ``None``;
* ``sample_rows(...)``: the rows ``train.samples.SampleLog`` writes, for both recipes;
* ``RewardPoint``: the one shape of ``reward_curve`` in a run's summary.
"""

from __future__ import annotations

import random
from typing import Any, Callable, TypedDict

from sqlcoach.config import RLFields
from sqlcoach.errors import ConfigError, DataError
from sqlcoach.generate.base import GenerateFn
from sqlcoach.rewards.base import OutcomeSource, RewardFn
from sqlcoach.tasks import Task


class RewardPoint(TypedDict, total=False):
    """One entry of a run's ``reward_curve`` (``summary.json``): the step and the mean reward of
    that step's completions; recipes add their own keys (GRPO each component's mean and
    ``<name>/ex``; PPO its whole log record)."""

    step: int
    reward: float


def rl_pool(cfg: RLFields) -> Any:
    """The run's ``ExecutorPool``: ``reward_workers`` processes, ``reward_timeout`` s per query."""
    from sqlcoach.execution.pool import ExecutorPool
    from sqlcoach.execution.sandbox import Limits

    return ExecutorPool(workers=cfg.reward_workers, limits=Limits(timeout=cfg.reward_timeout))


def rl_task(cfg: Any, pool: Any) -> Task:
    """The task ``cfg.task`` on the prompt settings of ``cfg`` (after ``with_model_prompt``)."""
    from sqlcoach.prompts.builder import PromptBuilder
    from sqlcoach.prompts.settings import PromptSettings
    from sqlcoach.tasks import build_task

    builder = PromptBuilder.from_settings(PromptSettings.of(cfg))
    return build_task(cfg.task, builder, pool=pool)


def _train_rows(cfg: Any, task: Task, examples: list[Any] | None, log: Callable[[str], None]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The task's rows of the examples (loaded when not given), shuffled with ``seed`` and cut to
    ``max_examples`` first: one rule for every RL recipe."""
    if examples is None:
        from sqlcoach.data import load_examples

        examples = load_examples(cfg.data_kind, cfg.data_path, cfg.split)
    examples = list(examples)
    random.Random(cfg.seed).shuffle(examples)
    if cfg.max_examples is not None:
        examples = examples[: cfg.max_examples]
    rows = task.train_rows(examples, log=log)
    return rows, {"examples": len(examples), "rows": len(rows)}


def prompt_rows(cfg: Any, task: Task, *, pool: Any, log: Callable[[str], None], examples: list[Any] | None = None,
                rows: list[dict[str, Any]] | None = None, model: Any = None, tokenizer: Any = None,
                generate: GenerateFn | None = None,
                on_rows: Callable[[list[dict[str, Any]]], None] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The prompt rows of an RL run and how they were chosen: ``(rows, {"build", "gold", "pass_rate"})``.

    ``rows`` (ready rows) replaces loading and building (cut to ``max_examples``; curation still
    applies); ``examples`` replaces loading. Gold curation runs when the task needs gold and
    ``curate_gold`` is set; the pass-rate filter with ``pass_rate_k`` samples the start policy
    (``model``, ``tokenizer``; ``generate``: another sampler with ``generate_texts``' signature),
    each process its share of the prompts. ``on_rows(rows)`` sees the rows before the pass-rate
    filter (multi-turn GRPO's rollout registers them there: its ``generate`` needs their databases).
    ``DataError`` when no row is left."""
    from sqlcoach.train.rl_data import curate_gold, sharded_pass_rate_filter

    build_report: dict[str, Any] = {}
    if rows is None:
        rows, build_report = _train_rows(cfg, task, examples, log)
    elif cfg.max_examples is not None:
        rows = rows[: cfg.max_examples]
    gold_report = pass_report = None
    if cfg.curate_gold and task.needs_gold:
        rows, gold_report = curate_gold(rows, pool=pool)
        log(f"gold curation: kept {gold_report['kept']} of {gold_report['in']} prompts; dropped {gold_report['dropped']}")
    if on_rows is not None:
        on_rows(rows)
    if cfg.pass_rate_k:
        head = rows if cfg.pass_rate_max_prompts is None else rows[: cfg.pass_rate_max_prompts]
        # each rank samples its share of the prompts (rows[r::N]) and the pass rates are gathered
        rows, pass_report = sharded_pass_rate_filter(
            head, model=model, tokenizer=tokenizer, generate=generate, k=cfg.pass_rate_k, drop_always=cfg.drop_always,
            drop_never=cfg.drop_never, temperature=cfg.temperature, max_new_tokens=cfg.max_completion_length,
            seed=cfg.seed, pool=pool,
        )
        log(
            f"pass-rate filter (k={cfg.pass_rate_k}, {pass_report['seconds']} s): kept {pass_report['kept']} of "
            f"{pass_report['in']}; dropped {pass_report['dropped_always']} always solved, "
            f"{pass_report['dropped_never']} never solved; mean pass rate {pass_report['mean_pass_rate']}"
        )
        pass_report = {k: v for k, v in pass_report.items() if k != "pass_rates"}
    if not rows:
        raise DataError("no RL prompt left after curation (see the curation log lines)", path=cfg.data_path)
    return rows, {"build": build_report, "gold": gold_report, "pass_rate": pass_report}


def rl_rewards(cfg: RLFields, pool: Any, extra: list[RewardFn] | None = None, *, device: str = "auto") -> list[RewardFn]:
    """The configured rewards on ``pool`` (``build_rewards(rewards, **reward_options)``; a list of
    one preset name is that preset), the reward model when ``reward_model`` is set (on ``device``),
    then ``extra``. ``ConfigError`` when two share a name (TRL logs each by name)."""
    fns: list[RewardFn] = []
    if cfg.rewards:
        from sqlcoach.rewards import build_rewards

        spec: Any = cfg.rewards
        if isinstance(spec, (list, tuple)) and len(spec) == 1 and isinstance(spec[0], str):
            spec = spec[0]  # [seed-multi] is the preset, as `rewards: seed-multi`
        fns.extend(build_rewards(spec, pool=pool, **dict(cfg.reward_options)))
    if cfg.reward_model:
        from sqlcoach.rewards.reward_model import RewardModelReward

        fns.append(RewardModelReward(cfg.reward_model, weight=cfg.reward_model_weight, device=device))
    fns.extend(extra or [])
    names = [r.__name__ for r in fns]
    if len(set(names)) != len(names):
        raise ConfigError(f"reward names must be distinct (TRL logs each by name), got {names}")
    return fns


def outcome_source(rewards: list[Any]) -> OutcomeSource | None:
    """The first reward that keeps its batch's execution outcomes, or ``None``."""
    return next((r for r in rewards if isinstance(r, OutcomeSource)), None)


def _result_text(o: Any) -> str | None:
    if o is None:
        return None
    if o.error:
        return f"{o.error}: {o.message}"[:200] if o.message else o.error
    return "equal to gold" if o.equal else f"ran, wrong result (jaccard {o.jaccard:.2f})"


def sample_rows(completions: list[Any], columns: dict[str, list[Any]], rewards: dict[str, list[float | None]],
                outcomes: list[Any] | None, *, n: int, group: int = 1,
                totals: list[float] | None = None) -> list[dict[str, Any]]:
    """Up to ``n`` rows (question, db_id, gold SQL, completion, SQL, result, each reward, total) of
    one batch: the first completion of each group of ``group`` first (so the rows show different
    questions), then the rest in order.

    ``columns``: the batch's dataset columns, aligned with ``completions``; ``rewards``: each
    reward's values; ``outcomes``: the execution outcomes (``outcome_source``), ``None`` when no
    reward executes (the result is then ``None`` and the SQL is extracted from the text);
    ``totals``: the reward the update used (PPO: after its EOS penalty), else the sum of the
    components that are not ``None``."""
    from sqlcoach.rewards.common import completion_sql, completion_text

    if not completions or n <= 0:
        return []
    m = len(completions)
    order = list(range(0, m, group)) + [i for i in range(m) if i % group]

    def col(name: str) -> list[Any]:
        return columns.get(name) or [None] * m

    agent = isinstance(columns.get("agent_turns"), list)  # multi-turn GRPO: a trajectory per completion
    out = []
    for i in order[:n]:
        o = outcomes[i] if outcomes else None
        comp = {name: vals[i] for name, vals in rewards.items()}
        total = totals[i] if totals is not None else sum(v for v in comp.values() if v is not None)
        row = {
            "index": i, "question": col("question")[i], "db_id": col("db_id")[i], "gold_sql": col("gold_sql")[i],
            "completion": completion_text(completions[i])[: 2000 if agent else 500],
            "sql": o.sql if o is not None else completion_sql(completions[i], col("sql_names")[i]),
            "result": _result_text(o), "rewards": comp, "reward": round(float(total), 4),
        }
        if agent:  # the trajectory: its turns, queries run and how it ended (the SQL above is its final answer)
            row.update(turns=col("agent_turns")[i], queries=col("agent_queries")[i], finish=col("agent_finish")[i])
        out.append(row)
    return out
