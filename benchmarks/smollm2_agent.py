"""The SQL agent on a real model and real Spider: SmolLM2 start, single pass vs agent, before and after a warm start.

Run it (2 CPU cores: about 40 minutes with the defaults; nothing is downloaded):

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/smollm2_agent.py --start runs/smollm2-start/sft/final \\
        --data ../shared/data/spider --out runs/smollm2-agent [--eval-questions 300] [--warm-seconds 900]

``--start``: the SmolLM2 start ``benchmarks/smollm2_start.py`` builds (LoRA SFT on the demo world
with real names + Spider's ``dev_train``). Every stage is scored on the same ``--eval-questions`` of
Spider dev's ``dev_eval`` part (9 databases the start never saw; ``smollm2_spider.eval_set``, the
pick ``smollm2_start.py`` scores) with the start's prompt (``sql_terminal``, ``compact`` schema),
greedy:

1. ``single``: the start, one pass (the control; ``smollm2_spider.evaluate``);
2. ``agent``: the start as an agent with no agent training (``predict --agent`` semantics:
   ``pipelines.evaluate.agent_predict_and_score``): the protocol instruction in the prompt, at most
   ``--max-turns`` turns, ``<sql>`` queries answered with the rendered result (128 tokens each, 256
   per trajectory), 384 tokens per trajectory;
3. ``rows``: warm-start rows (``sqlcoach agent rows``: ``generate.agent_rows.warm_start_rows``) on
   the ``dev_train`` questions: the start's own greedy attempt, and where it is wrong or fails, that
   attempt run, its real observation, the gold as ``<solution>``;
4. ``warm``: LoRA SFT of the start on those rows for ``--warm-seconds`` (``train sft
   data_kind=export``), then scored one pass (``warm-single``) and as an agent (``warm-agent``).

Each agent stage gives mean turns, queries run, how trajectories ended and **recoveries** (a first
query that failed, a final answer that is right). The table: per stage the share of answers that
execute, EX with a 95% Wilson interval, and the exact McNemar test against the control (questions
only the control gets right / only this stage gets right). Then up to ``--show`` trajectories where
a turn after a failed query reached a different answer, with the observation the model read.

``--untagged solution`` (default) reads a turn without tags as the final answer: this model's
single-pass answer is bare SQL, so the untrained agent row measures the agent, not whether the
model writes tags (``--untagged error`` is ``predict --agent``'s default: such a turn is an error
observation and costs a turn).

Not run by this script: multi-turn and single-turn GRPO from the warm start
(``configs/grpo/smollm2-agent.yaml``); on 2 cores a SmolLM2 GRPO step with groups of 4 trajectories
takes minutes, so a budget that moves it is hours (docs/agent.md).

A stage already done (its ``OUT/<stage>/eval.json`` or ``OUT/warm/final``) is not run again.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from smollm2_spider import STYLE, TEMPLATE, VALUES, eval_set, evaluate, lora_sft  # noqa: E402  (the same pick, prompt and scoring)

from sqlcoach.metrics.stats import mcnemar, wilson  # noqa: E402


def agent_settings(args: argparse.Namespace):
    from sqlcoach.config.agent import AgentEval

    return AgentEval(max_turns=args.max_turns, observation_budget=256, per_observation=128, max_total_tokens=384,
                     untagged=args.untagged, instruction=True, timeout=5.0)


def evaluate_agent(stage: str, model_dir: Path, examples: list, out: Path, args: argparse.Namespace) -> dict:
    """Greedy agent trajectories of ``examples`` scored by EX, cached in ``out/stage/eval.json``."""
    done = out / stage / "eval.json"
    if done.is_file():
        return json.loads(done.read_text())
    from dataclasses import asdict

    from sqlcoach.models.load import load_model
    from sqlcoach.pipelines.evaluate import agent_predict_and_score
    from sqlcoach.prompts.settings import PromptSettings

    print(f"[{stage}] {len(examples)} agent trajectories with {model_dir}", flush=True)
    model, tok = load_model(model_dir, dtype="float32", device="cpu")
    scored = agent_predict_and_score(
        model, tok, examples, out / stage / "pred.sql", agent=agent_settings(args),
        prompt=PromptSettings(template=TEMPLATE, schema_style=STYLE, schema_sample_values=VALUES),
        batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, tables_path=Path(args.data) / "tables.json",
        samples=0)
    res = result(stage, examples, scored)
    res["agent"] = json.loads(json.dumps(asdict(scored.predict), default=str))
    res["agent_line"] = scored.predict.line()
    done.write_text(json.dumps(res, indent=1) + "\n")
    print(res["agent_line"], flush=True)
    return res


def result(stage: str, examples: list, scored) -> dict:
    verdicts = scored.report.verdicts
    return {
        "stage": stage, "questions": len(examples), "summary": json.loads(json.dumps(scored.report.summary, default=str)),
        "ex_correct": [bool(v.ex) for v in verdicts], "errors": [v.error for v in verdicts], "predictions": scored.predictions,
        "predict_seconds": scored.predict.seconds,
    }


def warm_rows(start: Path, out: Path, args: argparse.Namespace) -> Path:
    path = out / "rows.jsonl"
    if path.is_file():
        return path
    from sqlcoach.data import load_examples
    from sqlcoach.generate.agent import AgentConfig
    from sqlcoach.generate.agent_rows import warm_start_rows
    from sqlcoach.models.load import load_model
    from sqlcoach.prompts.recipe import resolve_prompt

    examples = load_examples("spider", args.data, "dev_train")[: args.train_questions]
    model, tok = load_model(start, dtype="float32", device="cpu")
    t0 = time.perf_counter()
    summ = warm_start_rows(model, tok, examples, out / "rows.tmp.jsonl", builder=resolve_prompt(start).builder(),
                           config=AgentConfig(max_turns=args.max_turns, per_observation=128), instruction=True,
                           batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, workers=1, seed=0)
    (out / "rows.tmp.jsonl").replace(path)
    (out / "rows_summary.json").write_text(json.dumps({"line": summ.line(), "seconds": time.perf_counter() - t0,
                                                       "skipped": summ.skipped}, indent=1) + "\n")
    print(f"[rows] {summ.line()} ({time.perf_counter() - t0:.0f}s)", flush=True)
    return path


def train_warm(start: Path, rows: Path, out: Path, args: argparse.Namespace) -> dict:
    done = out / "warm" / "summary.json"
    if done.is_file():
        return json.loads(done.read_text())["summary"]
    return lora_sft(start, out / "warm", args.warm_seconds, "warm", data_kind="export", data_path=str(rows),
                    learning_rate=3e-4, max_length=768)


def recovered_samples(res: dict, examples: list, show: int) -> list[list[str]]:
    """Trajectories whose first query failed (``failed_first_query``) and whose final answer is
    another query, right ones first: what the model ran, what it read, what it answered."""
    from sqlcoach.generate.agent_predict import failed_first_query

    path = Path(res["agent"]["jsonl_path"])
    recs = sorted((json.loads(x) for x in path.read_text().splitlines() if x.strip()), key=lambda r: r["index"])
    shown: list[list[str]] = []
    for i in sorted(range(len(recs)), key=lambda i: not res["ex_correct"][i]):
        first = (recs[i].get("turns") or [{}])[0]
        if not failed_first_query(recs[i]) or " ".join((recs[i].get("sql") or "").split()) == " ".join(
                (first.get("sql") or "").split()):
            continue
        ex = examples[i]
        shown.append([f"[{ex.db_id}] {ex.question}", f"  gold: {ex.gold_sql}", f"  turn 1 ran: {first.get('sql')}",
                      f"  read: {' '.join((first.get('observation') or '').split())[:300]}",
                      f"  final ({'right' if res['ex_correct'][i] else 'wrong'}, {len(recs[i].get('turns') or [])} turns): "
                      f"{recs[i].get('sql')}"])
        if len(shown) >= show:
            break
    return shown


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--start", required=True, help="the SmolLM2 start (benchmarks/smollm2_start.py's OUT/sft/final)")
    ap.add_argument("--data", required=True, help="a Spider folder (dev.json, tables.json, database/)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--eval-questions", type=int, default=300)
    ap.add_argument("--max-turns", type=int, default=3)
    ap.add_argument("--untagged", default="solution", choices=["solution", "error"])
    ap.add_argument("--train-questions", type=int, default=None, help="dev_train questions for the rows (default: all 519)")
    ap.add_argument("--warm-seconds", type=float, default=900.0)
    ap.add_argument("--max-new-tokens", type=int, default=64, help="tokens of one turn (and of a single pass)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--show", type=int, default=4)
    args = ap.parse_args()
    start, out = Path(args.start), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    examples = eval_set(args.data, args.eval_questions)
    print(f"{len(examples)} dev_eval questions; threads {os.environ.get('OMP_NUM_THREADS', 'all')}, "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    stages = [evaluate("single", start, examples, out, args), evaluate_agent("agent", start, examples, out, args)]
    rows = warm_rows(start, out, args)
    warm = train_warm(start, rows, out, args)
    final = out / "warm" / "final"
    print(f"[warm] {json.dumps({k: warm.get(k) for k in ('global_step', 'seconds', 'train_loss')}, default=str)}")
    stages += [evaluate("warm-single", final, examples, out, args), evaluate_agent("warm-agent", final, examples, out, args)]

    control = stages[0]["ex_correct"]
    head = "| stage | executes | EX [95% CI] | vs single pass: only control / only this, McNemar p | mean turns | queries run | recoveries |"
    table = [head, "|---|---|---|---|---|---|---|"]
    for st in stages:
        ex, n = sum(st["ex_correct"]), len(st["ex_correct"])
        lo, hi = wilson(ex, n)
        runs = st["summary"]["executes"]  # the report's rate: answers that ran, right or wrong
        p, a_only, b_only = mcnemar([[float(x) for x in control]], [[float(x) for x in st["ex_correct"]]])
        ag = st.get("agent") or {}
        vs = "-" if st is stages[0] else f"{a_only} / {b_only}, p {p:.2g}"
        turns = f"{ag['mean_turns']:.2f}" if ag else "1"
        rec = f"{ag.get('recoveries')} of {ag.get('first_query_failed')}" if ag else "-"
        table.append(f"| {st['stage']} | {runs:.3f} | {ex / n:.3f} [{lo:.3f}, {hi:.3f}] | {vs} | "
                     f"{turns} | {ag.get('queries_run', '-') if ag else '-'} | {rec} |")
    print("\n".join(table))
    for st in stages:
        if st.get("agent_line"):
            print(f"{st['stage']}: {st['agent_line']}")
    rows_summary = out / "rows_summary.json"
    if rows_summary.is_file():
        print("rows:", json.loads(rows_summary.read_text())["line"])
    for st in stages:
        if st.get("agent"):
            shown = recovered_samples(st, examples, args.show)
            print(f"\n{st['stage']}: trajectories whose failed first query was followed by another answer "
                  f"({len(shown)} shown, right ones first)")
            print("\n\n".join("\n".join(s) for s in shown))
    (out / "report.json").write_text(json.dumps({"table": table, "stages": [
        {k: v for k, v in st.items() if k not in ("predictions",)} for st in stages]}, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
