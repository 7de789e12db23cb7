"""The demo pipeline (``sqlcoach demo --out DIR``): the whole loop offline, on CPU, in minutes.

Builds the demo world (``DIR/world``), trains a tokenizer and initialises a small random Qwen2
(``DIR/model-init``), scores it untrained, fine-tunes it (``DIR/sft``), predicts greedily and with
self-consistency (n samples voted by execution result), scores each stage, prints EX/EM by
hardness, and writes ``DIR/report.json`` (stage -> metrics, timings, peak memory) and
``DIR/report.html`` (self-contained: the loss curve is an inline PNG; opens from disk).

The SFT recipe is ``configs/sft/demo.yaml`` (shipped inside the package, ``sqlcoach/configs``; the
repository's ``configs/`` links there), read by ``demo_sft_config``; ``key=value`` arguments
override it. ``build_tiny_start`` (world, tokenizer + random Qwen2, SFT) is also the comparison's
start checkpoint. Self-consistency runs on the first
``--sc-limit`` dev questions (100 by default; 0 = all) because it costs n times the generation.
The dev databases are never seen in training (the world's split is by database); the model writes
placeholders for their names and values (the ``anonymized`` template, ``sqlcoach.prompts.anonymize``;
docs/training.md says why a from-scratch model needs it). The tokenizer is trained on the training
split's text and its rendered prompts, never on dev.

The SFT runs a fixed number of seeded steps (``max_steps`` of the recipe, warmup then cosine by
steps), not a time budget: the same model, and the same EX, on any machine and with any thread
count (``tests/integration/test_demo_determinism.py``); only the time differs. After its first
``PACE_STEPS`` steps it prints the pace and the expected time of the whole demo. Run it with
``OMP_NUM_THREADS`` at most the number of free cores (on a busy machine, 1): more threads than
free cores make every step many times slower, never different.
"""

from __future__ import annotations

import dataclasses
import html
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from sqlcoach.config import SFTRunConfig, build_config, config_to_dict, parse_overrides

STAGES = ("untrained", "sft_greedy", "sft_self_consistency")
#: the BPE vocabulary target of the demo's tiny model, and of the comparison's start built the same
#: way (``build_tiny_start``): below the ``tiny`` size's own 2048, because placeholder prompts need
#: few merges and a smaller embedding and output layer make every step cheaper
DEMO_VOCAB_SIZE = 1024
#: the demo's SFT recipe, shipped with the package
DEMO_SFT_YAML = Path(__file__).resolve().parents[1] / "configs" / "sft" / "demo.yaml"
#: the SFT recipe of ``--model smollm2`` (or any other pretrained model): LoRA, real names
REAL_SFT_YAML = Path(__file__).resolve().parents[1] / "configs" / "sft" / "smollm2-demo.yaml"


@dataclass
class DemoOptions:
    """What ``sqlcoach demo`` takes besides the output folder (its flags; see ``commands/demo.py``)."""

    model: str = "tiny"  # tiny (from scratch), smollm2, or a .gguf / HF folder to import
    size: str = "tiny"
    vocab_size: int | None = DEMO_VOCAB_SIZE
    tokenizer_schemas: str = "train"
    seed: int = 0
    n: int = 8
    temperature: float = 0.8
    dev_limit: int | None = None
    sc_limit: int = 100
    untrained_limit: int = 50
    batch_size: int = 32
    max_new_tokens: int = 96
    sft_config: str | None = None
    overrides: tuple[str, ...] = ()


def demo_sft_values(extra_yaml: str | None = None, recipe_yaml: Path = DEMO_SFT_YAML) -> dict[str, Any]:
    """The demo's SFT settings: ``recipe_yaml`` (``configs/sft/demo.yaml``), then ``extra_yaml`` on top."""
    import yaml

    values = dict(yaml.safe_load(recipe_yaml.read_text()) or {})
    if extra_yaml:
        values.update(yaml.safe_load(Path(extra_yaml).read_text()) or {})
    return values


def demo_sft_config(out: Path, extra_yaml: str | None = None, overrides: dict[str, Any] | None = None,
                    recipe_yaml: Path = DEMO_SFT_YAML) -> SFTRunConfig:
    """The validated SFT config of a demo in ``out`` (checked before anything slow runs)."""
    values = demo_sft_values(extra_yaml, recipe_yaml)
    values.update(model=str(out / "model-init"), data_path=str(out / "world"), output_dir=str(out / "sft"))
    values.update(overrides or {})
    cfg = build_config(SFTRunConfig, values, source="demo SFT settings")
    # the demo's model is initialised here, so there is no recorded recipe to fall back on
    from sqlcoach.prompts.recipe import prompt_settings

    return dataclasses.replace(cfg, **prompt_settings(cfg))


def say(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _block(summary: dict[str, Any]) -> dict[str, Any]:
    return summary.get("all", summary)


def start_rows(world: Path, cfg: SFTRunConfig, extra_corpus: list[str] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """``(SFT rows, tokenizer corpus)`` of a world's training split under ``cfg``.

    The corpus is the world's training text and its rendered prompts (never dev), plus
    ``extra_corpus``: the unrenamed rows, so that renamed copies (``cfg.rename_copies``) are
    spelled with its merges, as dev names will be."""
    from sqlcoach.data import load_examples
    from sqlcoach.models.tiny import training_corpus
    from sqlcoach.prompts.settings import PromptSettings
    from sqlcoach.train.sft import build_training_rows

    corpus = training_corpus(world, prompt=PromptSettings.of(cfg))
    rows, _ = build_training_rows(load_examples("spider", world, "train"), cfg)
    return rows, corpus + list(extra_corpus or [])


def init_recipe(cfg: SFTRunConfig) -> Any:
    """The recipe of a freshly initialised tiny model: the prompts its tokenizer was trained on."""
    from sqlcoach.prompts.recipe import PromptRecipe, prompt_settings

    return PromptRecipe(**prompt_settings(cfg), max_length=cfg.max_length, source="model init")


def build_tiny_start(world: Path, base: Path, cfg: SFTRunConfig, *, size: str, seed: int,
                     n_train: int | None = None, n_dev: int | None = None, vocab_size: int | None = DEMO_VOCAB_SIZE,
                     log: Callable[[str], None] = say) -> dict[str, Any]:
    """The comparison's start, built the way the demo builds it: the world (when absent), a
    tokenizer of ``vocab_size`` (the demo's) + random Qwen2 of ``size`` in ``base/model-init``
    (when absent), then the SFT run ``cfg`` describes (``cfg.model`` must be ``base/model-init``);
    returns the SFT summary."""
    from sqlcoach.data.world import build_world
    from sqlcoach.models.tiny import init_tiny_model
    from sqlcoach.train.sft import run_sft

    if not (world / "train.json").is_file():
        log(f"building the world in {world}")
        build_world(world, seed=seed, n_train=n_train, n_dev=n_dev, progress=False)
    rows, corpus = start_rows(world, cfg)
    if not (base / "model-init" / "config.json").is_file():
        info = init_tiny_model(base / "model-init", size, corpus, vocab_size=vocab_size, seed=seed)
        init_recipe(cfg).save(base / "model-init")
        log(f"model: {info['parameters']:,} parameters")
    return run_sft(cfg, rows=rows, log=log)


def _score_stage(name: str, model_dir: Path, examples: list[Any], pred_path: Path, opts: DemoOptions, cfg: SFTRunConfig,
                 out: Path, *, n: int, timings: Any, memory: dict[str, Any]) -> dict[str, Any]:
    from sqlcoach.models.load import load_model
    from sqlcoach.pipelines.evaluate import predict_and_score
    from sqlcoach.prompts.settings import PromptSettings
    from sqlcoach.runtime.memory import track_peak

    say(f"{name}: predicting {len(examples)} dev questions (n={n})")
    with timings.stage(f"{name}_predict"), track_peak() as mem:
        model, tok = load_model(model_dir, dtype="float32", device="cpu")
        scored = predict_and_score(
            model, tok, examples, pred_path, n=n, temperature=opts.temperature if n > 1 else 0.0,
            batch_size=max(1, opts.batch_size // n) if n > 1 else opts.batch_size, max_new_tokens=opts.max_new_tokens,
            prompt=PromptSettings.of(cfg), seed=opts.seed, tables_path=out / "world" / "tables.json",
        )
    memory[f"{name}_predict"] = mem.as_dict()
    summ, rep = scored.predict, scored.report
    say(summ.line())
    say(f"{name}: EX {_fmt(_block(rep.summary).get('ex'))}  EM {_fmt(_block(rep.summary).get('em'))}")
    return {"summary": rep.summary, "throughput": {"examples_per_s": summ.examples_per_s,
            "generated_tokens_per_s": summ.tokens_per_s, "seconds": summ.seconds}, "n": n,
            "count": len(examples), "samples": scored.samples}


def _rescore_subset(full: dict[str, Any], pred_path: Path, subset: list[Any], out: Path) -> dict[str, Any]:
    from sqlcoach.metrics import evaluate_examples

    preds = pred_path.read_text().split("\n")[: len(subset)]
    rep = evaluate_examples(subset, preds, etype="all", mode="spider", tables_path=str(out / "world" / "tables.json"))
    return {"summary": rep.summary, "n": 1, "count": len(subset), "samples": [], "throughput": full["throughput"]}


def run_demo(out: str | Path, opts: DemoOptions) -> dict[str, Any]:
    """World -> model (a tokenizer + random Qwen2, or an imported pretrained model) -> untrained
    score -> SFT -> greedy (and self-consistency) scores; writes ``out/report.json`` and
    ``out/report.html`` and returns the report."""
    from sqlcoach.data import load_examples
    from sqlcoach.data.world import build_world
    from sqlcoach.errors import ConfigError
    from sqlcoach.runtime.memory import track_peak
    from sqlcoach.runtime.timing import Timings
    from sqlcoach.train.sft import run_sft

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the demo never downloads anything
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from sqlcoach.train.callbacks import pace_callback

    threads = torch.get_num_threads()  # what OMP_NUM_THREADS (or torch's default, the cores) set
    t_start, out = time.monotonic(), Path(out)
    if opts.n < 0:
        raise ConfigError("--n must be >= 0")
    out.mkdir(parents=True, exist_ok=True)
    tiny = opts.model == "tiny"
    cfg = demo_sft_config(out, opts.sft_config, parse_overrides(list(opts.overrides)),
                          recipe_yaml=DEMO_SFT_YAML if tiny else REAL_SFT_YAML)
    world, timings, memory, stages = out / "world", Timings(), {}, {}

    say(f"building the world in {world}")
    with timings.stage("world"), track_peak() as mem:
        stats = build_world(world, seed=opts.seed, progress=True)
    memory["world"] = mem.as_dict()
    dev = _dev_questions(load_examples("spider", world, "dev"), opts, tiny)
    say(f"world: {stats.get('questions', {}).get('train', '?')} train / {len(dev)} dev questions ({timings.seconds['world']:.1f}s)")

    with timings.stage("model_init"), track_peak() as mem:
        info, rows = _init_model(out, world, cfg, opts)
    memory["model_init"] = mem.as_dict()
    say(f"model: {info['parameters']:,} parameters" + (f", vocabulary {info['vocab_size']}" if "vocab_size" in info else ""))

    if opts.untrained_limit:
        stages["untrained"] = _score_stage("untrained", out / "model-init", dev[: opts.untrained_limit],
                                           out / "pred" / "untrained.sql", opts, cfg, out, n=1, timings=timings, memory=memory)
    say(f"SFT ({cfg.method}): {cfg.max_steps} steps, batch {cfg.per_device_train_batch_size}, lr {cfg.learning_rate} "
        f"({cfg.lr_scheduler_type}, warmup {cfg.warmup_ratio:g}"
        + (f" from {cfg.warmup_start:g} of the peak" if cfg.warmup_start else "")
        + f"), seed {cfg.seed}, {threads} thread(s)"
        + (f", clock limit {cfg.max_seconds:g}s" if cfg.max_seconds else ""))
    t_sft = time.monotonic()
    pace = pace_callback(min(PACE_STEPS, cfg.max_steps - 1) if cfg.max_steps > 1 else PACE_STEPS, lambda step, sec, total: say(expected_time_line(
        step, sec, total, elapsed=time.monotonic() - t_start, predict=_predict_estimate(stages, rows, out, dev, opts),
        clock_left=cfg.max_seconds - (time.monotonic() - t_sft) if cfg.max_seconds else None)))
    with timings.stage("sft"), track_peak() as mem:
        sft = run_sft(cfg, rows=rows, log=say, callbacks=[pace])
    memory["sft"] = mem.as_dict()
    say(f"SFT done: {sft['global_step']} steps, train loss {sft['train_loss']:.3f} ({sft['seconds']:.0f}s)")

    stages.update(_score_sft(Path(sft["final_dir"]), dev, opts, cfg, out, timings, memory))
    report = {
        "world": {k: v for k, v in stats.items() if k in ("version", "seed", "questions", "hardness", "seconds")},
        "model": info, "sft": sft, "sft_config": config_to_dict(cfg), "stages": stages,
        "timings": timings.seconds, "memory": memory, "total_seconds": round(time.monotonic() - t_start, 1),
        "threads": threads, "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "cpu_count": os.cpu_count(),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "report.html").write_text(_html(report, out))
    return report


#: optimizer steps timed (after a first one left out) before the demo prints its expected time
PACE_STEPS = 20


def expected_time_line(step: int, step_seconds: float, max_steps: int, *, elapsed: float,
                       predict: float | None, clock_left: float | None = None) -> str:
    """The demo's expected-time line, from the median step of its first steps (``step`` done of
    ``max_steps``), the seconds ``elapsed`` since the demo started, the estimated prediction
    seconds (``None``: not estimated) and, for a recipe with a wall-clock budget (the pretrained
    model's), the budget's seconds left, which cap the training still to come."""
    sft_left = max(0, max_steps - step) * step_seconds
    what = f"SFT ~{max_steps * step_seconds / 60:.1f} min for {max_steps} steps"
    if clock_left is not None and clock_left < sft_left:
        sft_left = max(0.0, clock_left)
        what = f"SFT stopped by its clock in ~{sft_left / 60:.1f} min (~{step + int(sft_left / step_seconds)} steps)"
    total = elapsed + sft_left + (predict or 0.0)
    finish = time.strftime("%H:%M", time.localtime(time.time() + sft_left + (predict or 0.0)))
    pred = f" + prediction ~{predict / 60:.1f} min" if predict is not None else " + prediction (not estimated)"
    return (f"pace: {step_seconds:.3f} s per step (median of steps 2-{step}): {what}{pred}; "
            f"the demo should take ~{total / 60:.1f} min in all (done about {finish})")


def _predict_estimate(stages: dict[str, Any], rows: list[dict[str, Any]], out: Path, dev: list[Any],
                      opts: DemoOptions) -> float | None:
    """Seconds the scoring stages should take: the answer tokens they will generate (greedy on
    ``dev``, ``n`` samples on the self-consistency subset; each answer as long as the training
    answers on average, plus its end token) at the generation speed measured on the untrained
    model; ``None`` when the untrained stage did not run (nothing measured)."""
    speed = stages.get("untrained", {}).get("throughput", {}).get("generated_tokens_per_s")
    if not speed:
        return None
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(out / "model-init"))
    answers = [m["content"] for r in rows[:500] for m in r.get("completion", []) if isinstance(m, dict)]
    per_answer = 1 + sum(len(tok(a)["input_ids"]) for a in answers) / max(1, len(answers))
    sc = (len(dev[: opts.sc_limit]) if opts.sc_limit else len(dev)) * opts.n if opts.n > 1 else 0
    return (len(dev) + sc) * per_answer / speed


def _dev_questions(dev: list[Any], opts: DemoOptions, tiny: bool) -> list[Any]:
    """The dev questions scored: the first ``dev_limit`` (all by default) for the tiny model; for a
    pretrained model, whose generation on a CPU is ~20x slower, ``dev_limit`` (default 150)
    spread over every dev database."""
    from sqlcoach.pipelines.evaluate import spread

    if tiny:
        return dev[: opts.dev_limit or None]
    return spread(dev, opts.dev_limit or 150)


def _init_model(out: Path, world: Path, cfg: SFTRunConfig, opts: DemoOptions) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(model info, SFT rows)``: a tokenizer trained on the world + a random Qwen2 of
    ``opts.size`` (``--model tiny``), or the pretrained model imported into ``out/model-init``."""
    from sqlcoach.data import load_examples
    from sqlcoach.train.sft import build_training_rows

    if opts.model == "tiny":
        from sqlcoach.models.tiny import init_tiny_model

        say(f"training a tokenizer and initialising a {opts.size} Qwen2")
        rows, corpus = start_rows(world, cfg, _all_schema_statements(world) if opts.tokenizer_schemas == "all" else None)
        info = init_tiny_model(out / "model-init", opts.size, corpus, vocab_size=opts.vocab_size, seed=opts.seed)
        init_recipe(cfg).save(out / "model-init")
        return info, rows
    from sqlcoach.models.importer import import_model

    say(f"importing {opts.model} (pretrained, real names, LoRA)")
    info = import_model(opts.model, out / "model-init")
    init_recipe(cfg).then("model import").save(out / "model-init")  # the prompt this demo trains with
    rows, _ = build_training_rows(load_examples("spider", world, "train"), cfg)
    return info, rows


def _score_sft(model_dir: Path, dev: list[Any], opts: DemoOptions, cfg: SFTRunConfig, out: Path, timings: Any,
               memory: dict[str, Any]) -> dict[str, Any]:
    """Greedy on the dev set; self-consistency (``opts.n`` samples voted by result) on the first
    ``sc_limit`` questions, and greedy rescored on that subset so the two compare like for like."""
    stages = {"sft_greedy": _score_stage("sft_greedy", model_dir, dev, out / "pred" / "greedy.sql", opts, cfg, out,
                                         n=1, timings=timings, memory=memory)}
    if opts.n > 1:
        sc_dev = dev[: opts.sc_limit] if opts.sc_limit else dev
        stages["sft_self_consistency"] = _score_stage("sft_self_consistency", model_dir, sc_dev, out / "pred" / f"sc{opts.n}.sql",
                                                      opts, cfg, out, n=opts.n, timings=timings, memory=memory)
        if opts.sc_limit and opts.sc_limit < len(dev):
            stages["sft_greedy_same_subset"] = _rescore_subset(stages["sft_greedy"], out / "pred" / "greedy.sql", sc_dev, out)
    return stages


def _all_schema_statements(world: Path) -> list[str]:
    """CREATE statements of every database of the world, dev databases included (schema text only)."""
    import sqlite3

    out: list[str] = []
    for db in sorted(world.glob("database/*/*.sqlite")):
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            out += [sql for (sql,) in con.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL")]
        finally:
            con.close()
    return out


def _fmt(x: Any) -> str:
    return "-" if x is None else f"{x:.3f}"


def format_stage_table(stages: dict[str, Any]) -> str:
    """One row per stage: count, EX and EM overall and per hardness level."""
    from sqlcoach.types import HARDNESS_LEVELS

    head = f"{'stage':<24}{'n':>4}{'count':>7}" + "".join(f"{lvl + ' EX/EM':>16}" for lvl in HARDNESS_LEVELS) + f"{'all EX/EM':>16}"
    lines = [head, "-" * len(head)]
    for name, st in stages.items():
        s = st["summary"]
        cells = []
        for lvl in HARDNESS_LEVELS:
            b = s.get("by_hardness", {}).get(lvl)
            cells.append(f"{_fmt(b.get('ex'))}/{_fmt(b.get('em'))}" if b else "-")
        a = _block(s)
        cells.append(f"{_fmt(a.get('ex'))}/{_fmt(a.get('em'))}")
        lines.append(f"{name:<24}{st['n']:>4}{st['count']:>7}" + "".join(f"{c:>16}" for c in cells))
    return "\n".join(lines)


def stage_table_html(stages: dict[str, Any]) -> str:
    """The stage table of ``format_stage_table`` as an HTML ``<table>``: one row per stage
    (samples per question, questions scored), EX and EM per hardness level and overall."""
    from sqlcoach.types import HARDNESS_LEVELS

    esc = html.escape
    head = ("<tr><th rowspan='2'>stage</th><th rowspan='2'>n</th><th rowspan='2'>questions</th>"
            + "".join(f"<th colspan='2'>{esc(lvl)}</th>" for lvl in (*HARDNESS_LEVELS, "all")) + "</tr><tr>"
            + "<th>EX</th><th>EM</th>" * (len(HARDNESS_LEVELS) + 1) + "</tr>")
    body = []
    for name, st in stages.items():
        s = st["summary"]
        blocks = [s.get("by_hardness", {}).get(lvl) or {} for lvl in HARDNESS_LEVELS] + [_block(s)]
        cells = "".join(f"<td>{_fmt(b.get('ex'))}</td><td>{_fmt(b.get('em'))}</td>" for b in blocks)
        body.append(f"<tr><td class='l'>{esc(name)}</td><td>{st['n']}</td><td>{st['count']}</td>{cells}</tr>")
    return "<table class='ex'>" + head + "".join(body) + "</table>"


def stage_chart_png(stages: dict[str, Any]) -> bytes | None:
    """Grouped bars of EX per hardness level and overall, one bar per stage (``runtime.plots``)."""
    from sqlcoach.runtime.plots import ex_by_hardness

    rows = [{"name": name, "status": "ok", "eval": {"summary": {**st["summary"], "all": _block(st["summary"])}}}
            for name, st in stages.items()]
    return ex_by_hardness(rows)


def _html(report: dict[str, Any], out: Path) -> str:
    """A self-contained page: no external CSS/JS/images (the loss curve is a data URI)."""
    from sqlcoach.runtime.plots import data_uri, png_data_uri

    esc = html.escape
    sft, chart = report["sft"], stage_chart_png(report["stages"])
    threads = report.get("threads")
    omp = report.get("omp_num_threads")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>sqlcoach demo report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#eee}"
        "td.l{text-align:left;font-family:monospace;font-size:90%}pre{background:#f6f6f6;padding:1em}"
        "table.ex th{text-align:center}</style>",
        "</head><body><h1>sqlcoach demo</h1>",
        f"<p>Total {report['total_seconds']} s on {report['cpu_count']} CPU(s), {esc(str(threads))} torch thread(s) "
        f"({'OMP_NUM_THREADS=' + esc(omp) if omp else 'OMP_NUM_THREADS unset: one per core'}). "
        f"Model: {report['model']['parameters']:,} parameters"
        f"{', vocabulary ' + str(report['model']['vocab_size']) if 'vocab_size' in report['model'] else ''}. "
        f"SFT: {sft['global_step']} steps ({esc(str(report['sft_config'].get('lr_scheduler_type')))} schedule, "
        f"seed {esc(str(report['sft_config'].get('seed')))}), train loss {sft['train_loss']:.3f}, {sft['seconds']:.0f} s.</p>",
        "<h2>Execution accuracy (EX) and exact match (EM) by hardness</h2>",
        stage_table_html(report["stages"]),
    ]
    if chart:
        parts.append(f"<p><img alt='EX by hardness, one bar per stage' src='{data_uri(chart)}'><br>"
                     "<small>Each stage over its own questions (the table's count).</small></p>")
    png = sft.get("plot_png")
    if png and Path(png).exists():
        parts.append(f"<h2>SFT loss</h2><img alt='loss curve' src='{png_data_uri(png)}'>")
    parts.append("<h2>Timings (s) and peak memory (MiB, this process)</h2><table><tr><th>stage</th><th>seconds</th><th>peak RSS</th></tr>")
    for k, v in report["timings"].items():
        m = report["memory"].get(k, report["memory"].get(k.rsplit("_", 1)[0], {}))
        parts.append(f"<tr><td class='l'>{esc(k)}</td><td>{v:.1f}</td><td>{m.get('peak_rss_mb', '')}</td></tr>")
    parts.append("</table>")
    for name, st in report["stages"].items():
        if not st.get("samples"):
            continue
        parts.append(f"<h3>Samples: {esc(name)}</h3><table><tr><th>question</th><th>prediction</th><th>gold</th><th>EX</th></tr>")
        for s in st["samples"]:
            parts.append(
                f"<tr><td class='l'>{esc(s['question'])}</td><td class='l'>{esc(s['pred'])}</td>"
                f"<td class='l'>{esc(s['gold'] or '')}</td><td>{'yes' if s['ex'] else esc(s['error'] or 'no')}</td></tr>"
            )
        parts.append("</table>")
    parts.append("<h2>report.json</h2><pre>" + esc(json.dumps({k: report[k] for k in ('sft_config', 'sft', 'world')}, indent=2, default=str)) + "</pre>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
