"""The comparison's results, typed: what ``jobs.py`` writes and ``report.py`` reads.

* :class:`TrainResult`: a training child's result (``train.json``), with what the parent measured
  around it (``process_seconds``, ``peak_process_rss_mb``, ``log``, ``train_hash``,
  ``prepare_seconds``);
* :class:`EvalResult`: an evaluation child's result, local or ``api`` (the ``api_*`` fields);
* :class:`MethodRow`: one method run (``methods/<name>/result.json``): its train and eval results;
* :class:`CompareReport`: ``report.json``: the config, the start, every row, the across-seeds
  summary (``metrics.stats.AcrossSeeds``) and the machine.

Files: ``as_dict`` writes a result with its fields in the order above (a field marked
``optional`` is left out while it is ``None``; a result whose status is not ``ok`` writes only
the fields it has). ``from_dict`` reads any older file: a missing field takes its default and a
key this version does not know is kept in ``extra`` and written back unchanged, so a result
written before a field existed still loads, resumes and renders.

The evaluation summary (``EvalResult.summary``) is ``metrics.evaluate_examples``'s summary
mapping; the accessors (``ex``, ``em``, ``executes``, ``ex_at``, ...) are the one place that knows
its shape.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from sqlcoach.metrics.stats import AcrossSeeds, RunOutcome, across_seeds

#: the hardness levels "complex-query EX" counts (seed 000's complex-query column)
COMPLEX = ("hard", "extra")


def _optional(default: Any = None) -> Any:
    return field(default=default, metadata={"optional": True})


class _Record:
    """``as_dict`` / ``from_dict`` for the result dataclasses (module docstring)."""

    extra: dict[str, Any]
    status: str | None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        ok = self.status == "ok"
        for f in fields(self):  # type: ignore[arg-type]
            if f.name == "extra":
                continue
            v = getattr(self, f.name)
            if v is None and (f.metadata.get("optional") or not ok):
                continue
            out[f.name] = v.as_dict() if isinstance(v, _Record) else v
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Any:
        if d is None:
            return None
        if isinstance(d, cls):
            return d
        names = {f.name for f in fields(cls)} - {"extra"}  # type: ignore[arg-type]
        values = {k: v for k, v in d.items() if k in names}
        values["extra"] = {k: v for k, v in d.items() if k not in names}
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name not in values and f.default is MISSING and f.default_factory is MISSING:
                values[f.name] = None  # a required field an old or failed result lacks
        return cls(**values)


@dataclass
class TrainResult(_Record):
    """A training child's result (``jobs._child_train``) plus the parent's measurements."""

    status: str | None = None
    final_dir: str | None = None
    global_step: int | None = None
    seconds: float | None = None  # training proper (the recipe's train_seconds)
    median_step_seconds: float | None = None
    step_time_source: str | None = None  # callback, summary or mean
    step_seconds: list[float] | None = None
    trained_tokens: float | None = None
    trained_tokens_per_s: float | None = None
    generated_tokens: float | None = None
    generated_tokens_per_s: float | None = None
    peak_rss_mb_training: float | None = None
    peak_cuda_mb: float | None = None
    recipe_peak_memory_mb: float | None = None
    loss_curve: list[list[float]] | None = None
    reward_curve: list[list[float]] | None = None  # [[step, reward], ...]
    reward_curve_source: str | None = None
    recipe_config: dict[str, Any] | None = None
    recipe_summary: dict[str, Any] | None = None
    log_tail: list[str] | None = _optional()  # a child that died without a result: its log's last lines
    peak_process_rss_mb: float | None = None  # the parent's wait4 of the child
    process_seconds: float | None = None
    log: str | None = None
    train_hash: str | None = None
    prepare_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in (None, "ok")

    def last_reward(self) -> float | None:
        return self.reward_curve[-1][1] if self.reward_curve else None


@dataclass
class EvalResult(_Record):
    """An evaluation child's result (``jobs._child_eval`` / ``_child_eval_api``) plus the parent's
    measurements. ``summary`` is ``metrics.evaluate_examples``'s summary; ``per_question`` the
    outcomes question by question (what the across-seeds intervals resample)."""

    status: str | None = None
    questions: int | None = None
    summary: dict[str, Any] | None = None
    generated_tokens: int | None = None
    generated_tokens_per_s: float | None = None
    examples_per_s: float | None = None
    predict_seconds: float | None = None
    prompt_tokens: int | None = None
    peak_rss_mb_eval: float | None = None
    peak_cuda_mb_eval: float | None = None
    samples: list[dict[str, Any]] | None = None
    pred_path: str | None = None
    seen: dict[str, Any] | None = None  # {"split", "questions", "summary"} on databases seen in training
    per_question: dict[str, list[Any]] | None = None  # ex, db_id, hardness, error
    by_db: dict[str, dict[str, Any]] | None = None  # db_id -> {"n", "ex"}
    usage_known: int | None = _optional()  # api: answers whose response carried usage
    api_errors: dict[str, int] | None = _optional()
    api_retries: int | None = _optional()
    api: dict[str, Any] | None = _optional()  # api: {"base_url", "model"}
    # method verifier (selection among the start's samples): name -> {"summary", "per_question", "by_db"}
    # for every selection scored from the same samples (and "greedy"); the headroom table
    # (metrics.headroom.HeadroomTable.as_dict); the inference cost {"n", "temperature", "select",
    # "verifier", "questions", "generations", "greedy_seconds", "sample_seconds", "select_seconds"}
    selections: dict[str, dict[str, Any]] | None = _optional()
    headroom: dict[str, Any] | None = _optional()
    sampling: dict[str, Any] | None = _optional()
    # evaluated as an agent (eval_agent / a method's agent:): the settings and what the trajectories
    # did: {"settings", "mean_turns", "queries_run", "answered", "finish", "recoveries",
    # "first_query_failed", "generation_seconds", "execution_seconds"} (jobs.agent_figures)
    agent: dict[str, Any] | None = _optional()
    log_tail: list[str] | None = _optional()
    peak_process_rss_mb: float | None = None
    process_seconds: float | None = None
    log: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def _all(self) -> dict[str, Any]:
        return (self.summary or {}).get("all") or {}

    @property
    def ex(self) -> float | None:
        return self._all().get("ex")

    @property
    def em(self) -> float | None:
        return self._all().get("em")

    @property
    def scored(self) -> int | None:
        return self._all().get("scored")

    @property
    def executes(self) -> float | None:
        return (self.summary or {}).get("executes")

    def at(self, level: str, metric: str = "ex") -> float | None:
        """``metric`` (ex, em) on the questions of one hardness level."""
        return (((self.summary or {}).get("by_hardness") or {}).get(level) or {}).get(metric)

    @property
    def errors(self) -> dict[str, int]:
        return (self.summary or {}).get("errors") or {}

    @property
    def plans(self) -> dict[str, Any] | None:
        return (self.summary or {}).get("plans")

    @property
    def seen_ex(self) -> float | None:
        return ((((self.seen or {}).get("summary") or {}).get("all")) or {}).get("ex")

    @property
    def seen_executes(self) -> float | None:
        return ((self.seen or {}).get("summary") or {}).get("executes")


@dataclass
class MethodRow(_Record):
    """One method run (``methods/<name>[/seed<s>]/result.json``); ``method`` is ``start`` for the
    start checkpoint's row; ``config`` the method's entry (``MethodSpec``) as written."""

    name: str = "?"
    method: str | None = None
    config_hash: str | None = None
    seed: int | None = None
    config: dict[str, Any] | None = None
    status: str | None = None
    train: TrainResult | None = None
    eval: EvalResult | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.train = TrainResult.from_dict(self.train) if isinstance(self.train, dict) else self.train
        self.eval = EvalResult.from_dict(self.eval) if isinstance(self.eval, dict) else self.eval

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def total_seconds(self) -> float | None:
        """Everything the method cost in wall time: preparation (e.g. DPO's pair mining) + the
        training process (model loading, data preparation and saving included) + the evaluation
        process."""
        t, ev = self.train, self.eval
        parts = [t.prepare_seconds if t else None, t.process_seconds if t else None, ev.process_seconds if ev else None]
        nums = [float(x) for x in parts if isinstance(x, (int, float))]
        return sum(nums) if nums else None


@dataclass
class CompareReport:
    """``report.json``: what ``run.run_compare`` returns and ``report.py`` renders."""

    command: str | None = None
    config: dict[str, Any] = field(default_factory=dict)  # the CompareConfig as written
    start: dict[str, Any] = field(default_factory=dict)  # path, world, built (+ seconds, global_step)
    methods: list[MethodRow] = field(default_factory=list)
    across_seeds: AcrossSeeds | None = None
    machine: dict[str, Any] = field(default_factory=dict)
    seconds_this_run: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"command": self.command, "config": self.config, "start": self.start,
                "methods": [r.as_dict() for r in self.methods],
                "across_seeds": self.across_seeds.as_dict() if self.across_seeds is not None else None,
                "machine": self.machine, "seconds_this_run": self.seconds_this_run, **self.extra}

    @classmethod
    def of(cls, report: CompareReport | dict[str, Any]) -> CompareReport:
        """``report`` itself, or read from its ``report.json`` mapping (any version)."""
        if isinstance(report, CompareReport):
            return report
        d = dict(report)
        known = ("command", "config", "start", "methods", "across_seeds", "machine", "seconds_this_run")
        return cls(command=d.get("command"), config=d.get("config") or {}, start=d.get("start") or {},
                   methods=[MethodRow.from_dict(r) for r in d.get("methods") or []],
                   across_seeds=AcrossSeeds.from_dict(d["across_seeds"]) if d.get("across_seeds") is not None else None,
                   machine=d.get("machine") or {}, seconds_this_run=d.get("seconds_this_run"),
                   extra={k: v for k, v in d.items() if k not in known})

    def questions(self) -> int | None:
        """The evaluation's question count (the first evaluated row's)."""
        return next((r.eval.questions for r in self.methods if r.eval is not None), None)

    def seeds(self) -> list[int]:
        return list(self.across_seeds.seeds) if self.across_seeds else []

    def multi_seed(self) -> bool:
        return len(self.seeds()) > 1


def peak_mb(row: MethodRow) -> float | None:
    """The memory figure of a row (``runtime.plots.peak_memory``: CUDA on a GPU, else the
    training process's peak RSS)."""
    from sqlcoach.runtime import plots

    return plots.peak_memory(row.as_dict())[0]


def selection_name(row: str, selection: str) -> str:
    """The across-seeds name of one selection of a sampling row (``verifier [vote]``)."""
    return f"{row} [{selection}]"


def summarize_seeds(rows: list[MethodRow], seeds: list[int], control: str | None, *,
                    replicates: int = 2000) -> AcrossSeeds:
    """``metrics.stats.across_seeds`` of the rows: runs that failed or have no per-question
    outcomes (results written before they were kept) are left out and counted in ``failed``. The
    start row is deterministic (greedy decoding of one checkpoint): its one evaluation stands for
    every seed. A sampling row (``EvalResult.selections``) gives one more outcome per selection
    other than its headline (``selection_name``: ``verifier [vote]``, ...), each with the row's
    training figures, so that every selection gets its interval and its paired test against the
    control on the same questions."""
    runs: list[RunOutcome] = []
    failed: dict[str, int] = {}
    for r in rows:
        pq = r.eval.per_question if r.eval is not None else None
        if not (r.ok and pq):
            failed[r.name] = failed.get(r.name, 0) + 1
            continue
        shared = dict(method=r.method, seed=r.seed, median_step_seconds=r.train.median_step_seconds if r.train else None,
                      train_seconds=r.train.seconds if r.train else None, total_seconds=r.total_seconds(),
                      peak_mb=peak_mb(r))
        runs.append(RunOutcome(name=r.name, ex=pq["ex"], hardness=pq["hardness"], executes=r.eval.executes,
                               by_db={db: d["ex"] for db, d in (r.eval.by_db or {}).items()}, **shared))
        headline = (r.eval.sampling or {}).get("select")
        for sel, res in (r.eval.selections or {}).items():
            if sel == headline or not res.get("per_question"):
                continue
            runs.append(RunOutcome(name=selection_name(r.name, sel), ex=res["per_question"]["ex"],
                                   hardness=res["per_question"]["hardness"], executes=(res.get("summary") or {}).get("executes"),
                                   by_db={db: d["ex"] for db, d in (res.get("by_db") or {}).items()}, **shared))
    return across_seeds(runs, seeds, control, failed=failed, complex_levels=COMPLEX, replicates=replicates)
