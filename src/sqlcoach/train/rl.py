"""The RL layer GRPO and PPO share (and the RL recipes that come next): one executor pool, one
task, one way to build the prompt rows, one reward list, one sample-row builder, one reward-curve
shape. A recipe keeps only what is its own (TRL's ``GRPOTrainer``; PPO's value head and loop).

* ``rl_pool(cfg)``: the ``ExecutorPool`` every SQL of the run goes through (rewards, gold
  curation, the pass-rate filter), with ``reward_timeout`` seconds per query;
* ``rl_task(cfg, pool, rewards)``: the configured ``tasks.Task`` (``RLFields.task``) on the run's
  prompt settings; when none of ``rewards`` reads gold (``rewards_need_gold``: a verifier, the
  consensus reward), the task is built gold-free and keeps questions without gold SQL;
* ``prompt_rows(cfg, task, ...)``: examples -> shuffled with ``seed`` -> cut to ``max_examples``
  -> the task's training rows -> gold curation (``curate_gold``; unset: when the task needs
  gold) -> the start policy's pass-rate filter (``pass_rate_k``, scored against gold); returns
  ``(rows, curation report)``. Gold-free training turns gold curation off with a log line; asking
  for it (or for the pass-rate filter) on prompts without gold is a ``ConfigError``, and a task
  that needs gold on examples that have none is a one-line ``DataError`` naming the missing gold;
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


def rewards_need_gold(rewards: list[Any]) -> bool:
    """Whether any of ``rewards`` reads the gold SQL (``rewards.base.Reward.needs_gold``; a callable
    that does not say is taken to)."""
    return any(getattr(r, "needs_gold", True) for r in rewards)


def _who(task: Task, rewards: list[Any] | None) -> str:
    """Who needs the gold, for messages: the rewards that read it, or the task."""
    if rewards:
        names = [r.__name__ for r in rewards if getattr(r, "needs_gold", True)]
        if names:
            return f"the reward{'s' if len(names) > 1 else ''} {', '.join(names)}"
    return f"the task {task.name}"


def rl_task(cfg: Any, pool: Any, rewards: list[Any] | None = None) -> Task:
    """The task ``cfg.task`` on the prompt settings of ``cfg`` (after ``with_model_prompt``); built
    gold-free (``tasks.build_task(gold_free=True)``) when ``rewards`` are given and none reads gold."""
    from sqlcoach.prompts.builder import PromptBuilder
    from sqlcoach.prompts.settings import PromptSettings
    from sqlcoach.tasks import build_task

    builder = PromptBuilder.from_settings(PromptSettings.of(cfg))
    return build_task(cfg.task, builder, pool=pool, gold_free=rewards is not None and not rewards_need_gold(rewards))


def _no_gold_error(task: Task, rewards: list[Any] | None, n: int, what: str) -> DataError:
    return DataError(f"none of the {n} {what} has gold SQL (gold_sql), which {_who(task, rewards)} scores against; "
                     "add the gold, or train with rewards that need none (verifier, consensus)")


def _train_rows(cfg: Any, task: Task, examples: list[Any] | None, log: Callable[[str], None],
                rewards: list[Any] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The task's rows of the examples (loaded when not given), shuffled with ``seed`` and cut to
    ``max_examples`` first: one rule for every RL recipe."""
    if examples is None:
        from sqlcoach.data import load_examples

        examples = load_examples(cfg.data_kind, cfg.data_path, cfg.split)
    examples = list(examples)
    random.Random(cfg.seed).shuffle(examples)
    if cfg.max_examples is not None:
        examples = examples[: cfg.max_examples]
    if task.needs_gold and examples and not any(getattr(ex, "gold_sql", None) for ex in examples):
        raise _no_gold_error(task, rewards, len(examples), "examples")
    rows = task.train_rows(examples, log=log)
    return rows, {"examples": len(examples), "rows": len(rows)}


def _has_gold(row: dict[str, Any]) -> bool:
    gold = row.get("gold_sql")
    return isinstance(gold, str) and bool(gold.strip())


def _gold_rules(cfg: Any, task: Task, rows: list[dict[str, Any]], rewards: list[Any] | None,
                log: Callable[[str], None]) -> tuple[list[dict[str, Any]], bool]:
    """``(rows, curate)``: the rows a task that needs gold can score (the others dropped with a log
    line; none left: ``DataError``), and whether gold curation runs. Without gold need, curation
    is off unless asked (a log line says so), and asking for it, or for the pass-rate filter, on
    prompts without gold is a ``ConfigError``."""
    missing = sum(1 for r in rows if not _has_gold(r))
    if task.needs_gold:
        if missing == len(rows) and rows:
            raise _no_gold_error(task, rewards, len(rows), "prompts")
        if missing:
            log(f"dropped {missing} of {len(rows)} prompts without gold SQL ({_who(task, rewards)} scores against it)")
            rows = [r for r in rows if _has_gold(r)]
        return rows, cfg.curate_gold is not False
    why = (f"the rewards {', '.join(r.__name__ for r in rewards)} read no gold" if rewards
           else f"the task {task.name} reads no gold")
    if cfg.curate_gold and missing:
        raise ConfigError(f"curate_gold: true drops prompts by running their gold SQL, but {missing} of {len(rows)} "
                          f"prompts have none ({why}): leave curate_gold unset or false")
    if cfg.pass_rate_k and missing:
        raise ConfigError(f"pass_rate_k={cfg.pass_rate_k} scores the start policy's samples against gold SQL, but "
                          f"{missing} of {len(rows)} prompts have none ({why}): set pass_rate_k: 0")
    if not cfg.curate_gold:
        log(f"gold curation off: {why}" + (f"; {missing} of {len(rows)} prompts have no gold SQL" if missing else ""))
    return rows, bool(cfg.curate_gold)


def prompt_rows(cfg: Any, task: Task, *, pool: Any, log: Callable[[str], None], examples: list[Any] | None = None,
                rows: list[dict[str, Any]] | None = None, model: Any = None, tokenizer: Any = None,
                generate: GenerateFn | None = None, rewards: list[Any] | None = None,
                on_rows: Callable[[list[dict[str, Any]]], None] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The prompt rows of an RL run and how they were chosen: ``(rows, {"build", "gold", "pass_rate"})``.

    ``rows`` (ready rows) replaces loading and building (cut to ``max_examples``; curation still
    applies); ``examples`` replaces loading. Gold curation runs when ``curate_gold`` is true, or
    unset and the task needs gold (``rl_task``: a task built for ``rewards`` that read none does
    not); ``rewards`` name who needs the gold in messages. The pass-rate filter with ``pass_rate_k`` samples the start policy
    (``model``, ``tokenizer``; ``generate``: another sampler with ``generate_texts``' signature),
    each process its share of the prompts. ``on_rows(rows)`` sees the rows before the pass-rate
    filter (multi-turn GRPO's rollout registers them there: its ``generate`` needs their databases).
    ``DataError`` when no row is left."""
    from sqlcoach.train.rl_data import curate_gold, sharded_pass_rate_filter

    build_report: dict[str, Any] = {}
    if rows is None:
        rows, build_report = _train_rows(cfg, task, examples, log, rewards)
    elif cfg.max_examples is not None:
        rows = rows[: cfg.max_examples]
    rows, curate = _gold_rules(cfg, task, rows, rewards, log)
    gold_report = pass_report = None
    if curate:
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
