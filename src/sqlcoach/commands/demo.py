"""`sqlcoach demo --out DIR`: the whole loop offline, on CPU, in minutes.

Builds the demo world (``DIR/world``), trains a tokenizer and initialises a small random Qwen2
(``DIR/model-init``), scores it untrained, fine-tunes it (``DIR/sft``), predicts greedily and with
self-consistency (n samples voted by execution result), scores each stage, prints EX/EM by
hardness, and writes ``DIR/report.json`` (stage -> metrics, timings, peak memory) and
``DIR/report.html`` (self-contained: the loss curve is an inline PNG; opens from disk).

The SFT settings are ``DEMO_SFT`` below (``configs/sft/demo.yaml`` holds the same values and a
test keeps them equal); ``key=value`` arguments override them. Self-consistency runs on the first
``--sc-limit`` dev questions (100 by default; 0 = all) because it costs n times the generation.
The dev databases are never seen in training (the world's split is by database); the model writes
placeholders for their names and values (the ``anonymized`` template, ``sqlcoach.prompts.anonymize``;
docs/training.md says why a from-scratch model needs it). The tokenizer is trained on the training
split's text and its rendered prompts, never on dev. Run it with ``OMP_NUM_THREADS`` at most the number
of free cores (on a busy machine, 1).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import time
from pathlib import Path
from typing import Any

#: The demo's SFT recipe: a from-scratch model, so a high learning rate and the ``anonymized``
#: template (question first, then a compact schema without example values; tables, columns and the
#: values the question mentions are placeholders: ``sqlcoach.prompts.anonymize``). The dev databases
#: are never seen in training; a model with no word knowledge cannot write their names, but it can
#: write placeholders it has written thousands of times. No schema renaming: with placeholders
#: there is no name left to memorise.
DEMO_SFT: dict[str, Any] = {
    "method": "full",
    "data_kind": "spider",
    "split": "train",
    "template": "anonymized",
    "schema_style": "compact",
    "schema_sample_values": 0,
    "rename_copies": 0,
    "rename_keep_original": True,
    "learning_rate": 2e-3,
    # The clock decides when to stop (max_seconds) and drives the learning rate (anneal_by_clock):
    # how many steps fit in the budget depends on the machine and on what else runs on it. 480 s
    # leaves the rest of the 10 minutes for the world, the tokenizer, prediction and scoring.
    "lr_scheduler_type": "constant",
    "anneal_by_clock": True,
    "max_seconds": 480.0,
    "max_steps": 5000,
    "warmup_ratio": 0.05,
    "weight_decay": 0.0,
    "per_device_train_batch_size": 16,
    "gradient_accumulation_steps": 1,
    "max_length": 320,
    "dtype": "float32",
    "use_cpu": True,
    "activation_checkpointing": False,
    "logging_steps": 10,
    "save_steps": 100,
    "save_total_limit": 1,
    "report_to": "none",
    "seed": 0,
}

STAGES = ("untrained", "sft_greedy", "sft_self_consistency")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="build a world, train a tiny model, predict, score (offline, CPU)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--size", default="tiny", help="model size for `model init` (tiny, small)")
    p.add_argument("--vocab-size", type=int, default=1024,
                   help="BPE vocabulary target (default 1024, below the size's own 2048: placeholder prompts "
                        "need few merges, and a smaller embedding and output layer make every step cheaper)")
    p.add_argument("--tokenizer-schemas", choices=("train", "all"), default="train",
                   help="schemas in the tokenizer's corpus: the training databases' (default) or all the "
                        "world's, dev included (CREATE statements only, never dev questions or SQL)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n", type=int, default=8, help="self-consistency samples (0 = skip that stage)")
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature for self-consistency")
    p.add_argument("--dev-limit", type=int, default=None, help="use only the first N dev questions")
    p.add_argument("--sc-limit", type=int, default=100,
                   help="self-consistency on the first N dev questions (0 = all; it costs n times greedy)")
    p.add_argument("--untrained-limit", type=int, default=50,
                   help="score the untrained model on the first N dev questions (it writes noise up to "
                        "--max-new-tokens, so this bounds its cost; 0 = skip)")
    p.add_argument("--batch-size", type=int, default=32, help="prompts per generate() call")
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--sft-config", default=None, help="YAML overriding DEMO_SFT (e.g. configs/sft/demo.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override SFT settings")
    p.set_defaults(func=run)


def _say(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _block(summary: dict[str, Any]) -> dict[str, Any]:
    return summary.get("all", summary)


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the demo never downloads anything
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from sqlcoach.bench.memory import track_peak
    from sqlcoach.bench.timing import Timings
    from sqlcoach.data import load_examples
    from sqlcoach.data.world import build_world
    from sqlcoach.errors import ConfigError
    from sqlcoach.train.common import parse_overrides
    from sqlcoach.train.config import SFTRunConfig

    t_start = time.monotonic()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    world = out / "world"
    timings = Timings()
    memory: dict[str, Any] = {}
    stages: dict[str, Any] = {}
    if args.n < 0:
        raise ConfigError("--n must be >= 0")

    # The SFT config is validated before anything slow runs, so a typo fails in a second.
    values = dict(DEMO_SFT)
    if args.sft_config:
        import yaml

        values.update(yaml.safe_load(Path(args.sft_config).read_text()) or {})
    values.update(model=str(out / "model-init"), data_path=str(world), output_dir=str(out / "sft"))
    values.update(parse_overrides(args.overrides))
    from sqlcoach.train.common import build_config

    cfg = build_config(SFTRunConfig, values, source="demo SFT settings")

    # 1. world -------------------------------------------------------------------------------
    _say(f"building the world in {world}")
    with timings.stage("world"), track_peak() as mem:
        stats = build_world(world, seed=args.seed, progress=True)
    memory["world"] = mem.as_dict()
    train = load_examples("spider", world, "train")
    dev = load_examples("spider", world, "dev")
    if args.dev_limit:
        dev = dev[: args.dev_limit]
    _say(f"world: {len(train)} train / {len(dev)} dev questions ({timings.seconds['world']:.1f}s)")

    # 2. model init ----------------------------------------------------------------------------
    _say(f"training a tokenizer and initialising a {args.size} Qwen2")
    with timings.stage("model_init"), track_peak() as mem:
        from sqlcoach.models.tiny import init_tiny_model, world_corpus
        from sqlcoach.train.sft import build_rows, build_training_rows

        plain, _ = build_rows(
            train, template=cfg.template, schema_style=cfg.schema_style, sample_values=cfg.schema_sample_values
        )
        # The tokenizer sees the unrenamed training text (+ the train schemas); renamed copies
        # (cfg.rename_copies) are spelled with its merges, as dev names will be.
        corpus = world_corpus(world) + [m["content"] for r in plain for m in r["prompt"] + r["completion"]]
        if args.tokenizer_schemas == "all":
            corpus += _all_schema_statements(world)
        rows, _ = build_training_rows(train, cfg)
        info = init_tiny_model(out / "model-init", args.size, corpus, vocab_size=args.vocab_size, seed=args.seed)
    memory["model_init"] = mem.as_dict()
    _say(f"model: {info['parameters']:,} parameters, vocabulary {info['vocab_size']}")

    # 3. untrained ------------------------------------------------------------------------------
    if args.untrained_limit:
        stages["untrained"] = _predict_and_score(
            "untrained", out / "model-init", dev[: args.untrained_limit], out / "pred" / "untrained.sql",
            args, cfg, n=1, timings=timings, memory=memory,
        )

    # 4. SFT ----------------------------------------------------------------------------------
    _say(f"SFT ({cfg.method}): up to {cfg.max_steps} steps, batch {cfg.per_device_train_batch_size}, "
         f"lr {cfg.learning_rate}, clock limit {cfg.max_seconds}s")
    from sqlcoach.train.sft import run_sft

    with timings.stage("sft"), track_peak() as mem:
        sft = run_sft(cfg, rows=rows, log=_say)
    memory["sft"] = mem.as_dict()
    _say(f"SFT done: {sft['global_step']} steps, train loss {sft['train_loss']:.3f} ({sft['seconds']:.0f}s)")

    # 5. predictions ------------------------------------------------------------------------------
    model_dir = Path(sft["final_dir"])
    stages["sft_greedy"] = _predict_and_score(
        "sft_greedy", model_dir, dev, out / "pred" / "greedy.sql", args, cfg, n=1, timings=timings, memory=memory
    )
    if args.n > 1:
        sc_dev = dev[: args.sc_limit] if args.sc_limit else dev
        stages["sft_self_consistency"] = _predict_and_score(
            "sft_self_consistency", model_dir, sc_dev, out / "pred" / f"sc{args.n}.sql", args, cfg,
            n=args.n, timings=timings, memory=memory,
        )
        if args.sc_limit and args.sc_limit < len(dev):
            # Greedy on the same subset, so that the two are compared on the same questions.
            stages["sft_greedy_same_subset"] = _rescore_subset(stages["sft_greedy"], out / "pred" / "greedy.sql", sc_dev, args)

    total = time.monotonic() - t_start
    report = {
        "world": {k: v for k, v in stats.items() if k in ("version", "seed", "questions", "hardness", "seconds")},
        "model": info,
        "sft": sft,
        "sft_config": {k: getattr(cfg, k) for k in DEMO_SFT},
        "stages": stages,
        "timings": timings.seconds,
        "memory": memory,
        "total_seconds": round(total, 1),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cpu_count": os.cpu_count(),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "report.html").write_text(_html(report, out))
    print()
    print(format_stage_table(stages))
    print()
    _say(f"finished in {total:.0f}s; wrote {out / 'report.json'} and {out / 'report.html'}")
    return 0


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


def _predict_and_score(name, model_dir, examples, pred_path, args, cfg, *, n, timings, memory) -> dict[str, Any]:
    from sqlcoach.bench.memory import track_peak
    from sqlcoach.generate.predict import predict
    from sqlcoach.metrics import evaluate_examples
    from sqlcoach.models.load import load_model

    _say(f"{name}: predicting {len(examples)} dev questions (n={n})")
    if pred_path.exists():  # a fresh demo run must not resume from an older model's predictions
        pred_path.unlink()
    jsonl = pred_path.with_suffix(".jsonl")
    if jsonl.exists():
        jsonl.unlink()
    with timings.stage(f"{name}_predict"), track_peak() as mem:
        model, tok = load_model(model_dir, dtype="float32", device="cpu")
        summ = predict(
            model, tok, examples, pred_path, n=n, temperature=args.temperature if n > 1 else 0.0,
            batch_size=max(1, args.batch_size // n) if n > 1 else args.batch_size,
            max_new_tokens=args.max_new_tokens, template=cfg.template, schema_style=cfg.schema_style,
            schema_sample_values=cfg.schema_sample_values,
            seed=args.seed,
        )
    memory[f"{name}_predict"] = mem.as_dict()
    _say(summ.line())
    preds = pred_path.read_text().split("\n")[: len(examples)]
    with timings.stage(f"{name}_score"):
        rep = evaluate_examples(
            examples, preds, etype="all", mode="spider",
            tables_path=str(Path(args.out) / "world" / "tables.json"),
        )
    _say(f"{name}: EX {_fmt(_block(rep.summary).get('ex'))}  EM {_fmt(_block(rep.summary).get('em'))}")
    samples = []
    for v, ex, p in list(zip(rep.verdicts, examples, preds))[:8]:
        samples.append({"question": ex.question, "db_id": ex.db_id, "pred": p, "gold": ex.gold_sql,
                        "ex": v.ex, "error": v.error})
    return {"summary": rep.summary, "throughput": {"examples_per_s": summ.examples_per_s,
            "generated_tokens_per_s": summ.tokens_per_s, "seconds": summ.seconds}, "n": n,
            "count": len(examples), "samples": samples}


def _rescore_subset(full: dict[str, Any], pred_path: Path, subset: list[Any], args) -> dict[str, Any]:
    from sqlcoach.metrics import evaluate_examples

    preds = pred_path.read_text().split("\n")[: len(subset)]
    rep = evaluate_examples(subset, preds, etype="all", mode="spider",
                            tables_path=str(Path(args.out) / "world" / "tables.json"))
    return {"summary": rep.summary, "n": 1, "count": len(subset), "samples": [], "throughput": full["throughput"]}


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


def _html(report: dict[str, Any], out: Path) -> str:
    """A self-contained page: no external CSS/JS/images (the loss curve is a data URI)."""
    from sqlcoach.train.plots import png_data_uri

    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>sqlcoach demo report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#eee}"
        "td.l{text-align:left;font-family:monospace;font-size:90%}pre{background:#f6f6f6;padding:1em}</style>",
        "</head><body><h1>sqlcoach demo</h1>",
        f"<p>Total {report['total_seconds']} s on {report['cpu_count']} CPU(s); OMP_NUM_THREADS="
        f"{esc(str(report['omp_num_threads']))}. Model: {report['model']['parameters']:,} parameters, "
        f"vocabulary {report['model']['vocab_size']}. SFT: {report['sft']['global_step']} steps, "
        f"train loss {report['sft']['train_loss']:.3f}.</p>",
        "<h2>Execution accuracy (EX) and exact match (EM) by hardness</h2>",
        f"<pre>{esc(format_stage_table(report['stages']))}</pre>",
    ]
    png = report["sft"].get("loss_png")
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
