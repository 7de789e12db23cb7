"""sqlcoach.pipelines.compare: config validation, budgets, hashing, curves, resume, failing
methods, and one real child process running a fake recipe (no torch)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from compare_fake_recipe import FakeRunConfig, run_fake
from sqlcoach.config import build_config
from sqlcoach.config.compare import ADAPT_KINDS, API_KINDS, METHOD_KINDS, CompareConfig, MethodSpec, load_compare_config
from sqlcoach.errors import ConfigError
from sqlcoach.pipelines.compare import jobs as J
from sqlcoach.pipelines.compare import run as R
from sqlcoach.train.recipes import RECIPES, Recipe

HERE = Path(__file__).parent
FAKE = Recipe(FakeRunConfig, run_fake)


def _cfg(tmp_path: Path, **kw) -> CompareConfig:
    start = tmp_path / "start"
    start.mkdir(exist_ok=True)
    if not (start / "config.json").exists():
        (start / "config.json").write_text("{}")
    world = tmp_path / "world"
    world.mkdir(exist_ok=True)
    values = dict(start=str(start), world=str(world), budget="steps", budget_value=3, eval_limit=5,
                  methods=[{"name": "sft", "method": "sft"}, {"name": "grpo", "method": "grpo"}])
    values.update(kw)
    return build_config(CompareConfig, values)


def test_unknown_keys_are_errors_at_both_levels(tmp_path):
    with pytest.raises(ConfigError, match="unknown key.*budgett"):
        _cfg(tmp_path, budgett="steps")
    with pytest.raises(ConfigError, match=r"methods\[0\].*unknown key.*lr"):
        _cfg(tmp_path, methods=[{"name": "a", "method": "sft", "lr": 1}])


@pytest.mark.parametrize("kw, message", [
    (dict(methods=[]), "at least one method"),
    (dict(methods=[{"name": "a", "method": "sft"}, {"name": "a", "method": "dpo"}]), "unique"),
    (dict(methods=[{"name": "start", "method": "sft"}]), "reserved"),
    (dict(methods=[{"name": "a b", "method": "sft"}]), "folder name"),
    (dict(methods=[{"name": "a", "method": "rlhf"}]), "must be one of"),
    (dict(budget_value=0), "budget_value must be > 0"),
    (dict(budget="steps", budget_value=2.5), "whole number"),
    (dict(budget="minutes"), "must be one of"),
    (dict(eval_limit=0), "eval_limit"),
    (dict(methods=[{"name": "a", "method": "sft", "overrides": [1]}]), "overrides must be a mapping"),
])
def test_bad_configs_say_which_rule(tmp_path, kw, message):
    with pytest.raises(ConfigError, match=message):
        _cfg(tmp_path, **kw)


def test_every_shipped_compare_config_loads_and_names_its_command():
    root = Path(__file__).resolve().parents[3]
    files = sorted((root / "configs" / "compare").glob("*.yaml"))
    assert files, "configs/compare/ holds at least the demo"
    for f in files:
        assert f.read_text().startswith("# sqlcoach compare --config"), f
        cfg = load_compare_config(f)
        assert cfg.methods and {m.method for m in cfg.methods} <= set(METHOD_KINDS) | set(ADAPT_KINDS) | set(API_KINDS)
        for m in cfg.methods:
            if m.config:
                assert (root / m.config).is_file(), f"{f.name}: {m.name} names a missing recipe config {m.config}"


def test_start_must_exist_when_named(tmp_path):
    cfg = _cfg(tmp_path, start=str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="not a model folder"):
        R.resolve_start(cfg, tmp_path / "out")
    built = _cfg(tmp_path, start="", world="")
    start, world, must = R.resolve_start(built, tmp_path / "out")
    assert must and start == tmp_path / "out" / "start" / "sft" / "final" and world == tmp_path / "out" / "start" / "world"


def _job(tmp_path, **kw):
    job = dict(name="x", start="S", world="W", data_kind="spider", output_dir=str(tmp_path / "o"), seed=7,
               template="sql_terminal", schema_style="compact", schema_sample_values=0, device="cpu",
               budget="steps", budget_value=5, config="", overrides={})
    job.update(kw)
    return job


def test_budget_sets_the_recipe_keys(tmp_path):
    v = J.recipe_values("fake", FakeRunConfig, _job(tmp_path, overrides={"max_steps": 99, "seed": 1}))
    assert v["max_steps"] == 5 and v["max_seconds"] is None  # the comparison's budget wins
    assert v["model"] == "S" and v["data_path"] == "W" and v["seed"] == 7
    assert "use_cpu" not in v and "schema_style" not in v  # only keys the recipe has
    v = J.recipe_values("fake", FakeRunConfig, _job(tmp_path, budget="seconds", budget_value=30))
    assert v["max_seconds"] == 30.0 and "max_steps" not in v
    # samples -> steps through batch 4 x accumulation 2 = 8 rows per step
    v = J.recipe_values("fake", FakeRunConfig, _job(tmp_path, budget="samples", budget_value=20))
    assert v["max_steps"] == 3


def test_recipe_yaml_is_read_and_missing_one_is_an_error(tmp_path):
    y = tmp_path / "r.yaml"
    y.write_text("per_device_train_batch_size: 10\n")
    v = J.recipe_values("fake", FakeRunConfig, _job(tmp_path, config=str(y), budget="samples", budget_value=100))
    assert v["per_device_train_batch_size"] == 10 and v["max_steps"] == 5
    with pytest.raises(ConfigError, match="not found"):
        J.recipe_values("fake", FakeRunConfig, _job(tmp_path, config=str(tmp_path / "missing.yaml")))


def test_hash_follows_what_decides_the_outcome(tmp_path):
    cfg = _cfg(tmp_path)
    a, b = cfg.methods
    h = R.method_hash(cfg, a)
    assert h == R.method_hash(_cfg(tmp_path), _cfg(tmp_path).methods[0])
    assert h != R.method_hash(cfg, b)
    assert h != R.method_hash(_cfg(tmp_path, budget_value=4), a)
    assert h == R.method_hash(_cfg(tmp_path, threads=2), a)  # threads change speed, not the result
    y = tmp_path / "r.yaml"
    y.write_text("learning_rate: 1\n")
    spec = MethodSpec(name="a", method="sft", config=str(y))
    h1 = R.method_hash(cfg, spec)
    y.write_text("learning_rate: 2\n")
    assert R.method_hash(cfg, spec) != h1  # editing the recipe YAML re-runs the method


def test_hash_follows_the_files_an_override_names(tmp_path):
    """A verifier (or any folder or file) named in overrides, nested included: trained again under
    the same path, the method that reads it runs again; a placeholder path or plain value is not
    fingerprinted, so a spec without paths hashes as it did before."""
    import os

    cfg = _cfg(tmp_path)
    ver = tmp_path / "verifier" / "final"
    ver.mkdir(parents=True)
    (ver / "model.safetensors").write_bytes(b"a")
    spec = MethodSpec(name="g", method="grpo", overrides={"rewards": [{"name": "verifier", "verifier_path": str(ver)}]})
    h1 = R.method_hash(cfg, spec)
    (ver / "model.safetensors").write_bytes(b"bb")  # retrained: another size (and mtime)
    assert R.method_hash(cfg, spec) != h1
    st = (ver / "model.safetensors").stat()
    os.utime(ver / "model.safetensors", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    h2 = R.method_hash(cfg, spec)
    assert h2 != h1 and R.method_hash(cfg, spec) == h2  # same files, same hash
    plain = MethodSpec(name="g", method="grpo", overrides={"pairs_path": "{dir}/p.jsonl", "learning_rate": 1e-4})
    assert R.override_paths_fingerprint(plain.overrides) == {}


def test_reward_curve_has_one_shape():
    """``train.rl.RewardPoint``: {"step", "reward", ...} dicts; points without a number are skipped."""
    got = J.reward_curve({"reward_curve": [{"step": 3, "reward": 0.2, "kl": 1}, {"step": 4, "reward": None}]}, [])
    assert got == ([[3.0, 0.2]], "summary.reward_curve")
    assert J.reward_curve({"reward_curve": [0.5, 0.7]}, []) == ([], None)  # bare numbers are not a reward curve
    hist = [{"step": 1, "rewards/margins": 0.3}, {"step": 2, "loss": 1.0}]
    assert J.reward_curve({}, hist) == ([[1.0, 0.3]], "rewards/margins")
    assert J.reward_curve({}, [{"step": 1, "loss": 1.0}]) == ([], None)
    assert J.curve([{"step": 1, "loss": float("nan")}, {"step": 2, "loss": 0.5}], "loss") == [[2.0, 0.5]]


def test_fill_placeholders():
    base = {"start": "S", "world": "W", "seed": 3}
    got = R.fill_placeholders({"pairs_path": "{dir}/p.jsonl", "lr": 1e-3, "x": "{seed}"}, base, Path("/m"))
    assert got == {"pairs_path": "/m/p.jsonl", "lr": 1e-3, "x": "3"}


def test_fill_placeholders_reaches_nested_values_and_leaves_other_braces():
    base = {"start": "/s", "world": "/w", "seed": 3}
    got = R.fill_placeholders({"reward_options": {"verifier": {"path": "{dir}/v/final"}, "tags": ["{seed}", "x{1,2}"]},
                               "pattern": "a{2}b", "n": None}, base, Path("/m"))
    assert got == {"reward_options": {"verifier": {"path": "/m/v/final"}, "tags": ["3", "x{1,2}"]},
                   "pattern": "a{2}b", "n": None}


class _FakeChildren:
    """Stands in for ``run_child``: canned results, and a record of what ran."""

    def __init__(self, fail: set[str] = frozenset()):
        self.calls: list[tuple[str, str]] = []
        self.fail = fail

    def __call__(self, mode, job, job_dir, *, log=print, threads=1):
        name = job.get("name", "start")
        self.calls.append((mode, name))
        if mode == "train":
            if name in self.fail:
                return {"status": "failed: RuntimeError: boom"}
            final = Path(job["output_dir"]) / "final"
            final.mkdir(parents=True, exist_ok=True)
            return {"status": "ok", "final_dir": str(final), "global_step": 3, "seconds": 1.5,
                    "median_step_seconds": 0.5, "peak_process_rss_mb": 100.0, "loss_curve": [[1, 2.0], [2, 1.0]],
                    "reward_curve": [[1, 0.1]], "trained_tokens_per_s": 10.0}
        return {"status": "ok", "questions": 5, "peak_process_rss_mb": 50.0,
                "summary": {"all": {"count": 5, "scored": 5, "ex": 0.4, "em": 0.2},
                            "by_hardness": {"easy": {"count": 5, "scored": 5, "ex": 0.4, "em": 0.2}},
                            "errors": {"exec_error": 1}, "executes": 0.8},
                "samples": [{"question": "q <b>", "pred": "SELECT 1", "gold": "SELECT 2", "ex": False, "error": "wrong_result"}]}


def test_resume_skips_finished_methods_and_reruns_changed_ones(tmp_path, monkeypatch):
    fake = _FakeChildren()
    monkeypatch.setattr(J, "run_child", fake)
    out = tmp_path / "out"
    rep = R.run_compare(_cfg(tmp_path), out, log=lambda m: None)
    assert [r.status for r in rep.methods] == ["ok", "ok", "ok"]
    assert fake.calls == [("eval", "start"), ("train", "sft"), ("eval", "sft"), ("train", "grpo"), ("eval", "grpo")]
    for f in ("report.json", "report.md", "report.html"):
        assert (out / f).stat().st_size > 0
    fake.calls.clear()
    R.run_compare(_cfg(tmp_path), out, log=lambda m: None)
    assert fake.calls == []  # everything done with the same hashes
    # a changed method entry re-runs that method only
    methods = [{"name": "sft", "method": "sft"}, {"name": "grpo", "method": "grpo", "overrides": {"beta": 0.1}}]
    R.run_compare(_cfg(tmp_path, methods=methods), out, log=lambda m: None)
    assert fake.calls == [("train", "grpo"), ("eval", "grpo")]


def test_interrupted_evaluation_does_not_retrain(tmp_path, monkeypatch):
    fake = _FakeChildren()
    monkeypatch.setattr(J, "run_child", fake)
    out = tmp_path / "out"
    R.run_compare(_cfg(tmp_path, eval_start=False), out, log=lambda m: None)
    (out / "methods" / "sft" / "result.json").unlink()  # as if killed during sft's evaluation
    fake.calls.clear()
    R.run_compare(_cfg(tmp_path, eval_start=False), out, log=lambda m: None)
    assert fake.calls == [("eval", "sft")]


def test_failing_methods_are_reported_not_raised(tmp_path, monkeypatch):
    fake = _FakeChildren(fail={"grpo"})
    monkeypatch.setattr(J, "run_child", fake)
    methods = [{"name": "grpo", "method": "grpo"}, {"name": "sft", "method": "sft"}]
    rep = R.run_compare(_cfg(tmp_path, methods=methods, eval_start=False), tmp_path / "out", log=lambda m: None)
    st = {r.name: r.status for r in rep.methods}
    assert st["grpo"].startswith("failed: RuntimeError: boom")
    assert st["sft"] == "ok"
    assert "failed" in (tmp_path / "out" / "report.md").read_text()
    # a failed method is not "done": the next run tries it again
    fake.calls.clear()
    R.run_compare(_cfg(tmp_path, methods=methods, eval_start=False), tmp_path / "out", log=lambda m: None)
    assert ("train", "grpo") in fake.calls and ("train", "sft") not in fake.calls


def _register_fake_recipe(tmp_path: Path, monkeypatch) -> None:
    """The fake recipe as a plugin would register it: an entry point in the ``sqlcoach.recipes``
    group (a bare .dist-info folder on PYTHONPATH), seen by the child process's ``RECIPES``."""
    dist = tmp_path / "plugins" / "sqlcoach_fake_recipe-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sqlcoach-fake-recipe\nVersion: 0\n")
    (dist / "entry_points.txt").write_text("[sqlcoach.recipes]\nfake = compare_fake_recipe:FAKE\n")
    paths = [str(HERE), str(dist.parent), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))
    monkeypatch.setitem(RECIPES, "fake", FAKE)  # this process imported RECIPES before the entry point existed


def test_a_real_child_process_runs_a_fake_recipe(tmp_path, monkeypatch):
    """The train child end to end: subprocess, recipe config, summary keys, peak RSS via wait4."""
    _register_fake_recipe(tmp_path, monkeypatch)
    job = _job(tmp_path, method="fake", budget_value=4)
    res = J.run_child("train", job, tmp_path / "m", log=lambda m: None)
    assert res["status"] == "ok", res
    assert res["global_step"] == 4 and res["median_step_seconds"] == 0.5 and res["step_time_source"] == "summary"
    assert res["loss_curve"] == [[1.0, 1.0], [2.0, 0.5], [3.0, 1 / 3], [4.0, 0.25]]
    assert res["reward_curve"][-1] == [4.0, pytest.approx(0.3)]
    assert res["trained_tokens"] == 400 and res["trained_tokens_per_s"] == 200.0
    assert res["generated_tokens_per_s"] == 200.0
    assert res["peak_process_rss_mb"] > 1 and res["process_seconds"] > 0
    assert json.loads((Path(res["final_dir"]) / "config.json").read_text()) == {"copied_from": "S"}
    # a recipe that raises: the child still writes a result naming the error
    res = J.run_child("train", _job(tmp_path, method="fake", overrides={"fail": True}), tmp_path / "m2", log=lambda m: None)
    assert res["status"] == "failed: RuntimeError: the fake recipe was asked to fail"


def test_a_retrained_start_reruns_every_method(tmp_path, monkeypatch):
    fake = _FakeChildren()
    monkeypatch.setattr(J, "run_child", fake)
    cfg = _cfg(tmp_path, eval_start=False)
    R.run_compare(cfg, tmp_path / "out", log=lambda m: None)
    (tmp_path / "start" / "config.json").write_text('{"retrained": true}')
    fake.calls.clear()
    R.run_compare(cfg, tmp_path / "out", log=lambda m: None)
    assert [c for c in fake.calls if c[0] == "train"] == [("train", "sft"), ("train", "grpo")]


def test_cli_verb_parses():
    from sqlcoach.cli import build_parser

    args = build_parser().parse_args(["compare", "--config", "c.yaml", "--out", "o", "budget_value=9"])
    assert args.verb == "compare" and args.config == "c.yaml" and args.out == "o" and args.overrides == ["budget_value=9"]
    from sqlcoach.commands import compare as cmd

    assert args.func is cmd.run


def test_changing_only_evaluation_settings_reevaluates_without_training(tmp_path, monkeypatch):
    fake = _FakeChildren()
    monkeypatch.setattr(J, "run_child", fake)
    R.run_compare(_cfg(tmp_path, eval_start=False), tmp_path / "out", log=lambda m: None)
    fake.calls.clear()
    R.run_compare(_cfg(tmp_path, eval_start=False, eval_limit=9, seen_eval_limit=4), tmp_path / "out", log=lambda m: None)
    assert fake.calls == [("eval", "sft"), ("eval", "grpo")]


class _SeededChildren(_FakeChildren):
    """Evaluations whose per-question outcomes depend on the method and the seed."""

    def __call__(self, mode, job, job_dir, *, log=print, threads=1):
        res = super().__call__(mode, job, job_dir, log=log, threads=threads)
        self.calls[-1] = (mode, job.get("name", "start"), job.get("seed"))
        if mode == "eval" and res.get("status") == "ok":
            name, seed = job.get("name", "start"), job.get("seed", 0)
            p = {"start": 0.3, "sft": 0.5, "grpo": 0.7}[name]
            import random

            rng = random.Random(f"{name}{seed}")
            ex = [int(rng.random() < p) for _ in range(60)]
            res["per_question"] = {"ex": ex, "db_id": ["a", "b", "c"] * 20,
                                   "hardness": ["easy", "medium", "hard", "extra"] * 15, "error": [None] * 60}
            res["by_db"] = {db: {"n": 20, "ex": sum(ex[i::3]) / 20} for i, db in enumerate("abc")}
        return res


def test_seeds_run_every_method_once_per_seed_and_report_intervals(tmp_path, monkeypatch):
    fake = _SeededChildren()
    monkeypatch.setattr(J, "run_child", fake)
    out = tmp_path / "out"
    rep = R.run_compare(_cfg(tmp_path, seeds=[0, 1, 2]), out, log=lambda m: None).as_dict()  # report.json's shape
    # the start once; then seed-major: every method with seed 0, then 1, then 2
    assert fake.calls[0] == ("eval", "start", 0)
    assert [c for c in fake.calls if c[0] == "train"] == [
        ("train", "sft", 0), ("train", "grpo", 0), ("train", "sft", 1), ("train", "grpo", 1),
        ("train", "sft", 2), ("train", "grpo", 2)]
    assert (out / "methods" / "grpo" / "seed2" / "result.json").is_file()
    agg = {r["name"]: r for r in rep["across_seeds"]["rows"]}
    assert rep["across_seeds"]["control"] == "sft" and agg["grpo"]["runs"] == 3 and agg["start"]["runs"] == 1
    g = agg["grpo"]
    assert g["ex"]["lo"] < g["ex"]["mean"] < g["ex"]["hi"] and g["ex"]["questions"] == 60 and g["ex"]["seeds"] == 3
    assert g["vs_control"]["mean"] > 0 and "vs_control" not in agg["sft"]
    assert set(g["by_db"]) == {"a", "b", "c"} and g["complex_ex"]["questions"] == 30
    md = (out / "report.md").read_text()
    assert "## Across seeds" in md and "| grpo | 3 |" in md and "sft seed 1" in md and "EX per database" in md
    assert "EX with 95% intervals" in (out / "report.html").read_text()
    assert "## Seed 000's table, measured" in md and "| grpo (grpo) |" in md and "71-75" in md
    # same command again: nothing reruns; the seeds are part of each run's hash
    fake.calls.clear()
    R.run_compare(_cfg(tmp_path, seeds=[0, 1, 2]), out, log=lambda m: None)
    assert fake.calls == []


def test_seeds_and_control_are_validated(tmp_path):
    with pytest.raises(ConfigError, match="distinct"):
        _cfg(tmp_path, seeds=[1, 1])
    with pytest.raises(ConfigError, match="non-empty list"):
        _cfg(tmp_path, seeds=[])
    with pytest.raises(ConfigError, match="control='dpo' is not one of"):
        _cfg(tmp_path, control="dpo")
    assert _cfg(tmp_path).seed_list() == [0] and _cfg(tmp_path, seeds=[3, 4]).seed_list() == [3, 4]
    assert _cfg(tmp_path).control_name() == "sft" and _cfg(tmp_path, control="grpo").control_name() == "grpo"


def test_stratified_sample_covers_every_database_in_proportion():
    from types import SimpleNamespace

    from sqlcoach.pipelines.evaluate import stratified

    pool = [SimpleNamespace(db_id=db, i=i) for i, db in enumerate(["a"] * 50 + ["b"] * 30 + ["c"] * 15 + ["d"] * 5)]
    got = stratified(pool, 20)
    counts = {db: sum(1 for x in got if x.db_id == db) for db in "abcd"}
    assert counts == {"a": 10, "b": 6, "c": 3, "d": 1}
    assert [x.i for x in got] == sorted(x.i for x in got)  # the pool's order
    assert stratified(pool, 20) == got and len(stratified(pool, 7)) == 7
    assert stratified(pool, None) == pool and stratified(pool, 500) == pool
    # "the first 20" would have been database a only
    assert {x.db_id for x in pool[:20]} == {"a"}


def test_every_shipped_method_entry_builds_a_valid_recipe_config(tmp_path):
    """Each method of each shipped comparison, with its recipe YAML, overrides and the comparison's
    fixed keys, passes its recipe config's rules (a typo in an override fails here, not after an
    hour of running)."""
    root = Path(__file__).resolve().parents[3]
    for f in sorted((root / "configs" / "compare").glob("*.yaml")):
        cfg = load_compare_config(f)
        for seed in cfg.seed_list():
            base = R._job_base(dataclasses.replace(cfg, seed=seed), tmp_path / "start", tmp_path / "world")
            base.update(template="anonymized", schema_style="compact", schema_sample_values=0)
            for m in cfg.methods:
                if m.method not in RECIPES:  # api rows train nothing
                    continue
                job = dict(base, name=m.name, method=m.method, config=str(root / m.config) if m.config else "",
                           overrides=R.fill_placeholders(m.overrides, base, tmp_path / m.name),
                           output_dir=str(tmp_path / m.name / "train"))
                cls = RECIPES[m.method].config
                build_config(cls, J.recipe_values(m.method, cls, job), source=f"{f.name}: {m.name}")
