"""Compare training methods side by side: one start checkpoint, one budget, one evaluation.

Run it: ``sqlcoach compare --config configs/compare/demo.yaml --out DIR [key=value ...]``
(or ``run_compare(cfg, out)`` in Python). Reads top to bottom:

1. **Start.** ``start`` names the shared starting checkpoint and ``world`` the data (Spider
   layout). With ``start: ""`` the comparison builds its own in ``DIR/start`` the way
   ``sqlcoach demo`` does (world, tokenizer + random Qwen2, a short SFT of ``start_sft_steps``).
2. **Each method** listed under ``methods`` (SFT continued, DPO, PPO, GRPO, reward-preset variants)
   is trained from the start checkpoint by its own recipe function (``run_sft``, ``run_dpo``,
   ``run_grpo``, ``run_ppo``) with the same budget: ``budget: steps`` sets the recipe's
   ``max_steps``, ``budget: seconds`` its ``max_seconds`` (and ``anneal_by_clock`` where the recipe
   has it), ``budget: samples`` converts training rows into ``max_steps`` through the recipe's
   batch size. Optional ``prepare`` command lines (``sqlcoach`` verbs, e.g. ``pairs mine`` for
   DPO) run first.
3. **Each result** is evaluated the same way: greedy ``sqlcoach.generate.predict.predict`` on the
   same dev questions, then ``sqlcoach.metrics.evaluate_examples`` (EX, EM, per hardness, share
   of predictions that execute).
4. **Report**: ``DIR/report.json``, ``DIR/report.md`` and a self-contained ``DIR/report.html``
   (``sqlcoach.bench.report``).

Isolation and honest memory: every training run and every evaluation is a separate Python process
(``python -m sqlcoach.bench.compare train|eval|start JOB.json``). The parent waits for it with
``os.wait4`` and records that process's peak resident set (``ru_maxrss``: the whole process,
model loading included; on Linux the largest of the process and the children it reaped, e.g. SQL
executor workers, not their sum). Inside the child, ``sqlcoach.bench.memory.track_peak`` adds
CUDA's ``max_memory_allocated`` on a GPU. The median time per optimizer step comes from a
``TrainerCallback`` when the recipe accepts ``callbacks=``, otherwise from the recipe's summary
(``median_step_seconds``), otherwise seconds / steps (marked ``mean``).

Resume: each method writes ``DIR/methods/<name>/result.json`` holding the hash of everything that
decides its outcome (the shared settings, the method entry, the recipe YAML's text). Running the
same command again skips a method whose result exists with status ``ok`` and the same hash; a
finished training whose evaluation was interrupted is not trained again (``train.json``).
A method whose recipe module is not in this checkout is reported as ``not available: <reason>``,
and a method whose recipe fails as ``failed: <error>``; the comparison goes on with the others.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from sqlcoach.errors import ConfigError
from sqlcoach.train.common import build_config

METHOD_KINDS = ("sft", "dpo", "grpo", "ppo")
BUDGETS = ("steps", "seconds", "samples")
#: Result file schema version (a change re-runs every method).
RESULT_VERSION = 1


# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------


@dataclass
class MethodSpec:
    """One entry of ``methods:``. ``name`` labels it in the report (unique); ``method`` picks the
    recipe; ``config`` is that recipe's YAML (its own keys; ``""``: the recipe's defaults);
    ``overrides`` are recipe keys set on top; ``prepare`` lists ``sqlcoach`` command lines run
    before training, with ``{start}``, ``{world}``, ``{dir}`` (this method's folder), ``{seed}``
    replaced."""

    name: str = ""
    method: Literal["sft", "dpo", "grpo", "ppo"] = "sft"
    config: str = ""
    overrides: Any = None
    prepare: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("every method needs a name (its label in the report)")
        if not all(c.isalnum() or c in "-_." for c in self.name):
            raise ConfigError(f"method name {self.name!r} may only hold letters, digits, '-', '_' and '.' (it is a folder name)")
        if self.method not in METHOD_KINDS:
            raise ConfigError(f"method {self.name}: method must be one of {METHOD_KINDS}, got {self.method!r}")
        if self.overrides is None:
            self.overrides = {}
        if not isinstance(self.overrides, dict):
            raise ConfigError(f"method {self.name}: overrides must be a mapping of recipe key: value")


@dataclass
class CompareConfig:
    """A comparison (``configs/compare/*.yaml``). Paths are relative to the current directory."""

    # the shared start ("" = build one in OUT/start, like `sqlcoach demo`)
    start: str = ""
    world: str = ""  # Spider-layout folder; "" with start "" = OUT/start/world
    data_kind: str = "spider"
    start_size: str = "small"  # model size when building the start (sqlcoach.models.tiny.SIZES)
    start_sft_steps: int = 250
    start_world_train: int | None = None  # questions in a built world (None: the world's default)
    start_world_dev: int | None = None
    # the budget every method gets
    budget: Literal["steps", "seconds", "samples"] = "steps"
    budget_value: float = 50
    seed: int = 0
    # evaluation (the same for every method)
    eval_split: str = "dev"
    eval_limit: int | None = None  # the first N questions of eval_split (None: all)
    eval_batch_size: int = 32
    max_new_tokens: int = 96
    template: str = "sql_terminal"
    schema_style: str = "compact"
    schema_sample_values: int = 0
    eval_start: bool = True  # also evaluate the start checkpoint itself (row "start")
    # also score N questions of a split whose databases were seen in training, evenly spread over
    # it (in-distribution EX: moves earlier than EX on unseen databases; 0 = off)
    seen_eval_split: str = "train"
    seen_eval_limit: int = 0
    # machine
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = 1  # OMP_NUM_THREADS of each child process (None: inherit)
    # what to compare
    methods: Any = None

    def __post_init__(self) -> None:
        if self.budget not in BUDGETS:
            raise ConfigError(f"budget must be one of {BUDGETS}, got {self.budget!r}")
        if self.budget_value <= 0:
            raise ConfigError(f"budget_value must be > 0 (got {self.budget_value}): each method needs something to spend")
        if self.budget in ("steps", "samples") and self.budget_value != int(self.budget_value):
            raise ConfigError(f"budget_value must be a whole number for budget={self.budget} (got {self.budget_value})")
        if self.start_sft_steps < 1:
            raise ConfigError("start_sft_steps must be >= 1")
        if self.eval_limit is not None and self.eval_limit < 1:
            raise ConfigError("eval_limit must be >= 1 or null (all questions)")
        if self.seen_eval_limit < 0:
            raise ConfigError("seen_eval_limit must be >= 0 (0: no evaluation on seen databases)")
        if self.eval_batch_size < 1 or self.max_new_tokens < 1:
            raise ConfigError("eval_batch_size and max_new_tokens must be >= 1")
        if self.threads is not None and self.threads < 1:
            raise ConfigError("threads must be >= 1 or null (inherit OMP_NUM_THREADS)")
        if self.start and not self.world:
            raise ConfigError("world is required when start is given: the data the methods train and evaluate on")
        raw = self.methods
        if not raw:
            raise ConfigError("methods must list at least one method (name, method, config, overrides)")
        if not isinstance(raw, list):
            raise ConfigError("methods must be a list of mappings")
        specs: list[MethodSpec] = []
        for i, item in enumerate(raw):
            if isinstance(item, MethodSpec):
                specs.append(item)
                continue
            if not isinstance(item, dict):
                raise ConfigError(f"methods[{i}] must be a mapping with name, method, config, overrides")
            specs.append(build_config(MethodSpec, item, source=f"methods[{i}]"))
        names = [s.name for s in specs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup or "start" in names:
            raise ConfigError(f"method names must be unique and not 'start' (reserved for the start row): {dup or ['start']}")
        self.methods = specs


def load_compare_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> CompareConfig:
    """Read and validate a compare YAML (unknown keys are errors, also inside ``methods``)."""
    from sqlcoach.train.common import load_config

    return load_config(CompareConfig, path, overrides)


# ---------------------------------------------------------------------------------------------
# recipes
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """Where a method's config class and run function live. The config class is looked up under
    ``config_names`` in ``config_modules``, first found wins."""

    run_module: str
    run_function: str
    config_modules: tuple[str, ...]
    config_names: tuple[str, ...]

    def available(self) -> str | None:
        """``None`` when the recipe can be imported, else the reason it cannot (no import done)."""
        try:
            spec = importlib.util.find_spec(self.run_module)
        except (ImportError, ValueError) as exc:
            return f"{self.run_module} cannot be found ({exc})"
        if spec is None:
            return f"{self.run_module} is not in this checkout"
        return None

    def load(self) -> tuple[type, Callable[..., dict[str, Any]]]:
        mod = importlib.import_module(self.run_module)
        fn = getattr(mod, self.run_function, None)
        if fn is None:
            raise ConfigError(f"{self.run_module} has no {self.run_function}()")
        for mname in self.config_modules:
            try:
                cmod = importlib.import_module(mname)
            except ModuleNotFoundError as exc:
                if exc.name != mname:
                    raise
                continue
            for cname in self.config_names:
                cls = getattr(cmod, cname, None)
                if isinstance(cls, type) and dataclasses.is_dataclass(cls):
                    return cls, fn
        raise ConfigError(
            f"no config class {' or '.join(self.config_names)} in {' or '.join(self.config_modules)}"
        )


def _recipe(kind: str) -> Recipe:
    up = kind.upper()
    return Recipe(
        run_module=f"sqlcoach.train.{kind}",
        run_function=f"run_{kind}",
        config_modules=(f"sqlcoach.train.{kind}", "sqlcoach.train.config", f"sqlcoach.train.{kind}_config"),
        config_names=(f"{up}RunConfig", f"{up}Config", f"{kind.capitalize()}RunConfig", f"{kind.capitalize()}Config"),
    )


#: method -> recipe. Tests may add entries (a fake method) before calling ``run_compare``; the
#: child process reads ``SQLCOACH_COMPARE_EXTRA_RECIPES`` (``kind=module:function:config_module:ConfigClass``).
RECIPES: dict[str, Recipe] = {kind: _recipe(kind) for kind in METHOD_KINDS}


def _extra_recipes_from_env() -> None:
    for item in filter(None, os.environ.get("SQLCOACH_COMPARE_EXTRA_RECIPES", "").split(";")):
        kind, rest = item.split("=", 1)
        mod, fn, cmod, cname = rest.split(":")
        RECIPES[kind] = Recipe(mod, fn, (cmod,), (cname,))


# ---------------------------------------------------------------------------------------------
# hashing, paths, small helpers
# ---------------------------------------------------------------------------------------------


#: Settings that decide a training result, and those that only decide its evaluation: changing
#: the latter re-evaluates every method without training it again.
TRAIN_KEYS = ("start", "world", "data_kind", "start_size", "start_sft_steps", "start_world_train", "start_world_dev",
              "budget", "budget_value", "seed", "template", "schema_style", "schema_sample_values", "device")
EVAL_KEYS = ("eval_split", "eval_limit", "eval_batch_size", "max_new_tokens", "seen_eval_split", "seen_eval_limit")


def _shared_settings(cfg: CompareConfig, keys: tuple[str, ...] = TRAIN_KEYS + EVAL_KEYS) -> dict[str, Any]:
    return {k: getattr(cfg, k) for k in keys}


def start_fingerprint(start: Path) -> list[list[Any]]:
    """(name, size, mtime) of the start checkpoint's top-level files: a start trained again under
    the same path makes every method run again."""
    out = []
    if start.is_dir():
        for f in sorted(start.iterdir()):
            if f.is_file() and f.suffix in (".json", ".safetensors", ".bin"):
                st = f.stat()
                out.append([f.name, st.st_size, st.st_mtime_ns])
    return out


def method_hash(cfg: CompareConfig, spec: MethodSpec | None, start: list[list[Any]] | None = None,
                *, training_only: bool = False) -> str:
    """Hash of what decides a method's outcome: the shared settings, its entry, its recipe YAML's
    text, and the start checkpoint's ``start_fingerprint``. ``spec=None`` is the start row.
    ``training_only=True`` leaves the evaluation settings out (the hash of ``train.json``)."""
    keys = TRAIN_KEYS if training_only else TRAIN_KEYS + EVAL_KEYS
    payload: dict[str, Any] = {"version": RESULT_VERSION, "shared": _shared_settings(cfg, keys), "start": start}
    if spec is not None:
        payload["method"] = dataclasses.asdict(spec)
        if spec.config:
            p = Path(spec.config)
            payload["recipe_yaml"] = p.read_text() if p.is_file() else f"(missing) {spec.config}"
    blob = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def resolve_start(cfg: CompareConfig, out: Path) -> tuple[Path, Path, bool]:
    """``(start model folder, world folder, must_build)``."""
    if cfg.start:
        start, world = Path(cfg.start), Path(cfg.world)
        if not (start / "config.json").is_file() and not (start / "adapter_config.json").is_file():
            raise ConfigError(f"start={start} is not a model folder (no config.json): train it first or use start: \"\" to build one")
        if not world.is_dir():
            raise ConfigError(f"world={world} is not a folder")
        return start, world, False
    world = Path(cfg.world) if cfg.world else out / "start" / "world"
    start = out / "start" / "sft" / "final"
    return start, world, not (start / "config.json").is_file()


def _median(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 4) if xs else None


# ---------------------------------------------------------------------------------------------
# child processes
# ---------------------------------------------------------------------------------------------


def run_child(mode: str, job: dict[str, Any], job_dir: Path, *, log: Callable[[str], None] = print,
              threads: int | None = 1) -> dict[str, Any]:
    """Run ``python -m sqlcoach.bench.compare MODE JOB.json`` and return its result dict, with the
    child's peak RSS (``peak_process_rss_mb``) and wall time (``process_seconds``) added.

    The child's stdout/stderr go to ``job_dir/MODE.log``. A child that dies without writing its
    result gives ``{"status": "failed: ..."}`` with the log's last lines."""
    job_dir.mkdir(parents=True, exist_ok=True)
    job_path = job_dir / f"{mode}.job.json"
    result_path = job_dir / f"{mode}.out.json"
    if result_path.exists():
        result_path.unlink()
    job = dict(job, result_path=str(result_path))
    _write_json(job_path, job)
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["PYTHONUNBUFFERED"] = "1"
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
        env["MKL_NUM_THREADS"] = str(threads)
    # The child must import the same sqlcoach as this process (a checkout without install included).
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    extra = [f"{k}={r.run_module}:{r.run_function}:{r.config_modules[0]}:{r.config_names[0]}"
             for k, r in RECIPES.items() if k not in METHOD_KINDS]
    if extra:
        env["SQLCOACH_COMPARE_EXTRA_RECIPES"] = ";".join(extra)
    log_path = job_dir / f"{mode}.log"
    t0 = time.monotonic()
    with log_path.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "sqlcoach.bench.compare", mode, str(job_path)],
                                stdout=fh, stderr=subprocess.STDOUT, env=env)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
    secs = time.monotonic() - t0
    # ru_maxrss is KiB on Linux, bytes on macOS
    peak = usage.ru_maxrss / 2**20 if sys.platform == "darwin" else usage.ru_maxrss / 2**10
    res = _read_json(result_path)
    if res is None:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-6:]
        res = {"status": f"failed: the {mode} process exited with code {proc.returncode} and wrote no result",
               "log_tail": tail}
    res["peak_process_rss_mb"] = round(peak, 1)
    res["process_seconds"] = round(secs, 2)
    res["log"] = str(log_path)
    return res


def _step_timer() -> Any:
    """A ``TrainerCallback`` that records the wall time of every optimizer step."""
    from transformers import TrainerCallback

    class _StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.t: float | None = None
            self.durations: list[float] = []

        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
            self.t = time.perf_counter()
            return control

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
            if self.t is not None:
                self.durations.append(time.perf_counter() - self.t)
                self.t = None
            return control

    return _StepTimer()


def recipe_values(kind: str, cls: type, job: dict[str, Any]) -> dict[str, Any]:
    """The recipe config values: its YAML, then the method's overrides, then what the comparison
    fixes for every method (start model, data, output folder, seed, prompt format, budget).

    Keys the recipe config does not have are not set (a recipe without ``max_seconds`` cannot take
    a seconds budget: that is an error that says so)."""
    import yaml

    fields = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    if job.get("config"):
        p = Path(job["config"])
        if not p.is_file():
            raise ConfigError(f"method {job['name']}: recipe config {p} not found")
        loaded = yaml.safe_load(p.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the top level must be a mapping")
        values.update(loaded)
    values.update(job.get("overrides") or {})
    fixed = {
        "model": job["start"],
        "data_path": job["world"],
        "data_kind": job["data_kind"],
        "output_dir": job["output_dir"],
        "seed": job["seed"],
        "template": job["template"],
        "schema_style": job["schema_style"],
        "schema_sample_values": job["schema_sample_values"],
    }
    if job["device"] == "cpu":
        fixed["use_cpu"] = True
    for k in ("model", "output_dir"):
        if k not in fields:
            raise ConfigError(f"{cls.__name__} has no {k!r} field: compare cannot point it at the start checkpoint")
    values.update({k: v for k, v in fixed.items() if k in fields})
    budget, value = job["budget"], job["budget_value"]
    if budget == "steps":
        if "max_steps" not in fields:
            raise ConfigError(f"{cls.__name__} has no max_steps: budget=steps is not possible for {kind}")
        values["max_steps"] = int(value)
        if "max_seconds" in fields:
            values["max_seconds"] = None
        if "anneal_by_clock" in fields:
            values["anneal_by_clock"] = False
    elif budget == "seconds":
        if "max_seconds" not in fields:
            raise ConfigError(f"{cls.__name__} has no max_seconds: budget=seconds is not possible for {kind}")
        values["max_seconds"] = float(value)
        if "anneal_by_clock" in fields:
            values["anneal_by_clock"] = True
    else:  # samples -> steps through the recipe's batch
        if "max_steps" not in fields or "per_device_train_batch_size" not in fields:
            raise ConfigError(f"{cls.__name__} has no max_steps/per_device_train_batch_size: budget=samples is not possible for {kind}")
        probe = build_config(cls, dict(values), source=f"{kind} recipe config")
        per_step = int(probe.per_device_train_batch_size) * int(getattr(probe, "gradient_accumulation_steps", 1) or 1)
        values["max_steps"] = max(1, math.ceil(int(value) / per_step))
        if "max_seconds" in fields:
            values["max_seconds"] = None
        if "anneal_by_clock" in fields:
            values["anneal_by_clock"] = False
    return values


def _log_history(summary: dict[str, Any], output_dir: Path) -> list[dict[str, Any]]:
    """The trainer's log history: from the summary, ``log_history.json``, or the last checkpoint."""
    hist = summary.get("log_history")
    if isinstance(hist, list):
        return hist
    p = output_dir / "log_history.json"
    data = None
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        pass
    if isinstance(data, list):
        return data
    best: tuple[int, list] | None = None
    for ck in output_dir.glob("checkpoint-*"):
        st = _read_json(ck / "trainer_state.json")
        if st and isinstance(st.get("log_history"), list):
            try:
                n = int(ck.name.split("-", 1)[1])
            except ValueError:
                continue
            if best is None or n > best[0]:
                best = (n, st["log_history"])
    return best[1] if best else []


def curve(history: list[dict[str, Any]], key: str) -> list[list[float]]:
    """``[[step, value], ...]`` of ``key`` in a log history (entries without it are skipped)."""
    out = []
    for h in history:
        v, s = h.get(key), h.get("step")
        if isinstance(v, (int, float)) and isinstance(s, (int, float)) and math.isfinite(float(v)):
            out.append([float(s), float(v)])
    return out


def reward_curve(summary: dict[str, Any], history: list[dict[str, Any]]) -> tuple[list[list[float]], str | None]:
    """The reward per step: the recipe's ``reward_curve`` (numbers, ``[step, value]`` pairs or
    ``{"step", "reward"}`` dicts), else the log history's ``reward`` (TRL GRPO), else DPO's
    ``rewards/margins``. Returns (curve, source key)."""
    rc = summary.get("reward_curve")
    if isinstance(rc, list) and rc:
        out = []
        for i, item in enumerate(rc):
            if isinstance(item, (int, float)):
                out.append([float(i + 1), float(item)])
            elif isinstance(item, (list, tuple)) and len(item) >= 2:
                out.append([float(item[0]), float(item[1])])
            elif isinstance(item, dict):
                val = item.get("reward", item.get("mean", item.get("value")))
                if isinstance(val, (int, float)):
                    out.append([float(item.get("step", i + 1)), float(val)])
        if out:
            return out, "summary.reward_curve"
    for key in ("reward", "rewards/mean", "rewards/margins"):
        c = curve(history, key)
        if c:
            return c, key
    return [], None


def _child_train(job: dict[str, Any]) -> dict[str, Any]:
    from sqlcoach.bench.memory import track_peak

    kind = job["method"]
    cls, fn = RECIPES[kind].load()
    values = recipe_values(kind, cls, job)
    cfg = build_config(cls, values, source=f"{job['name']} ({kind}) recipe config")
    kwargs: dict[str, Any] = {}
    params = inspect.signature(fn).parameters
    timer = None
    if "callbacks" in params:
        timer = _step_timer()
        kwargs["callbacks"] = [timer]
    if "log" in params:
        kwargs["log"] = lambda m: print(f"[{job['name']}] {m}", flush=True)
    print(f"[{job['name']}] {kind}: {cls.__name__} " + json.dumps(_jsonable(values), default=str), flush=True)
    t0 = time.monotonic()
    with track_peak() as mem:
        summary = fn(cfg, **kwargs) or {}
    seconds = time.monotonic() - t0
    out_dir = Path(values["output_dir"])
    history = _log_history(summary, out_dir)
    steps = int(summary.get("global_step") or 0)
    if timer is not None and timer.durations:
        median_step, step_source = _median(timer.durations), "callback"
    elif isinstance(summary.get("median_step_seconds"), (int, float)):
        median_step, step_source = float(summary["median_step_seconds"]), "summary"
    elif steps:
        median_step, step_source = round(seconds / steps, 4), "mean"
    else:
        median_step, step_source = None, None
    # training time proper when the recipe reports it (data loading and saving excluded)
    train_secs = float(summary.get("train_seconds") or summary.get("seconds") or seconds)
    trained_tokens = None
    nt = [h["num_tokens"] for h in history if isinstance(h.get("num_tokens"), (int, float))]
    if nt:
        trained_tokens = float(nt[-1])
    elif isinstance(summary.get("tokens_trained"), (int, float)):
        trained_tokens = float(summary["tokens_trained"])
    gen_tokens = summary.get("tokens_generated")
    rc, rc_source = reward_curve(summary, history)
    final_dir = summary.get("final_dir") or str(out_dir / "final")
    return {
        "status": "ok",
        "final_dir": str(final_dir),
        "global_step": steps,
        "seconds": round(train_secs, 2),
        "median_step_seconds": median_step,
        "step_time_source": step_source,
        "step_seconds": [round(d, 4) for d in (timer.durations if timer else [])],
        "trained_tokens": trained_tokens,
        "trained_tokens_per_s": round(trained_tokens / train_secs, 1) if trained_tokens and train_secs > 0 else None,
        "generated_tokens": gen_tokens,
        "generated_tokens_per_s": round(float(gen_tokens) / train_secs, 1)
        if isinstance(gen_tokens, (int, float)) and train_secs > 0 else None,
        "peak_rss_mb_training": round(mem.rss_mb, 1),
        "peak_cuda_mb": round(mem.cuda_mb, 1) if mem.cuda_mb is not None else summary.get("peak_cuda_mb"),
        "recipe_peak_memory_mb": summary.get("peak_memory_mb"),
        "loss_curve": curve(history, "loss") or curve(history, "pg_loss"),  # PPO: policy-gradient loss
        "reward_curve": rc,
        "reward_curve_source": rc_source,
        "recipe_config": _jsonable(values),
        "recipe_summary": _jsonable({k: v for k, v in summary.items() if k not in ("log_history", "reward_curve")}),
    }


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=str))


def _child_eval(job: dict[str, Any]) -> dict[str, Any]:
    """Greedy predictions on the evaluation questions, scored by ``evaluate_examples``."""
    from sqlcoach.bench.memory import track_peak
    from sqlcoach.data import load_examples
    from sqlcoach.generate.predict import predict
    from sqlcoach.metrics import evaluate_examples
    from sqlcoach.models.load import load_model

    examples = load_examples(job["data_kind"], job["world"], job["eval_split"])
    if job.get("eval_limit"):
        examples = examples[: job["eval_limit"]]
    pred_path = Path(job["pred_path"])
    device = job["device"]
    tables = Path(job["world"]) / "tables.json"

    def score(exs: list[Any], path: Path) -> tuple[Any, Any, list[str]]:
        for p in (path, path.with_suffix(".jsonl")):
            if p.exists():  # predictions of an older model must never be resumed
                p.unlink()
        summ = predict(model, tok, exs, path, n=1, temperature=0.0, batch_size=job["eval_batch_size"],
                       max_new_tokens=job["max_new_tokens"], template=job["template"],
                       schema_style=job["schema_style"], schema_sample_values=job["schema_sample_values"],
                       seed=job["seed"], progress=False)
        preds = path.read_text().split("\n")[: len(exs)]
        rep = evaluate_examples(exs, preds, etype="all", mode="spider",
                                tables_path=str(tables) if tables.is_file() else None)
        return summ, rep, preds

    seen: dict[str, Any] | None = None
    with track_peak() as mem:
        model, tok = load_model(job["model"], dtype="float32" if device in ("cpu", "auto") else "auto", device=device)
        summ, rep, preds = score(examples, pred_path)
        print(rep.table(), flush=True)
        if job.get("seen_eval_limit"):
            pool = load_examples(job["data_kind"], job["world"], job["seen_eval_split"])
            n = min(int(job["seen_eval_limit"]), len(pool))
            picked = [pool[int(i * len(pool) / n)] for i in range(n)]  # evenly spread: files are grouped by database
            _, srep, _ = score(picked, pred_path.with_name("pred_seen.sql"))
            print(f"seen databases ({job['seen_eval_split']}, {n} questions):\n{srep.table()}", flush=True)
            seen = {"split": job["seen_eval_split"], "questions": n, "summary": _jsonable(srep.summary)}
    samples = []
    for v, ex, p in list(zip(rep.verdicts, examples, preds))[:6]:
        samples.append({"question": ex.question, "db_id": ex.db_id, "pred": p, "gold": ex.gold_sql,
                        "ex": bool(v.ex), "error": v.error})
    for s in samples[:3]:  # show the samples in the log
        print(f"  Q: {s['question']}\n  pred: {s['pred']}\n  gold: {s['gold']}\n  ex={s['ex']} error={s['error']}", flush=True)
    return {
        "status": "ok",
        "questions": len(examples),
        "summary": _jsonable(rep.summary),
        "generated_tokens": summ.generated_tokens,
        "generated_tokens_per_s": summ.tokens_per_s,
        "examples_per_s": summ.examples_per_s,
        "predict_seconds": summ.seconds,
        "peak_rss_mb_eval": round(mem.rss_mb, 1),
        "peak_cuda_mb_eval": round(mem.cuda_mb, 1) if mem.cuda_mb is not None else None,
        "samples": samples,
        "pred_path": str(pred_path),
        "seen": seen,
    }


def _child_start(job: dict[str, Any]) -> dict[str, Any]:
    """Build world + tokenizer/random Qwen2 + short SFT, as ``sqlcoach demo`` does."""
    from sqlcoach.commands.demo import DEMO_SFT
    from sqlcoach.data import load_examples
    from sqlcoach.data.world import build_world
    from sqlcoach.models.tiny import init_tiny_model, world_corpus
    from sqlcoach.train.config import SFTRunConfig
    from sqlcoach.train.sft import build_rows, run_sft

    world, base = Path(job["world"]), Path(job["start_dir"])
    if not (world / "train.json").is_file():
        print(f"building the world in {world}", flush=True)
        build_world(world, seed=job["seed"], n_train=job.get("start_world_train"), n_dev=job.get("start_world_dev"),
                    progress=False)
    values = dict(DEMO_SFT)
    values.update(model=str(base / "model-init"), data_path=str(world), output_dir=str(base / "sft"),
                  max_steps=job["start_sft_steps"], max_seconds=None, anneal_by_clock=False, seed=job["seed"],
                  disable_tqdm=True,
                  template=job["template"], schema_style=job["schema_style"],
                  schema_sample_values=job["schema_sample_values"])
    cfg = build_config(SFTRunConfig, values, source="start SFT settings")
    train = load_examples("spider", world, "train")
    rows, _ = build_rows(train, template=cfg.template, schema_style=cfg.schema_style, sample_values=cfg.schema_sample_values)
    if not (base / "model-init" / "config.json").is_file():
        corpus = world_corpus(world) + [m["content"] for r in rows for m in r["prompt"] + r["completion"]]
        info = init_tiny_model(base / "model-init", job["start_size"], corpus, seed=job["seed"])
        print(f"model: {info['parameters']:,} parameters", flush=True)
    summary = run_sft(cfg, rows=rows, log=lambda m: print(m, flush=True))
    return {"status": "ok", "final_dir": summary["final_dir"], "global_step": summary["global_step"],
            "seconds": summary["seconds"]}


def child_main(argv: list[str]) -> int:
    """Entry point of a child process: ``MODE JOB.json``; writes the job's ``result_path``."""
    mode, job_path = argv
    _extra_recipes_from_env()
    job = json.loads(Path(job_path).read_text())
    fn = {"train": _child_train, "eval": _child_eval, "start": _child_start}[mode]
    try:
        res = fn(job)
    except Exception as exc:  # the parent reports it and goes on with the other methods
        import traceback

        traceback.print_exc()
        res = {"status": f"failed: {exc.__class__.__name__}: {exc}"}
    _write_json(Path(job["result_path"]), res)
    return 0


# ---------------------------------------------------------------------------------------------
# the comparison
# ---------------------------------------------------------------------------------------------


def _job_base(cfg: CompareConfig, start: Path, world: Path) -> dict[str, Any]:
    return {
        "start": str(start), "world": str(world), "data_kind": cfg.data_kind, "seed": cfg.seed,
        "template": cfg.template, "schema_style": cfg.schema_style, "schema_sample_values": cfg.schema_sample_values,
        "eval_split": cfg.eval_split, "eval_limit": cfg.eval_limit, "eval_batch_size": cfg.eval_batch_size,
        "max_new_tokens": cfg.max_new_tokens, "device": cfg.device, "budget": cfg.budget,
        "seen_eval_split": cfg.seen_eval_split, "seen_eval_limit": cfg.seen_eval_limit,
        "budget_value": cfg.budget_value,
    }


def fill_placeholders(values: dict[str, Any], base: dict[str, Any], mdir: Path) -> dict[str, Any]:
    """``{start}``, ``{world}``, ``{dir}``, ``{seed}`` in string override values replaced (e.g.
    ``pairs_path: "{dir}/pairs.jsonl"`` for the pairs a ``prepare`` line mined)."""
    subs = {"start": base["start"], "world": base["world"], "dir": str(mdir), "seed": base["seed"]}
    return {k: v.format(**subs) if isinstance(v, str) and "{" in v else v for k, v in values.items()}


def _prepare(spec: MethodSpec, mdir: Path, base: dict[str, Any], log: Callable[[str], None],
             threads: int | None) -> str | None:
    """Run the method's ``prepare`` command lines; returns an error text or ``None``."""
    for i, line in enumerate(spec.prepare):
        argv = [a.format(start=base["start"], world=base["world"], dir=str(mdir), seed=base["seed"])
                for a in shlex.split(line)]
        if argv and argv[0] == "sqlcoach":
            argv = argv[1:]
        log(f"{spec.name}: prepare: sqlcoach {' '.join(argv)}")
        env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
        if threads is not None:
            env["OMP_NUM_THREADS"] = str(threads)
        src = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        with (mdir / f"prepare{i}.log").open("w") as fh:
            rc = subprocess.call([sys.executable, "-m", "sqlcoach.cli", *argv], stdout=fh, stderr=subprocess.STDOUT, env=env)
        if rc != 0:
            tail = (mdir / f"prepare{i}.log").read_text(errors="replace").strip().splitlines()[-3:]
            return f"failed: prepare `sqlcoach {' '.join(argv)}` exited with {rc}: {' | '.join(tail)}"
    return None


def run_compare(cfg: CompareConfig, out: str | Path, *, log: Callable[[str], None] = print,
                config_path: str | None = None) -> dict[str, Any]:
    """Run (or resume) the comparison into ``out``; returns the report dict (also written as
    ``report.json``, ``report.md``, ``report.html``)."""
    from sqlcoach.bench.report import write_reports

    t0 = time.monotonic()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start, world, must_build = resolve_start(cfg, out)
    base = _job_base(cfg, start, world)

    # 1. the shared start -------------------------------------------------------------------------
    start_info: dict[str, Any] = {"path": str(start), "world": str(world), "built": False}
    if must_build:
        log(f"building the start checkpoint in {out / 'start'} (world, model init, {cfg.start_sft_steps} SFT steps)")
        res = run_child("start", dict(base, start_dir=str(out / "start"), start_size=cfg.start_size,
                                      start_sft_steps=cfg.start_sft_steps, start_world_train=cfg.start_world_train,
                                      start_world_dev=cfg.start_world_dev),
                        out / "start", log=log, threads=cfg.threads)
        if res.get("status") != "ok":
            raise ConfigError(f"could not build the start checkpoint: {res.get('status')} (log: {res.get('log')})")
        start_info.update(built=True, seconds=res.get("process_seconds"), global_step=res.get("global_step"))
        log(f"start built: {res.get('global_step')} SFT steps in {res.get('process_seconds')}s")

    # 2. each method -----------------------------------------------------------------------------
    fingerprint = start_fingerprint(start)
    rows: list[dict[str, Any]] = []
    entries: list[MethodSpec | None] = ([None] if cfg.eval_start else []) + list(cfg.methods)
    for spec in entries:
        name = "start" if spec is None else spec.name
        mdir = out / "methods" / name
        h = method_hash(cfg, spec, fingerprint)
        h_train = method_hash(cfg, spec, fingerprint, training_only=True)
        done = _read_json(mdir / "result.json")
        if done and done.get("config_hash") == h and done.get("status") == "ok":
            log(f"{name}: done already (result.json matches config hash {h}); skipping")
            rows.append(done)
            continue
        row: dict[str, Any] = {"name": name, "method": "start" if spec is None else spec.method, "config_hash": h,
                               "config": None if spec is None else dataclasses.asdict(spec)}
        mdir.mkdir(parents=True, exist_ok=True)
        train: dict[str, Any] | None = None
        if spec is not None:
            reason = RECIPES[spec.method].available() if spec.method in RECIPES else f"no recipe for {spec.method}"
            if reason:
                row["status"] = f"not available: {reason}"
                log(f"{name}: {row['status']}")
                _write_json(mdir / "result.json", row)
                rows.append(row)
                continue
            prev = _read_json(mdir / "train.json")
            if prev and prev.get("train_hash") == h_train and prev.get("status") == "ok" and Path(prev["final_dir"]).exists():
                log(f"{name}: training done already; evaluating only")
                train = prev
            else:
                tp = time.monotonic()
                err = _prepare(spec, mdir, base, log, cfg.threads)
                prepare_s = round(time.monotonic() - tp, 1) if spec.prepare else None
                if err:
                    row["status"] = err
                    log(f"{name}: {err}")
                    _write_json(mdir / "result.json", row)
                    rows.append(row)
                    continue
                log(f"{name}: training ({spec.method}) with budget {cfg.budget}={cfg.budget_value:g}")
                job = dict(base, name=name, method=spec.method, config=spec.config,
                           overrides=fill_placeholders(spec.overrides, base, mdir), output_dir=str(mdir / "train"))
                train = run_child("train", job, mdir, log=log, threads=cfg.threads)
                train["train_hash"] = h_train
                train["prepare_seconds"] = prepare_s
                _write_json(mdir / "train.json", train)
                if train.get("status") != "ok":
                    row.update(status=train.get("status"), train=train)
                    log(f"{name}: {train.get('status')} (log: {train.get('log')})")
                    _write_json(mdir / "result.json", row)
                    rows.append(row)
                    continue
                log(f"{name}: {train['global_step']} steps in {train['seconds']}s, median "
                    f"{train['median_step_seconds']}s/step, peak RSS {train['peak_process_rss_mb']} MiB")
        model_dir = str(start) if train is None else train["final_dir"]
        log(f"{name}: evaluating {model_dir}")
        ev = run_child("eval", dict(base, name=name, model=model_dir, pred_path=str(mdir / "pred.sql")), mdir,
                       log=log, threads=cfg.threads)
        if ev.get("status") != "ok":
            row.update(status=ev.get("status"), train=train, eval=ev)
            log(f"{name}: evaluation {ev.get('status')} (log: {ev.get('log')})")
            _write_json(mdir / "result.json", row)
            rows.append(row)
            continue
        row.update(status="ok", train=train, eval=ev)
        all_ = ev["summary"]["all"]
        seen = ev.get("seen") or {}
        log(f"{name}: EX {_pct(all_.get('ex'))} EM {_pct(all_.get('em'))} on {ev['questions']} questions; "
            f"executes {_pct(ev['summary'].get('executes'))}"
            + (f"; seen databases: EX {_pct(seen['summary']['all'].get('ex'))} on {seen['questions']}" if seen else ""))
        _write_json(mdir / "result.json", row)
        rows.append(row)

    # 3. report ----------------------------------------------------------------------------------
    report = {
        "command": f"sqlcoach compare --config {config_path} --out {out}" if config_path else None,
        "config": _jsonable(dataclasses.asdict(cfg)),
        "start": start_info,
        "methods": rows,
        "machine": machine_info(cfg.threads),
        "seconds_this_run": round(time.monotonic() - t0, 1),
    }
    write_reports(report, out)
    return report


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def machine_info(threads: int | None) -> dict[str, Any]:
    import platform

    info: dict[str, Any] = {"cpu_count": os.cpu_count(), "threads_per_method": threads,
                            "python": platform.python_version(), "platform": platform.platform()}
    try:
        from importlib.metadata import version

        for pkg in ("torch", "transformers", "trl"):
            info[pkg] = version(pkg)
    except Exception:  # metadata missing on an unusual install: the report just omits versions
        pass
    return info


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
