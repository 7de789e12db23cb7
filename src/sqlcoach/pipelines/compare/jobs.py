"""The comparison's child processes: ``python -m sqlcoach.pipelines.compare.jobs start|train|eval JOB.json``.

Every training run and every evaluation is a separate Python process. The parent (``run_child``)
waits for it with ``os.wait4`` and records that process's peak resident set (``ru_maxrss``: the
whole process, model loading included; on Linux the largest of the process and the children it
reaped, e.g. SQL executor workers, not their sum). Inside the child,
``sqlcoach.runtime.memory.track_peak`` adds CUDA's ``max_memory_allocated`` on a GPU. Every recipe
keeps ``train.recipes.RecipeFn`` (``callbacks=``, ``log=``); the median time per optimizer step
comes from the step-timer callback when the recipe called it, otherwise from the recipe's summary
(``median_step_seconds``), otherwise seconds / steps (marked ``mean``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from sqlcoach.config import build_config
from sqlcoach.config.compare import ADAPT_KINDS
from sqlcoach.errors import ConfigError
from sqlcoach.pipelines.compare.result import EvalResult, TrainResult
from sqlcoach.runtime.files import atomic_write
from sqlcoach.train.recipes import RECIPES


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=2, default=str) + "\n")


def child_env(threads: int | None) -> dict[str, str]:
    """The environment of every child process (jobs and ``prepare`` commands): offline, the
    thread count of the comparison, and the same sqlcoach as this process on ``PYTHONPATH`` (a
    checkout without install included)."""
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["PYTHONUNBUFFERED"] = "1"
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
        env["MKL_NUM_THREADS"] = str(threads)
    src = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _median(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 4) if xs else None


def run_child(mode: str, job: dict[str, Any], job_dir: Path, *, log: Callable[[str], None] = print,
              threads: int | None = 1) -> dict[str, Any]:
    """Run ``python -m sqlcoach.pipelines.compare.jobs MODE JOB.json`` and return its result dict, with the
    child's peak RSS (``peak_process_rss_mb``) and wall time (``process_seconds``) added.

    The child's stdout/stderr go to ``job_dir/MODE.log``. A child that dies without writing its
    result gives ``{"status": "failed: ..."}`` with the log's last lines."""
    job_dir.mkdir(parents=True, exist_ok=True)
    job_path = job_dir / f"{mode}.job.json"
    result_path = job_dir / f"{mode}.out.json"
    if result_path.exists():
        result_path.unlink()
    job = dict(job, result_path=str(result_path))
    write_json(job_path, job)
    env = child_env(threads)
    log_path = job_dir / f"{mode}.log"
    t0 = time.monotonic()
    with log_path.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "sqlcoach.pipelines.compare.jobs", mode, str(job_path)],
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
    res = read_json(result_path)
    if res is None:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-6:]
        res = {"status": f"failed: the {mode} process exited with code {proc.returncode} and wrote no result",
               "log_tail": tail}
    res["peak_process_rss_mb"] = round(peak, 1)
    res["process_seconds"] = round(secs, 2)
    res["log"] = str(log_path)
    return res


def recipe_values(kind: str, cls: type, job: dict[str, Any]) -> dict[str, Any]:
    """The recipe config values: its YAML, then the method's overrides, then what the comparison
    fixes for every method (start model, data, output folder, seed, prompt format, budget).

    Keys the recipe config does not have are not set (a recipe without ``max_seconds`` cannot take
    a seconds budget: that is an error that says so)."""
    fields = {f.name for f in dataclasses.fields(cls)}
    values = _yaml_values(job)
    fixed = {
        "model": job["start"],
        "data_path": job["world"],
        "data_kind": job["data_kind"],
        "output_dir": job["output_dir"],
        "seed": job["seed"],
        "template": job["template"],
        "schema_style": job["schema_style"],
        "schema_sample_values": job["schema_sample_values"],
        **{k: job[k] for k in ("value_retrieval", "token_budget", "turn_history") if job.get(k) is not None},
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
    """The trainer's log history: from the summary, else ``log_history.json`` (every recipe
    writes it beside ``final/``: ``train.run.save_final``, PPO's own save)."""
    hist = summary.get("log_history")
    if isinstance(hist, list):
        return hist
    try:
        data = json.loads((output_dir / "log_history.json").read_text())
    except (OSError, ValueError):
        return []
    return data if isinstance(data, list) else []


def curve(history: list[dict[str, Any]], key: str) -> list[list[float]]:
    """``[[step, value], ...]`` of ``key`` in a log history (entries without it, or not a mapping, are skipped)."""
    out = []
    for h in history:
        if not isinstance(h, dict):
            continue
        v, s = h.get(key), h.get("step")
        if isinstance(v, (int, float)) and isinstance(s, (int, float)) and math.isfinite(float(v)):
            out.append([float(s), float(v)])
    return out


def reward_curve(summary: dict[str, Any], history: list[dict[str, Any]]) -> tuple[list[list[float]], str | None]:
    """The reward per step: the recipe's ``reward_curve`` (its one shape, ``train.rl.RewardPoint``:
    ``{"step", "reward", ...}`` dicts), else the log history's ``reward`` (TRL GRPO), else DPO's
    ``rewards/margins``. Returns (curve, source key)."""
    rc = summary.get("reward_curve")
    if isinstance(rc, list) and rc:
        out = curve(rc, "reward")  # a point whose reward is None or not finite is skipped
        if out:
            return out, "summary.reward_curve"
    for key in ("reward", "rewards/mean", "rewards/margins"):
        c = curve(history, key)
        if c:
            return c, key
    return [], None


def _child_train(job: dict[str, Any]) -> TrainResult:
    from sqlcoach.runtime.memory import track_peak
    from sqlcoach.train.callbacks import step_timer

    kind = job["method"]
    if kind in ADAPT_KINDS:
        return _child_adapt(job)
    cls, fn = RECIPES[kind].config, RECIPES[kind].run
    values = recipe_values(kind, cls, job)
    cfg = build_config(cls, values, source=f"{job['name']} ({kind}) recipe config")
    timer = step_timer()
    print(f"[{job['name']}] {kind}: {cls.__name__} " + json.dumps(_jsonable(values), default=str), flush=True)
    t0 = time.monotonic()
    with track_peak() as mem:
        summary = fn(cfg, callbacks=[timer], log=lambda m: print(f"[{job['name']}] {m}", flush=True)) or {}
    return _train_result(summary, values, Path(values["output_dir"]), time.monotonic() - t0, timer.seconds, mem)


def _train_result(summary: dict[str, Any], values: dict[str, Any], out_dir: Path, seconds: float,
                  step_seconds: list[float], mem: Any) -> TrainResult:
    """The ``TrainResult`` of a finished run: its ``RunSummary`` dict (``summary``), the values it
    was configured with, its output folder, the wall seconds around it, the step timer's seconds
    and ``track_peak``'s figures (``mem``)."""
    history = _log_history(summary, out_dir)
    steps = int(summary.get("global_step") or 0)
    if step_seconds:
        median_step, step_source = _median(step_seconds), "callback"
    elif isinstance(summary.get("median_step_seconds"), (int, float)):
        median_step, step_source = float(summary["median_step_seconds"]), "summary"
    elif steps:
        median_step, step_source = round(seconds / steps, 4), "mean"
    else:
        median_step, step_source = None, None
    # training time proper (data loading and saving excluded): every recipe's RunSummary has it
    train_secs = float(summary["train_seconds"]) if isinstance(summary.get("train_seconds"), (int, float)) else seconds
    trained_tokens = None
    nt = [h["num_tokens"] for h in history if isinstance(h.get("num_tokens"), (int, float))]
    if nt:
        trained_tokens = float(nt[-1])
    elif isinstance(summary.get("tokens_trained"), (int, float)):
        trained_tokens = float(summary["tokens_trained"])
    gen_tokens = summary.get("tokens_generated")
    rc, rc_source = reward_curve(summary, history)
    final_dir = summary.get("final_dir") or str(out_dir / "final")
    return TrainResult(
        status="ok",
        final_dir=str(final_dir),
        global_step=steps,
        seconds=round(train_secs, 2),
        median_step_seconds=median_step,
        step_time_source=step_source,
        step_seconds=[round(d, 4) for d in step_seconds],
        trained_tokens=trained_tokens,
        trained_tokens_per_s=round(trained_tokens / train_secs, 1) if trained_tokens and train_secs > 0 else None,
        generated_tokens=gen_tokens,
        generated_tokens_per_s=round(float(gen_tokens) / train_secs, 1)
        if isinstance(gen_tokens, (int, float)) and train_secs > 0 else None,
        peak_rss_mb_training=round(mem.rss_mb, 1),
        peak_cuda_mb=round(mem.cuda_mb, 1) if mem.cuda_mb is not None else summary.get("peak_cuda_mb"),
        recipe_peak_memory_mb=summary.get("peak_memory_mb"),
        loss_curve=curve(history, "loss") or curve(history, "pg_loss"),  # PPO logs its policy-gradient loss
        reward_curve=rc,
        reward_curve_source=rc_source,
        recipe_config=_jsonable(values),
        recipe_summary=_jsonable({k: v for k, v in summary.items() if k not in ("log_history", "reward_curve")}),
    )


def _yaml_values(job: dict[str, Any]) -> dict[str, Any]:
    """A method's YAML (``config``) with its ``overrides`` on top."""
    import yaml

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
    return values


def adapt_options(job: dict[str, Any]) -> Any:
    """The ``pipelines.adapt.AdaptOptions`` of an ``adapt`` method: its YAML and overrides
    (``AdaptOptions`` keys; GRPO keys go under ``overrides``), then what the comparison fixes:
    the seed, the CPU, the prompt settings every row is scored with (as GRPO keys), and the
    budget: ``steps`` is ``max_steps``; ``seconds`` is GRPO's ``max_seconds`` (``max_steps``
    stays the cap, as for the recipes: raise it so that the clock stops the run); ``samples`` is
    completions, ``max_steps = ceil(samples / (num_generations x questions_per_step))``, as a
    GRPO row's batch counts them. Unknown keys are a ``ConfigError``."""
    from sqlcoach.pipelines.adapt import AdaptOptions
    from sqlcoach.prompts.settings import PROMPT_KEYS

    values = _yaml_values(job)
    for k in ("seed", "use_cpu"):
        if k in values:
            raise ConfigError(f"method {job['name']} (adapt): {k} is set by the comparison, not the method")
    values.update(seed=job["seed"], use_cpu=job["device"] == "cpu")
    # the two container fields are checked here (the typed loader takes scalars)
    grpo = values.pop("overrides", None) or {}
    if not isinstance(grpo, dict):
        raise ConfigError(f"method {job['name']} (adapt): overrides.overrides must be a mapping of GRPO config keys")
    reward = values.pop("reward", None)
    opts = build_config(AdaptOptions, values, source=f"method {job['name']} (adapt) options")
    if reward is not None:
        reward = [r.strip() for r in reward.split(",") if r.strip()] if isinstance(reward, str) else reward
        if not isinstance(reward, list) or not reward or not all(isinstance(r, (str, dict)) for r in reward):
            raise ConfigError(f"method {job['name']} (adapt): reward must be a reward name, a comma-separated list "
                              f"or a list of names / {{name: ...}} mappings, got {reward!r}")
        opts.reward = reward
    grpo = dict(grpo)
    grpo.update({k: job[k] for k in PROMPT_KEYS if job.get(k) is not None})
    grpo.setdefault("disable_tqdm", True)
    budget, value = job["budget"], job["budget_value"]
    if budget == "steps":
        opts.max_steps = int(value)
    elif budget == "seconds":
        grpo["max_seconds"] = float(value)
    else:
        opts.max_steps = max(1, math.ceil(int(value) / (opts.num_generations * opts.questions_per_step)))
    opts.overrides = grpo
    return opts


def adapt_questions(job: dict[str, Any]) -> list[Any]:
    """The questions an ``adapt`` method adapts on: half A of ``eval_split``
    (``data.questions.in_half_a``), every one (``eval_limit`` cuts the scored half B only)."""
    from sqlcoach.data import load_examples
    from sqlcoach.data.questions import in_half_a

    return [e for e in load_examples(job["data_kind"], job["world"], job["eval_split"]) if in_half_a(e.question)]


def eval_examples(job: dict[str, Any]) -> list[Any]:
    """The scored questions: ``eval_split`` (its half B when ``eval_half`` is ``b``), a sample of
    ``eval_limit`` stratified over its databases, never "the first N" (dev files are grouped by
    database, so the first 200 came from 2 of 5 databases)."""
    from sqlcoach.data import load_examples
    from sqlcoach.data.questions import in_half_a
    from sqlcoach.pipelines.evaluate import stratified

    examples = load_examples(job["data_kind"], job["world"], job["eval_split"])
    if job.get("eval_half", "all") == "b":
        examples = [e for e in examples if not in_half_a(e.question)]
    return stratified(examples, job.get("eval_limit"))


def _child_adapt(job: dict[str, Any]) -> TrainResult:
    """An ``adapt`` method: ``sqlcoach adapt`` (``pipelines.adapt.adapt``) from the start on half A
    of the evaluation split, written as JSONL with ``question`` and ``db_id`` only (no SQL in the
    file at all). Its ``report.json`` (per database, collapse curve, early stop) is kept in the
    result's ``recipe_summary["adapt"]``."""
    from sqlcoach.pipelines.adapt import adapt
    from sqlcoach.runtime.memory import track_peak

    opts = adapt_options(job)
    out = Path(job["output_dir"])
    half_a = adapt_questions(job)
    if not half_a:
        raise ConfigError(f"method {job['name']} (adapt): half A of {job['eval_split']} holds no question")
    qfile = out.parent / "half_a.jsonl"
    qfile.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(qfile, "".join(json.dumps({"question": e.question, "db_id": e.db_id}) + "\n" for e in half_a))
    values = {"start": job["start"], "questions": str(qfile), "half_a_questions": len(half_a),
              **dataclasses.asdict(opts)}
    print(f"[{job['name']}] adapt: " + json.dumps(_jsonable(values), default=str), flush=True)
    t0 = time.monotonic()
    with track_peak() as mem:
        report = adapt(job["start"], str(qfile), str(out), databases=str(Path(job["world"]) / "database"), opts=opts,
                       log=lambda m: print(f"[{job['name']}] {m}", flush=True))
    written = read_json(out / "summary.json") or {}  # train.run.write_summary: {"recipe", "config", "summary"}
    summary = dict(written.get("summary") or {})
    summary["final_dir"] = report.get("final") or summary.get("final_dir")
    summary["adapt"] = {k: report.get(k) for k in ("adapted", "per_database", "early_stop", "collapse_curve",
                                                  "changed_count", "held_count")}
    return _train_result(summary, values, out, time.monotonic() - t0, [], mem)


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=str))


def _child_eval(job: dict[str, Any]) -> EvalResult:
    """Greedy predictions on the evaluation questions (and, with ``seen_eval_limit``, on questions
    of databases seen in training, spread over the split), scored by ``evaluate_examples``. With
    ``agent`` (a ``config.agent.AgentEval`` as a mapping) every prediction is a greedy trajectory
    (``pipelines.evaluate.agent_predict_and_score``: ``predict --agent``) and the result carries
    ``agent_figures``."""
    from sqlcoach.config.agent import AgentEval
    from sqlcoach.data import load_examples
    from sqlcoach.models.load import load_model
    from sqlcoach.pipelines.evaluate import agent_predict_and_score, predict_and_score, spread
    from sqlcoach.runtime.memory import track_peak

    agent = AgentEval.of(job.get("agent"), where=f"method {job.get('name')}: agent")
    if agent is not None and (job.get("headroom_n") or job.get("api") or job.get("selection")):
        raise ConfigError("an agent evaluation runs one greedy trajectory per question of a local policy: it cannot be "
                          "combined with headroom_n (single-pass samples), an api or a verifier row")
    examples = eval_examples(job)
    if job.get("api"):
        return _child_eval_api(job, examples)
    if job.get("selection"):
        return _child_eval_select(job, examples)
    pred_path, device = Path(job["pred_path"]), job["device"]

    def score(exs: list[Any], path: Path) -> Any:
        if agent is not None:
            return agent_predict_and_score(
                model, tok, exs, path, prompt=job_prompt(job), agent=agent, batch_size=job["eval_batch_size"],
                max_new_tokens=job["max_new_tokens"], seed=job["seed"], tables_path=Path(job["world"]) / "tables.json",
                samples=6)
        return predict_and_score(
            model, tok, exs, path, n=1, temperature=0.0, batch_size=job["eval_batch_size"],
            max_new_tokens=job["max_new_tokens"], prompt=job_prompt(job), seed=job["seed"], progress=False,
            tables_path=Path(job["world"]) / "tables.json", samples=6,
        )

    seen: dict[str, Any] | None = None
    sampled: dict[str, Any] = {}
    with track_peak() as mem:
        model, tok = load_model(job["model"], dtype="float32" if device in ("cpu", "auto") else "auto", device=device)
        t0 = time.monotonic()
        main = score(examples, pred_path)
        greedy_s = time.monotonic() - t0
        print(main.report.table(), flush=True)
        if job.get("headroom_n"):
            # the row's EX stays greedy: the samples feed the headroom table and the selections
            sampled, _ = _sampled(job, model, tok, examples, main, {}, "greedy", job["headroom_n"],
                                  job["headroom_temperature"], greedy_s, pred_path.with_name("pred_sampled.sql"))
        if job.get("seen_eval_limit"):
            picked = spread(load_examples(job["data_kind"], job["world"], job["seen_eval_split"]), job["seen_eval_limit"])
            srep = score(picked, pred_path.with_name("pred_seen.sql")).report
            print(f"seen databases ({job['seen_eval_split']}, {len(picked)} questions):\n{srep.table()}", flush=True)
            seen = {"split": job["seen_eval_split"], "questions": len(picked), "summary": _jsonable(srep.summary)}
    for s in main.samples[:3]:  # show the samples in the log
        print(f"  Q: {s['question']}\n  pred: {s['pred']}\n  gold: {s['gold']}\n  ex={s['ex']} error={s['error']}", flush=True)
    if agent is not None:
        print(main.predict.line(), flush=True)
        sampled["agent"] = agent_figures(agent, main.predict)
    return _local_eval_result(main, len(examples), mem, pred_path, seen=seen, **sampled)


def agent_figures(agent: Any, summary: Any) -> dict[str, Any]:
    """``EvalResult.agent``: the ``AgentEval`` settings and what the trajectories did (an
    ``AgentSummary`` with its recoveries filled in by ``agent_predict_and_score``)."""
    return {"settings": dataclasses.asdict(agent), "mean_turns": summary.mean_turns, "queries_run": summary.queries_run,
            "answered": summary.answered, "finish": dict(summary.finish), "recoveries": summary.recoveries,
            "first_query_failed": summary.first_query_failed, "generation_seconds": summary.generation_seconds,
            "execution_seconds": summary.execution_seconds}


def _sampled(job: dict[str, Any], model: Any, tok: Any, examples: list[Any], greedy: Any, learned: dict[str, Any],
             headline: str, n: int, temperature: float, greedy_seconds: float,
             path: Path) -> tuple[dict[str, Any], Any]:
    """``n`` samples per question and every selection among them (the rules of
    ``execution.select.SELECTORS`` and the ``learned`` ones), scored, with the headroom table
    (``pipelines.evaluate.select_and_score``). Returns the ``EvalResult`` fields ``selections``
    (each selection's outcomes and ``greedy``'s), ``headroom`` and ``sampling`` (the inference
    cost; ``select``: the selection the row's EX is, ``greedy`` for a greedy row), and the scored
    run of the ``headline`` selection (a learned one; ``vote`` stands in when it is ``greedy``)."""
    from sqlcoach.execution.select import SELECTORS
    from sqlcoach.pipelines.evaluate import select_and_score

    selectors = {**SELECTORS, **learned}
    run = select_and_score(model, tok, examples, path, prompt=job_prompt(job), greedy=greedy, selectors=selectors,
                           headline=headline if headline in selectors else "vote",
                           db_dir=Path(job["world"]) / "database", n=n, temperature=temperature,
                           batch_size=job["eval_batch_size"], max_new_tokens=job["max_new_tokens"], seed=job["seed"],
                           tables_path=Path(job["world"]) / "tables.json", samples=6)
    print(run.headroom.table(), flush=True)
    selections = {name: _outcomes(sc) for name, sc in run.by_selection.items()}
    selections["greedy"] = _outcomes(greedy)
    sampling = {"n": n, "temperature": temperature, "select": headline, "verifier": job.get("verifier"),
                "questions": len(examples), "generations": n * len(examples), "greedy_seconds": round(greedy_seconds, 2),
                "sample_seconds": run.sample_seconds, "select_seconds": run.select_seconds}
    return {"selections": selections, "headroom": _jsonable(run.headroom.as_dict()), "sampling": sampling}, run.chosen


def _local_eval_result(main: Any, questions: int, mem: Any, pred_path: Path, **more: Any) -> EvalResult:
    """The ``EvalResult`` of a local model's scored run (``pipelines.evaluate.Scored``) with
    ``track_peak``'s figures (``mem``); ``more``: the optional fields (``seen``, ``selections``, ...)."""
    summ = main.predict
    return EvalResult(
        status="ok", questions=questions, summary=_jsonable(main.report.summary),
        generated_tokens=summ.generated_tokens, generated_tokens_per_s=summ.tokens_per_s,
        examples_per_s=summ.examples_per_s, predict_seconds=summ.seconds, prompt_tokens=summ.prompt_tokens,
        peak_rss_mb_eval=round(mem.rss_mb, 1),
        peak_cuda_mb_eval=round(mem.cuda_mb, 1) if mem.cuda_mb is not None else None,
        samples=main.samples, pred_path=str(pred_path),
        per_question=per_question(main.report.verdicts), by_db=by_database(main.report.verdicts), **more,
    )


def _outcomes(scored: Any) -> dict[str, Any]:
    """One selection's figures in ``EvalResult.selections``: its summary and per-question outcomes."""
    return {"summary": _jsonable(scored.report.summary), "per_question": per_question(scored.report.verdicts),
            "by_db": by_database(scored.report.verdicts)}


def _child_eval_select(job: dict[str, Any], examples: list[Any]) -> EvalResult:
    """A ``verifier`` method's evaluation: the START model (``model``) predicts greedily (the
    headroom table's greedy row) and samples ``n`` answers per question at ``temperature``; the
    verifier trained by this method (``verifier``) and the rules of ``execution.select`` each
    choose among the same samples (``pipelines.evaluate.select_and_score``). The row's EX is the
    headline selection's (``select``); ``selections`` holds every selection's outcomes question by
    question (the report's intervals and paired tests), ``headroom`` the table, ``sampling`` the
    inference cost: samples x questions generations, and seconds."""
    from sqlcoach.execution.select import LEARNED_SELECTORS
    from sqlcoach.generate.verifier_select import build_selector
    from sqlcoach.models.load import load_model
    from sqlcoach.models.verifier import load_verifier
    from sqlcoach.pipelines.evaluate import predict_and_score
    from sqlcoach.runtime.memory import track_peak

    sel, device = job["selection"], job["device"]
    pred_path = Path(job["pred_path"])
    with track_peak() as mem:
        model, tok = load_model(job["model"], dtype="float32" if device in ("cpu", "auto") else "auto", device=device)
        t0 = time.monotonic()
        greedy = predict_and_score(model, tok, examples, pred_path.with_name("pred_greedy.sql"), n=1, temperature=0.0,
                                   batch_size=job["eval_batch_size"], max_new_tokens=job["max_new_tokens"],
                                   prompt=job_prompt(job), seed=job["seed"], progress=False,
                                   tables_path=Path(job["world"]) / "tables.json", samples=0)
        greedy_s = time.monotonic() - t0
        verifier = load_verifier(job["verifier"], device="cpu" if device == "cpu" else "auto")
        learned = {name: build_selector(name, verifier) for name in LEARNED_SELECTORS}
        sampled, chosen = _sampled(job, model, tok, examples, greedy, learned, sel["select"], sel["n"],
                                   sel["temperature"], greedy_s, pred_path)
    return _local_eval_result(chosen, len(examples), mem, pred_path, **sampled)


def job_prompt(job: dict[str, Any]) -> Any:
    """The ``PromptSettings`` an evaluation job carries: all six ``PROMPT_KEYS`` (the start model's
    recorded recipe with the comparison's explicit settings on top, resolved once by the parent's
    ``run._start_prompt``; an ``api`` method's overrides on top of those). A key missing from the
    job is an error, never a silent default: a local row and an ``api`` row of one start are
    prompted byte for byte alike."""
    from sqlcoach.prompts.settings import PROMPT_KEYS, PromptSettings

    missing = [k for k in PROMPT_KEYS if job.get(k) is None]
    if missing:
        raise ConfigError(f"evaluation job {job.get('name')!r} lacks the prompt settings {missing}")
    return PromptSettings(**{k: job[k] for k in PROMPT_KEYS})


def per_question(verdicts: list[Any]) -> dict[str, list[Any]]:
    """The evaluation's outcomes question by question, in question order: what the report's
    confidence intervals and paired tests resample (``metrics.stats``)."""
    return {"ex": [int(bool(v.ex)) for v in verdicts], "db_id": [v.db_id for v in verdicts],
            "hardness": [v.hardness for v in verdicts], "error": [v.error for v in verdicts]}


def by_database(verdicts: list[Any]) -> dict[str, dict[str, Any]]:
    """``{db_id: {"n": questions, "ex": EX}}`` over the evaluation questions."""
    out: dict[str, dict[str, Any]] = {}
    for v in verdicts:
        d = out.setdefault(v.db_id, {"n": 0, "correct": 0})
        d["n"] += 1
        d["correct"] += int(bool(v.ex))
    return {k: {"n": d["n"], "ex": d["correct"] / d["n"]} for k, d in sorted(out.items())}


def _child_eval_api(job: dict[str, Any], examples: list[Any]) -> EvalResult:
    """An ``api`` method's evaluation: the same questions through its endpoint, scored as the others."""
    import os

    from sqlcoach.generate.openai_client import ChatClient
    from sqlcoach.pipelines.evaluate import api_predict_and_score

    api = job["api"]
    key_var = api.get("api_key_env") or ""
    if key_var and not os.environ.get(key_var):
        raise ConfigError(f"method {job['name']}: api_key_env {key_var} is not set in the environment")
    key = os.environ.get(key_var) if key_var else os.environ.get("OPENAI_API_KEY")
    client = ChatClient(api["base_url"], api["model"], api_key=key or None, timeout=api["request_timeout"],
                        max_retries=api["max_retries"], max_rps=api.get("max_rps"))
    main = api_predict_and_score(
        client, examples, Path(job["pred_path"]), prompt=job_prompt(job), max_new_tokens=job["max_new_tokens"], seed=job["seed"],
        concurrency=api["concurrency"], tables_path=Path(job["world"]) / "tables.json", progress=False, samples=6)
    print(main.report.table(), flush=True)
    summ = main.predict
    print(summ.line(), flush=True)
    return EvalResult(
        status="ok", questions=len(examples), summary=_jsonable(main.report.summary),
        generated_tokens=summ.completion_tokens, prompt_tokens=summ.prompt_tokens,
        usage_known=summ.usage_known, api_errors=summ.errors, api_retries=summ.retries,
        examples_per_s=summ.examples_per_s, predict_seconds=summ.seconds,
        generated_tokens_per_s=summ.tokens_per_s, samples=main.samples, pred_path=str(job["pred_path"]),
        seen=None, api={"base_url": api["base_url"], "model": api["model"]},
        per_question=per_question(main.report.verdicts), by_db=by_database(main.report.verdicts),
    )


def _child_start(job: dict[str, Any]) -> dict[str, Any]:
    """The start checkpoint, built as ``sqlcoach demo`` builds it (``pipelines.demo.build_tiny_start``:
    the same tokenizer vocabulary and model) with the demo's SFT recipe run for ``start_sft_steps``:
    with ``start_schedule: cosine`` the recipe's own schedule (warmup, cosine anneal over those
    steps: at 1600 steps, the demo's model), or at a constant learning rate (a half-trained start)."""
    from sqlcoach.pipelines.demo import build_tiny_start, demo_sft_values

    world, base = Path(job["world"]), Path(job["start_dir"])
    values = demo_sft_values()
    values.update(model=str(base / "model-init"), data_path=str(world), output_dir=str(base / "sft"),
                  max_steps=job["start_sft_steps"], seed=job["seed"], disable_tqdm=True)
    if job.get("start_schedule", "constant") == "constant":
        values.update(lr_scheduler_type="constant", warmup_ratio=0.0)
    from sqlcoach.prompts.recipe import PROMPT_KEYS

    values.update({k: job[k] for k in PROMPT_KEYS if job.get(k) is not None})
    from sqlcoach.config import SFTRunConfig

    cfg = build_config(SFTRunConfig, values, source="start SFT settings")
    summary = build_tiny_start(world, base, cfg, size=job["start_size"], seed=job["seed"],
                               n_train=job.get("start_world_train"), n_dev=job.get("start_world_dev"),
                               log=lambda m: print(m, flush=True))
    return {"status": "ok", "final_dir": summary["final_dir"], "global_step": summary["global_step"],
            "seconds": summary["seconds"]}


def child_main(argv: list[str]) -> int:
    """Entry point of a child process: ``MODE JOB.json``; writes the job's ``result_path``."""
    mode, job_path = argv
    job = json.loads(Path(job_path).read_text())
    fn = {"train": _child_train, "eval": _child_eval, "start": _child_start}[mode]
    try:
        res = fn(job)
        if isinstance(res, (TrainResult, EvalResult)):
            res = res.as_dict()
    except Exception as exc:  # the parent reports it and goes on with the other methods
        import traceback

        traceback.print_exc()
        res = {"status": f"failed: {exc.__class__.__name__}: {exc}"}
    write_json(Path(job["result_path"]), res)
    return 0




if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
