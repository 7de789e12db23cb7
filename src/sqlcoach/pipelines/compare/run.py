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
   ``method: verifier`` trains a verifier (``run_verifier``) from the start; ``method: adapt``
   runs ``sqlcoach adapt`` (``pipelines.adapt.adapt``, label-free) from the start on half A of the
   evaluation split's questions (``data.questions.in_half_a``), its options checked first
   (``check_methods``).
3. **Each result** is evaluated the same way: greedy ``sqlcoach.generate.predict.predict`` on the
   same dev questions, then ``sqlcoach.metrics.evaluate_examples`` (EX, EM, per hardness, share
   of predictions that execute). With an ``adapt`` row every row is scored on half B only
   (``eval_half: b``): no row is scored on a question any row adapted on. A ``verifier`` row
   scores the START: n samples per question, every selection among them (its ``select`` is the
   row's EX), the headroom table and the inference cost (``jobs._child_eval_select``).
4. **Report**: ``DIR/report.json``, ``DIR/report.md`` and a self-contained ``DIR/report.html``
   (``sqlcoach.pipelines.compare.report``).

Isolation and honest memory: every training run and every evaluation is a separate process
(``sqlcoach.pipelines.compare.jobs``, whose docstring says what is measured and how).

Resume: each method writes ``DIR/methods/<name>/result.json`` holding the hash of everything that
decides its outcome (the shared settings, the method entry, the recipe YAML's text). Running the
same command again skips a method whose result exists with status ``ok`` and the same hash; a
finished training whose evaluation was interrupted is not trained again (``train.json``).
A method whose recipe fails is reported as ``failed: <error>``; the comparison goes on with the others.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from sqlcoach.config.compare import ADAPT_KINDS, API_KINDS, SELECTION_KINDS, CompareConfig, MethodSpec
from sqlcoach.errors import ConfigError
from sqlcoach.prompts.settings import PROMPT_KEYS
from sqlcoach.pipelines.compare import jobs
from sqlcoach.pipelines.compare.jobs import _jsonable, read_json, write_json
from sqlcoach.pipelines.compare.result import CompareReport, EvalResult, MethodRow, TrainResult, summarize_seeds

#: Result file schema version (a change re-runs every method). 2: recipes write train.run.RunSummary;
#: 3: eval_limit is a sample stratified over databases (was: the first N), per-question outcomes kept.
RESULT_VERSION = 3


#: Settings that decide a training result, and those that only decide its evaluation: changing
#: the latter re-evaluates every method without training it again.
TRAIN_KEYS = ("start", "world", "data_kind", "start_size", "start_sft_steps", "start_schedule", "start_world_train", "start_world_dev",
              "budget", "budget_value", "seed", "template", "schema_style", "schema_sample_values", "device")
EVAL_KEYS = ("eval_split", "eval_limit", "eval_batch_size", "max_new_tokens", "seen_eval_split", "seen_eval_limit",
             "eval_half", "headroom_n", "headroom_temperature", "eval_agent")
#: keys hashed only when they differ from their default, so that the results of a comparison run
#: before the key existed still resume
NEW_KEYS_DEFAULT = {"eval_half": "all", "headroom_n": 0, "headroom_temperature": 0.8, "eval_agent": None}
#: MethodSpec fields hashed only when set (the same reason)
NEW_SPEC_FIELDS = ("n", "temperature", "select", "agent")


def _shared_settings(cfg: CompareConfig, keys: tuple[str, ...] = TRAIN_KEYS + EVAL_KEYS) -> dict[str, Any]:
    def plain(v: Any) -> Any:  # an agent block hashes as its settings
        return dataclasses.asdict(v) if dataclasses.is_dataclass(v) and not isinstance(v, type) else v

    return {k: plain(getattr(cfg, k)) for k in keys if NEW_KEYS_DEFAULT.get(k, ()) != getattr(cfg, k)}


def check_methods(cfg: CompareConfig) -> None:
    """What a method's own config says, checked before anything runs where the config layer cannot:
    an ``adapt`` method's options (``pipelines.adapt.AdaptOptions`` keys, its YAML file) and the
    GRPO config they make (GRPO keys under ``overrides.overrides``, reward names) build, or a
    ``ConfigError`` names the method and the key."""
    from sqlcoach.pipelines.adapt import grpo_config, reward_names
    from sqlcoach.rewards.registry import REWARDS

    for spec in cfg.methods:
        if spec.method in ADAPT_KINDS:
            opts = jobs.adapt_options({"name": spec.name, "config": spec.config, "overrides": spec.overrides,
                                       "seed": cfg.seed, "device": cfg.device, "budget": cfg.budget,
                                       "budget_value": cfg.budget_value})
            try:  # the GRPO config the run will build (its keys under overrides.overrides, the rewards)
                grpo_config(cfg.start or "(the start built by the comparison)", Path("(compare)"), opts)
            except ConfigError as exc:
                raise ConfigError(f"method {spec.name} (adapt): {exc}") from None
            unknown = [r for r in reward_names(opts.reward) if r not in REWARDS]
            if unknown:
                raise ConfigError(f"method {spec.name} (adapt): unknown reward(s) {unknown}; known: {sorted(REWARDS)}")


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


def _strings(v: Any) -> list[str]:
    if isinstance(v, str):
        return [v]
    if isinstance(v, dict):
        return [s for x in v.values() for s in _strings(x)]
    if isinstance(v, (list, tuple)):
        return [s for x in v for s in _strings(x)]
    return []


def override_paths_fingerprint(overrides: Any) -> dict[str, Any]:
    """``{path: fingerprint}`` of every override value (nested ones included) that names an existing
    file or folder, e.g. a verifier's ``verifier_path``: (size, mtime) of a file, a folder's
    ``start_fingerprint``. So a verifier or reward model trained again under the same path makes the
    method that reads it run again, as a new start does. Values with placeholders (``{dir}/...``,
    what a ``prepare`` line builds) name nothing yet and are left out."""
    out: dict[str, Any] = {}
    for s in _strings(overrides):
        if not s or "{" in s:
            continue
        try:  # a value that cannot be a path (too long for the OS) raises here: it names nothing
            p = Path(s)
            if p.is_file():
                st = p.stat()
                out[s] = [st.st_size, st.st_mtime_ns]
            elif p.is_dir():
                out[s] = start_fingerprint(p)
        except OSError:
            continue
    return out


def method_hash(cfg: CompareConfig, spec: MethodSpec | None, start: list[list[Any]] | None = None,
                *, training_only: bool = False, prompt: dict[str, Any] | None = None) -> str:
    """Hash of what decides a method's outcome: the shared settings, its entry, its recipe YAML's
    text, the start checkpoint's ``start_fingerprint``, and that of every existing file or folder
    its overrides name (``override_paths_fingerprint``). ``spec=None`` is the start row.
    ``training_only=True`` leaves the evaluation settings out (the hash of ``train.json``).
    ``prompt``: the resolved prompt settings, for a row whose start is not in the hash (``api``)."""
    keys = TRAIN_KEYS if training_only else TRAIN_KEYS + EVAL_KEYS
    if training_only and spec is not None and spec.method in ADAPT_KINDS:
        keys += ("eval_split",)  # adapt trains on half A of the evaluation split: its training depends on it
    payload: dict[str, Any] = {"version": RESULT_VERSION, "shared": _shared_settings(cfg, keys), "start": start}
    if prompt is not None:
        payload["prompt"] = prompt
    if spec is not None:
        payload["method"] = {k: v for k, v in dataclasses.asdict(spec).items() if k not in NEW_SPEC_FIELDS or v is not None}
        if spec.config:
            p = Path(spec.config)
            payload["recipe_yaml"] = p.read_text() if p.is_file() else f"(missing) {spec.config}"
        paths = override_paths_fingerprint(spec.overrides)
        if paths:  # absent when none, so results from before this key still resume
            payload["override_paths"] = paths
    blob = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


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


def _job_base(cfg: CompareConfig, start: Path, world: Path) -> dict[str, Any]:
    return {
        "start": str(start), "world": str(world), "data_kind": cfg.data_kind, "seed": cfg.seed,
        "template": cfg.template, "schema_style": cfg.schema_style, "schema_sample_values": cfg.schema_sample_values,
        "eval_split": cfg.eval_split, "eval_limit": cfg.eval_limit, "eval_batch_size": cfg.eval_batch_size,
        "max_new_tokens": cfg.max_new_tokens, "device": cfg.device, "budget": cfg.budget,
        "seen_eval_split": cfg.seen_eval_split, "seen_eval_limit": cfg.seen_eval_limit,
        "budget_value": cfg.budget_value, "eval_half": cfg.eval_half, "headroom_n": cfg.headroom_n,
        "headroom_temperature": cfg.headroom_temperature,
    }


def _subs(base: dict[str, Any], mdir: Path) -> dict[str, str]:
    return {"{start}": str(base["start"]), "{world}": str(base["world"]), "{dir}": str(mdir), "{seed}": str(base["seed"])}


def _fill(v: Any, subs: dict[str, str]) -> Any:
    if isinstance(v, str):
        for k, val in subs.items():
            v = v.replace(k, val)
        return v
    if isinstance(v, dict):
        return {k: _fill(x, subs) for k, x in v.items()}
    if isinstance(v, list):
        return [_fill(x, subs) for x in v]
    return v


def fill_placeholders(values: dict[str, Any], base: dict[str, Any], mdir: Path) -> dict[str, Any]:
    """``{start}``, ``{world}``, ``{dir}``, ``{seed}`` replaced in every string override value, also
    inside nested mappings and lists (e.g. ``pairs_path: "{dir}/pairs.jsonl"`` for the pairs a
    ``prepare`` line mined, or a verifier path inside ``reward_options``). Other braces are left as
    they are: only these four names are placeholders."""
    subs = _subs(base, mdir)
    return {k: _fill(v, subs) for k, v in values.items()}


def _prepare(spec: MethodSpec, mdir: Path, base: dict[str, Any], log: Callable[[str], None],
             threads: int | None) -> str | None:
    """Run the method's ``prepare`` command lines; returns an error text or ``None``."""
    subs = _subs(base, mdir)
    for i, line in enumerate(spec.prepare):
        argv = [_fill(a, subs) for a in shlex.split(line)]
        if argv and argv[0] == "sqlcoach":
            argv = argv[1:]
        log(f"{spec.name}: prepare: sqlcoach {' '.join(argv)}")
        env = jobs.child_env(threads)
        with (mdir / f"prepare{i}.log").open("w") as fh:
            rc = subprocess.call([sys.executable, "-m", "sqlcoach.cli", *argv], stdout=fh, stderr=subprocess.STDOUT, env=env)
        if rc != 0:
            tail = (mdir / f"prepare{i}.log").read_text(errors="replace").strip().splitlines()[-3:]
            return f"failed: prepare `sqlcoach {' '.join(argv)}` exited with {rc}: {' | '.join(tail)}"
    return None


def run_compare(cfg: CompareConfig, out: str | Path, *, log: Callable[[str], None] = print,
                config_path: str | None = None) -> CompareReport:
    """Run (or resume) the comparison into ``out``; returns the report (also written as
    ``report.json``, ``report.md``, ``report.html``)."""
    from sqlcoach.pipelines.compare.report import write_reports

    t0 = time.monotonic()
    check_methods(cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start, world, must_build = resolve_start(cfg, out)
    base = _job_base(cfg, start, world)
    start_info: dict[str, Any] = {"path": str(start), "world": str(world), "built": False}
    if must_build:
        start_info.update(_build_start(cfg, base, out, log))
    base.update(_start_prompt(cfg, start, log))
    fingerprint = start_fingerprint(start)
    seeds = cfg.seed_list()
    # greedy evaluation of the start does not depend on the seed: one row, shared by every seed
    rows = [_run_method(cfg, None, base, out, fingerprint, start, log)] if cfg.eval_start else []
    for seed in seeds:  # seed-major: a complete first set of results comes early
        cfg_s = dataclasses.replace(cfg, seed=seed) if seed != cfg.seed else cfg
        base_s = dict(base, seed=seed)
        for spec in cfg.methods:
            if spec.method in API_KINDS and seed != seeds[0]:
                continue  # nothing trained: like the start, one greedy evaluation stands for every seed
            rows.append(_run_method(cfg_s, spec, base_s, out, fingerprint, start, log,
                                    seed_dir=f"seed{seed}" if len(seeds) > 1 else None))
    report = CompareReport(
        command=f"sqlcoach compare --config {config_path} --out {out}" if config_path else None,
        config=_jsonable(dataclasses.asdict(cfg)),
        start=start_info,
        methods=rows,
        across_seeds=summarize_seeds(rows, seeds, cfg.control_name()),
        machine=machine_info(cfg.threads),
        seconds_this_run=round(time.monotonic() - t0, 1),
    )
    write_reports(report, out)
    return report


def _start_prompt(cfg: CompareConfig, start: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """The prompt settings every method uses: the config's, else what the start model recorded."""
    from sqlcoach.prompts.recipe import resolve_prompt

    rec = resolve_prompt(start, template=cfg.template, schema_style=cfg.schema_style,
                         schema_sample_values=cfg.schema_sample_values, log=log)
    return rec.prompt.as_dict()  # checked once here; every job carries all six (jobs.job_prompt)


def _build_start(cfg: CompareConfig, base: dict[str, Any], out: Path, log: Callable[[str], None]) -> dict[str, Any]:
    log(f"building the start checkpoint in {out / 'start'} (world, model init, {cfg.start_sft_steps} SFT steps)")
    res = jobs.run_child("start", dict(base, start_dir=str(out / "start"), start_size=cfg.start_size,
                                       start_sft_steps=cfg.start_sft_steps, start_schedule=cfg.start_schedule,
                                       start_world_train=cfg.start_world_train,
                                       start_world_dev=cfg.start_world_dev),
                         out / "start", log=log, threads=cfg.threads)
    if res.get("status") != "ok":
        raise ConfigError(f"could not build the start checkpoint: {res.get('status')} (log: {res.get('log')})")
    log(f"start built: {res.get('global_step')} SFT steps in {res.get('process_seconds')}s")
    return {"built": True, "seconds": res.get("process_seconds"), "global_step": res.get("global_step")}


def _finish(row: MethodRow, mdir: Path, log: Callable[[str], None], message: str | None = None) -> MethodRow:
    if message:
        log(message)
    write_json(mdir / "result.json", row.as_dict())
    return row


def _train_method(cfg: CompareConfig, spec: MethodSpec, base: dict[str, Any], mdir: Path, h_train: str,
                  log: Callable[[str], None]) -> TrainResult:
    """The method's training result: ``train.json`` when it matches ``h_train``, else prepare + train."""
    prev = TrainResult.from_dict(read_json(mdir / "train.json"))
    if prev and prev.train_hash == h_train and prev.status == "ok" and Path(prev.final_dir or "").exists():
        log(f"{spec.name}: training done already; evaluating only")
        return prev
    tp = time.monotonic()
    err = _prepare(spec, mdir, base, log, cfg.threads)
    prepare_s = round(time.monotonic() - tp, 1) if spec.prepare else None
    if err:
        return TrainResult(status=err)
    log(f"{spec.name}: training ({spec.method}) with budget {cfg.budget}={cfg.budget_value:g}")
    job = dict(base, name=spec.name, method=spec.method, config=spec.config,
               overrides=fill_placeholders(spec.overrides, base, mdir), output_dir=str(mdir / "train"))
    train = TrainResult.from_dict(jobs.run_child("train", job, mdir, log=log, threads=cfg.threads))
    train.train_hash = h_train
    train.prepare_seconds = prepare_s
    write_json(mdir / "train.json", train.as_dict())
    if train.status == "ok":
        log(f"{spec.name}: {train.global_step} steps in {train.seconds}s, median "
            f"{train.median_step_seconds}s/step, peak RSS {train.peak_process_rss_mb} MiB")
    return train


def _run_method(cfg: CompareConfig, spec: MethodSpec | None, base: dict[str, Any], out: Path,
                fingerprint: list[list[Any]], start: Path, log: Callable[[str], None],
                seed_dir: str | None = None) -> MethodRow:
    """Train (unless ``spec`` is ``None``: the start row) and evaluate one method with ``cfg.seed``;
    its result row. With several seeds each run lives in ``methods/<name>/<seed_dir>``."""
    name = "start" if spec is None else spec.name
    mdir = out / "methods" / name / (seed_dir or "")
    if spec is not None and spec.method in API_KINDS:
        return _run_api_method(cfg, spec, base, mdir, log)
    h = method_hash(cfg, spec, fingerprint)
    done = MethodRow.from_dict(read_json(mdir / "result.json"))
    label = f"{name} (seed {cfg.seed})" if seed_dir else name
    if done and done.config_hash == h and done.ok:
        log(f"{label}: done already (result.json matches config hash {h}); skipping")
        return done
    row = MethodRow(name=name, method="start" if spec is None else spec.method, config_hash=h,
                    seed=None if spec is None else cfg.seed, config=None if spec is None else dataclasses.asdict(spec))
    mdir.mkdir(parents=True, exist_ok=True)
    train = None
    if spec is not None:
        train = _train_method(cfg, spec, base, mdir, method_hash(cfg, spec, fingerprint, training_only=True), log)
        if train.status != "ok":
            row.status, row.train = train.status, train
            return _finish(row, mdir, log, f"{name}: {train.status}" + (f" (log: {train.log})" if train.log else ""))
    job = dict(base, name=name, pred_path=str(mdir / "pred.sql"))
    if spec is not None and spec.method in SELECTION_KINDS:
        # the verifier is not a policy: the START samples and the trained verifier selects
        job.update(model=str(start), verifier=str(train.final_dir), selection=spec.selection())  # type: ignore[union-attr]
        log(f"{name}: evaluating {start} with {spec.selection()} and the verifier {train.final_dir}")  # type: ignore[union-attr]
    else:
        job["model"] = str(start) if train is None else str(train.final_dir)
        agent = cfg.eval_agent if spec is None else spec.agent_eval(cfg.eval_agent)
        if agent is not None:  # predict --agent semantics (jobs._child_eval)
            job["agent"] = dataclasses.asdict(agent)
        log(f"{name}: evaluating {job['model']}" + (f" as an agent ({agent.protocol}, at most {agent.max_turns} turns)"
                                                    if agent is not None else ""))
    ev = EvalResult.from_dict(jobs.run_child("eval", job, mdir, log=log, threads=cfg.threads))
    row.status, row.train, row.eval = ev.status, train, ev
    if ev.status != "ok":
        return _finish(row, mdir, log, f"{name}: evaluation {ev.status} (log: {ev.log})")
    seen = ev.seen or {}
    sels = ev.selections or {}
    ag = ev.agent or {}
    return _finish(row, mdir, log, f"{name}: EX {_pct(ev.ex)} EM {_pct(ev.em)} on {ev.questions} questions; "
                   f"executes {_pct(ev.executes)}"
                   + (f"; agent: mean turns {ag.get('mean_turns')}, {ag.get('queries_run')} queries run, recoveries "
                      f"{ag.get('recoveries')} of {ag.get('first_query_failed')}" if ag else "")
                   + (f"; seen databases: EX {_pct(ev.seen_ex)} on {seen['questions']}" if seen else "")
                   + ("; " + ", ".join(f"{k} {_pct(((v.get('summary') or {}).get('all') or {}).get('ex'))}"
                                        for k, v in sels.items()) if sels else ""))


def _run_api_method(cfg: CompareConfig, spec: MethodSpec, base: dict[str, Any], mdir: Path,
                    log: Callable[[str], None]) -> MethodRow:
    """An ``api`` method: no training; its endpoint answers the evaluation questions (resumed by
    content inside the child, so a rerun pays only for what is missing), scored as the others.
    Its hash leaves the start checkpoint out (a new start does not re-buy the API's answers) but
    holds the prompt settings it is asked with: the start's recorded recipe and the overrides."""
    prompt = {k: spec.overrides[k] for k in ("template", "schema_style", "schema_sample_values") if k in spec.overrides}
    h = method_hash(cfg, spec, None, prompt={k: dict(base, **prompt).get(k) for k in PROMPT_KEYS})
    done = MethodRow.from_dict(read_json(mdir / "result.json"))
    if done and done.config_hash == h and done.ok:
        log(f"{spec.name}: done already (result.json matches config hash {h}); skipping")
        return done
    row = MethodRow(name=spec.name, method=spec.method, config_hash=h, config=dataclasses.asdict(spec))
    mdir.mkdir(parents=True, exist_ok=True)
    api = {"base_url": spec.base_url, "model": spec.model, "api_key_env": spec.api_key_env,
           "concurrency": spec.concurrency, "request_timeout": spec.request_timeout, "max_retries": spec.max_retries,
           "max_rps": spec.overrides.get("max_rps")}
    log(f"{spec.name}: evaluating {spec.model} at {spec.base_url} (API, not trained)")
    ev = EvalResult.from_dict(jobs.run_child("eval", dict(base, **prompt, name=spec.name, api=api,
                                                          pred_path=str(mdir / "pred.sql")), mdir, log=log, threads=cfg.threads))
    row.status, row.eval = ev.status, ev
    if ev.status != "ok":
        return _finish(row, mdir, log, f"{spec.name}: evaluation {ev.status} (log: {ev.log})")
    errs = {k: v for k, v in (ev.api_errors or {}).items() if v}
    return _finish(row, mdir, log, f"{spec.name}: EX {_pct(ev.ex)} on {ev.questions} "
                   f"questions; {ev.prompt_tokens} prompt + {ev.generated_tokens} completion tokens"
                   + (f"; request errors {errs}" if errs else ""))


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


