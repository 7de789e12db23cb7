"""The agent table of issue 25 on the demo world: SFT control, agent without agent training, warm
start (multi-turn SFT), single-turn and multi-turn GRPO, over several seeds, on N dev questions.

Run (from the repository root, the demo's model as the converged start; ~30 min per seed on one
core of the 2-core machine, ``--parallel 2`` runs two seeds at once):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/agent_seeds.py --start runs/demo/sft/final \\
        --world runs/demo/world --out runs/agent-seeds --seeds 1,2,3 --dev 600 [--train 800] [--steps 20] [--filter-prompts 320] [--warm-lr 3e-4] [--warm-schedule linear] [--grpo-lr 1e-4] [--parallel 2]

What it does (every stage a ``sqlcoach`` command in its own process; a stage whose output exists
is kept, so an interrupted run continues where it stopped):

1. once, the start on the first ``--dev`` dev questions: single-pass greedy (the control) and as
   an agent without agent training;
2. per seed ``s``: ``agent rows`` on the first ``--train`` training questions (``--seed s``: which
   right answers become "run it, read, keep it" rows, ``--verify-fraction`` of them), the warm start (``train sft`` with
   ``configs/sft/demo-agent-warm.yaml``, ``seed=s``), then ``--steps`` GRPO steps each, ``seed=s``,
   the same pass-rate filter (``--filter-prompts`` prompts, k=4) and 8 questions x G=8 per step: single-turn
   (``configs/grpo/demo.yaml``) from the start and from the warm start, multi-turn
   (``configs/grpo/demo-agent.yaml``) from the warm start (``--arms`` picks among them); with
   ``--same-sft`` also row ``sft-same``: the warm start's recipe on the same rows' final answers in the
   single-pass format (no tags, no query turn), so the cost of the agent format and the cost of
   more SFT are told apart; ``--warm-set add_agent_tokens=true`` makes each tag one new token;
   ``--mix-plain`` warms on the agent rows interleaved with their single-pass twins;
   ``--keep-action`` uses the keep action (an empty ``<solution></solution>``) in rows, rollouts
   and evaluations; ``--protocol review`` the review protocol (the first turn a plain answer);
3. every model on the same questions, single pass (``--single-pass``, greedy) and, for the models
   that write tags, as an agent with the multi-turn recipe's budget (``--agent
   --no-agent-instruction --max-turns 3 --max-new-tokens 64 --max-total-tokens 192``, greedy; the
   budget by --turn-tokens and --total-tokens);
4. the table: EX with a 95% bootstrap interval over questions and seeds, the paired difference to
   the control (start, single pass) with its interval, bootstrap p and the largest per-seed exact
   McNemar p (``metrics.stats.paired_difference``), the agent rows' mean turns, queries run,
   first query failed and recoveries (first query failed, final answer right), and EX of the
   trajectories' first queries alone (what the revision step added or lost); training seconds per
   arm. Written to OUT/table.md and OUT/table.json.

The start is deterministic (greedy), so its rows are one run paired with every seed of the others.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
SQLCOACH = str(Path(sys.executable).with_name("sqlcoach"))
def agent_flags(args: argparse.Namespace) -> list[str]:
    """``predict``'s flags for an agent evaluation: the multi-turn recipe's budget by default."""
    return (["--agent", "--no-agent-instruction", "--max-turns", "3", "--max-new-tokens", str(args.turn_tokens),
             "--max-total-tokens", str(args.total_tokens), "--protocol", args.protocol, "--on-limit", "last_query"]
            + ["--keep-action"] * args.keep_action)
# name -> (grpo config, start: "start" or "warm"); the warm start's own row is "warm"
ARMS = {"grpo-single-start": ("demo.yaml", "start"), "grpo-single-warm": ("demo.yaml", "warm"),
        "grpo-multi-warm": ("demo-agent.yaml", "warm")}
# models that write tags, so an agent evaluation means something (the start and the single-turn arm
# from it never write one: measured once on the start, row "start agent")
AGENT_ROWS = ("start", "warm", "grpo-single-warm", "grpo-multi-warm")
CONTROL = "start greedy (control)"


def _run(cmd: list[str], log: Path) -> None:
    """Run one stage, its output appended to ``log``; a failure stops the run, naming the log."""
    with open(log, "a") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n")
        fh.flush()
        rc = subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "TRL_EXPERIMENTAL_SILENCE": "1"})
    if rc:
        raise SystemExit(f"agent_seeds: {' '.join(cmd[:3])} failed (exit {rc}); see {log}")


def _predict(model: str, world: str, n_dev: int, out: Path, agent: list[str] | None, log: Path) -> None:
    """Greedy predictions of ``model`` on the first ``n_dev`` dev questions: as an agent with the
    flags ``agent`` (``agent_flags``), or single pass when ``None``."""
    if out.exists() and out.with_suffix(".summary.json").exists():
        return
    cmd = [SQLCOACH, "predict", "--model", model, "--data", world, "--split", "dev", "--limit", str(n_dev), "--workers", "1",
           "--device", "cpu", "--batch-size", "16", "--out", str(out), "--json", str(out.with_suffix(".summary.json"))]
    _run(cmd + (agent if agent is not None else ["--single-pass"]), log)


def _timed(stage_dir: Path, cmd: list[str], log: Path) -> None:
    """Train into ``stage_dir`` unless its ``final`` exists; the wall seconds go to ``seconds.json``."""
    if (stage_dir / "final").is_dir():
        return
    t0 = time.monotonic()
    _run(cmd, log)
    (stage_dir / "seconds.json").write_text(json.dumps({"seconds": round(time.monotonic() - t0, 1)}))


def start_job(args: argparse.Namespace, out: Path) -> None:
    log = out / "start.log"
    _predict(args.start, args.world, args.dev, out / "start.greedy.sql", None, log)
    _predict(args.start, args.world, args.dev, out / "start.agent.sql", agent_flags(args), log)


def seed_job(args: argparse.Namespace, out: Path, seed: int) -> None:
    d = out / f"seed{seed}"
    d.mkdir(parents=True, exist_ok=True)
    log = d / "log.txt"
    rows = d / "rows.jsonl"
    if not rows.exists():
        tmp = d / "rows.partial.jsonl"
        _run([SQLCOACH, "agent", "rows", "--model", args.start, "--data", args.world, "--split", "train", "--limit", str(args.train),
              "--out", str(tmp), "--device", "cpu", "--no-agent-instruction", "--max-turns", "3", "--verify-fraction", str(args.verify_fraction),
              "--seed", str(seed), "--protocol", args.protocol] + ["--keep-action"] * args.keep_action
             + ["--attempt-loss", args.attempt_loss, "--attempt-temperature", str(args.attempt_temperature)], log)
        tmp.rename(rows)
    plain = d / "rows-plain.jsonl"
    if (args.same_sft or args.mix_plain) and not plain.exists():
        plain_rows(rows, plain)
    warm_rows = rows
    if args.mix_plain:  # each agent row followed by its single-pass twin: the first attempt stays anchored
        warm_rows = d / "rows-mixed.jsonl"
        if not warm_rows.exists():
            a, b = rows.read_text(encoding="utf-8").splitlines(), plain.read_text(encoding="utf-8").splitlines()
            warm_rows.write_text("".join(x + "\n" + y + "\n" for x, y in zip(a, b)), encoding="utf-8")

    def warm_recipe(data: Path, stage: str, sets: list[str]) -> None:
        """The warm start's recipe (configs/sft/demo-agent-warm.yaml at --warm-lr/--warm-schedule) on ``data``."""
        _timed(d / stage, [SQLCOACH, "train", "sft", "--config", str(HERE / "configs/sft/demo-agent-warm.yaml"),
                           f"model={args.start}", f"data_path={data}", f"output_dir={d / stage}", f"seed={seed}"]
               + ([f"learning_rate={args.warm_lr}"] if args.warm_lr else [])
               + ([f"lr_scheduler_type={args.warm_schedule}"] if args.warm_schedule else []) + sets, log)

    if args.same_sft:  # the warm start's answers without the agent format: what more SFT alone costs or buys
        warm_recipe(plain, "sft-same", [kv for kv in args.warm_set if not kv.startswith("add_agent_tokens=")])
    warm_recipe(warm_rows, "warm", list(args.warm_set))
    models = {"warm": str(d / "warm" / "final")}
    if args.same_sft:
        models["sft-same"] = str(d / "sft-same" / "final")
    for name, (config, base) in ARMS.items():
        if name not in args.arms:
            continue
        try:
            _timed(d / name, [SQLCOACH, "train", "grpo", "--config", grpo_config(config, out, args.keep_action, args.protocol, args.turn_tokens, args.total_tokens,
                                                                      args.on_limit),
                              f"model={args.start if base == 'start' else models['warm']}", f"data_path={args.world}",
                              f"output_dir={d / name}", f"max_steps={args.steps}", "max_seconds=3600",
                              f"pass_rate_max_prompts={args.filter_prompts}", f"save_steps={args.steps}", "sample_every=0",
                              "disable_tqdm=true", f"seed={seed}"]
                   + ([f"learning_rate={args.grpo_lr}"] if args.grpo_lr else []), log)
        except SystemExit as exc:  # e.g. the pass-rate filter kept no prompt: the arm is a result too, the others go on
            print(f"seed {seed}: {name} not trained ({exc}); its rows are left out", flush=True)
            continue
        models[name] = str(d / name / "final")
    for name, model in models.items():
        _predict(model, args.world, args.dev, d / f"{name}.greedy.sql", None, log)
        if name in AGENT_ROWS:
            _predict(model, args.world, args.dev, d / f"{name}.agent.sql", agent_flags(args), log)


def grpo_config(name: str, out: Path, keep: bool, protocol: str = "tags", turn_tokens: int = 64,
                total_tokens: int = 192, on_limit: str | None = None) -> str:
    """The GRPO recipe ``configs/grpo/NAME``; for a recipe with an ``agent:`` block and ``keep``,
    another protocol or another budget than its own, a copy in ``out`` whose block says so (the
    multi-turn arm rolls out as it was warmed and as it is evaluated)."""
    import yaml

    path = HERE / "configs/grpo" / name
    cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(cfg.get("agent"), dict):
        return str(path)
    block = {"keep": False, **cfg["agent"]}  # the recipe's block, its default keep spelt out
    change = {"keep": keep, "protocol": protocol, "max_turn_tokens": turn_tokens, "on_limit": on_limit or block.get("on_limit")}
    if {**block, **change} == block and cfg.get("max_completion_length") == total_tokens:
        return str(path)
    cfg["agent"].update(change)
    cfg["max_completion_length"] = total_tokens
    copy = out / f"{protocol}{'-keep' * keep}-{turn_tokens}-{total_tokens}-{change['on_limit']}-{name}"
    copy.write_text(f"# {path.name} with agent protocol {protocol}, keep {keep}, {turn_tokens} tokens a turn, "
                    f"{total_tokens} a trajectory (benchmarks/agent_seeds.py)\n" + yaml.safe_dump(cfg, sort_keys=False),
                    encoding="utf-8")
    return str(copy)


def plain_rows(rows: Path, out: Path) -> None:
    """``rows`` (agent rows) with each completion replaced by its final answer alone, no tags, no
    observation: the same questions and answers the warm start trains on, in the single-pass format."""
    from sqlcoach.data.export import OBSERVATION_SPANS
    from sqlcoach.prompts.agent import SOLUTION_CLOSE, SOLUTION_OPEN, SQL_CLOSE, SQL_OPEN

    lines = []
    for line in rows.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        text = rec["completion"][-1]["content"]
        answer = text.rsplit(SOLUTION_OPEN, 1)[-1].split(SOLUTION_CLOSE, 1)[0].strip()
        spans = rec.get(OBSERVATION_SPANS) or []
        if not answer and spans:  # the keep action: the answer is the attempt, the text before its observation
            attempt = text[: spans[0][0]]
            answer = (attempt.split(SQL_OPEN, 1)[-1].split(SQL_CLOSE, 1)[0] if SQL_OPEN in attempt else attempt).strip()
        rec.pop(OBSERVATION_SPANS, None)
        rec.pop("tools", None)
        rec["completion"] = [{"role": "assistant", "content": answer}]
        lines.append(json.dumps(rec))
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _first_queries(jsonl: Path) -> list[str]:
    """Each trajectory's first query (``generate.agent_predict.first_answer``), in question order."""
    from sqlcoach.generate.agent_predict import first_answer

    recs = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [first_answer(r) for r in sorted(recs, key=lambda r: r["index"])]


def table(args: argparse.Namespace, out: Path, seeds: list[int]) -> None:
    from sqlcoach.data import load_examples
    from sqlcoach.metrics import evaluate_examples
    from sqlcoach.metrics.stats import bootstrap_mean, paired_difference

    examples = load_examples("spider", args.world, "dev")[: args.dev]

    def ex_of(sql_lines: list[str]) -> list[float]:
        return [float(r["ex"]) for r in evaluate_examples(examples, sql_lines, etype="exec", workers=1).rows()]

    def lines(p: Path) -> list[str]:
        return p.read_text(encoding="utf-8").split("\n")[: len(examples)]

    # (label, prediction files, evaluated as an agent, the training stage whose seconds it shows)
    rows: list[tuple[str, list[Path], bool, str]] = [(CONTROL, [out / "start.greedy.sql"], False, ""),
                                                     ("start agent (no agent training)", [out / "start.agent.sql"], True, "")]
    for name in ("sft-same", "warm", *ARMS):
        rows.append((f"{name} greedy", [out / f"seed{s}" / f"{name}.greedy.sql" for s in seeds], False, name))
        if name in AGENT_ROWS:
            rows.append((f"{name} agent", [out / f"seed{s}" / f"{name}.agent.sql" for s in seeds], True, name))
    control = [ex_of(lines(out / "start.greedy.sql"))]
    result = []
    md = ["| row | seeds | EX [95% CI] | minus control [95% CI] | p boot / McNemar (max) | only row / only control |"
          " per-seed EX | mean turns | queries run | first query failed | recoveries | first queries' EX | train s |",
          "|" + "---|" * 13]
    for label, paths, is_agent, stage in rows:
        paths = [p for p in paths if p.exists()]
        if not paths:
            continue
        scores = control if label == CONTROL else [ex_of(lines(p)) for p in paths]
        est = bootstrap_mean(scores)
        rec: dict = {"row": label, "seeds": len(paths), "ex": est.as_dict(), "per_seed": [sum(s) / len(s) for s in scores]}
        if label != CONTROL:
            d = paired_difference(scores, control)
            rec["vs_control"] = d.as_dict()  # mean, interval, p_bootstrap, p_mcnemar, a_only, b_only
            diff = f"{100 * d.mean:+.1f} [{100 * d.lo:+.1f}, {100 * d.hi:+.1f}] | {d.p_bootstrap:.3f} / {d.p_mcnemar:.3f} | {d.a_only} / {d.b_only}"
        else:
            diff = "- | - | -"
        agent = ["-"] * 5
        if is_agent:
            sums = [json.loads(p.with_suffix(".summary.json").read_text()) for p in paths]
            firsts = [ex_of(_first_queries(p.with_suffix(".jsonl"))) for p in paths]
            rec["agent"] = {k: [s.get(k) for s in sums] for k in ("mean_turns", "queries_run", "first_query_failed", "recoveries",
                                                                   "generation_seconds", "execution_seconds", "finish")}
            rec["first_queries_ex"] = [sum(f) / len(f) for f in firsts]
            mean = lambda k: sum(s.get(k) or 0 for s in sums) / len(sums)  # noqa: E731
            agent = [f"{mean('mean_turns'):.2f}", f"{mean('queries_run'):.0f}", f"{mean('first_query_failed'):.0f}",
                     f"{mean('recoveries'):.1f}", f"{100 * sum(map(sum, firsts)) / sum(map(len, firsts)):.1f}"]
        secs = [json.loads(f.read_text())["seconds"] for s in seeds if stage and (f := out / f"seed{s}" / stage / "seconds.json").exists()]
        rec["train_seconds"] = secs
        md.append(f"| {label} | {len(paths)} | {100 * est.mean:.1f} [{100 * est.lo:.1f}, {100 * est.hi:.1f}] | {diff} | "
                  + " / ".join(f"{100 * x:.1f}" for x in rec["per_seed"]) + " | " + " | ".join(agent)
                  + f" | {' / '.join(f'{x:.0f}' for x in secs) or '-'} |")
        result.append(rec)
    head = (f"{len(examples)} dev questions of {args.world} (databases never seen in training), seeds {seeds}; "
            f"EX and differences in points; mean turns / queries / failures / recoveries are means over the seeds")
    (out / "table.md").write_text(head + "\n\n" + "\n".join(md) + "\n")
    (out / "table.json").write_text(json.dumps({"questions": len(examples), "seeds": seeds, "rows": result}, indent=2))
    print(head)
    print("\n".join(md))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--start", required=True, help="the converged start (a model folder)")
    ap.add_argument("--world", required=True, help="its world (Spider layout)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--dev", type=int, default=600, help="the first N dev questions")
    ap.add_argument("--train", type=int, default=800, help="training questions for the warm-start rows")
    ap.add_argument("--steps", type=int, default=20, help="GRPO steps per arm")
    ap.add_argument("--verify-fraction", type=float, default=0.2,
                    help="agent rows: share of the rightly answered questions written as 'run the own answer, read, keep "
                         "it' (the rest: the gold answered directly); 1.0 teaches a policy to query before every answer")
    ap.add_argument("--warm-lr", type=float, default=None,
                    help="the warm start's learning rate (default: configs/sft/demo-agent-warm.yaml's 1e-3, chosen for a "
                         "half-trained start; continued SFT from the converged start was best at 3e-4 in configs/compare/converged-sweep.yaml)")
    ap.add_argument("--warm-schedule", default=None, choices=["constant", "linear", "cosine"],
                    help="the warm start's schedule (default: the config's constant rate; linear and cosine end at 0)")
    ap.add_argument("--warm-set", action="append", default=[], metavar="KEY=VALUE",
                    help="any other train sft key for the warm start, e.g. method=lora (repeatable)")
    ap.add_argument("--grpo-lr", type=float, default=None,
                    help="every GRPO arm's learning rate (default: the recipes' 3e-4; configs/compare/converged.yaml runs GRPO "
                         "from the converged start at 1e-4)")
    ap.add_argument("--filter-prompts", type=int, default=320,
                    help="training prompts the pass-rate filter samples (k=4) per GRPO arm; a converged start solves most, "
                         "and the filter drops those")
    ap.add_argument("--arms", default=",".join(ARMS),
                    help=f"GRPO arms to train, comma-separated, of {', '.join(ARMS)} ('none': the warm start's rows only)")
    ap.add_argument("--same-sft", action="store_true",
                    help="also train row 'sft-same': the warm start's recipe on the same rows' final answers without the "
                         "agent format (single-pass completions), so format cost and further-SFT cost are told apart")
    ap.add_argument("--keep-action", action="store_true",
                    help="the agent keep action everywhere: agent rows --keep-action (right attempts kept with an empty "
                         "<solution></solution> instead of copied), predict --agent --keep-action, keep: true in the "
                         "multi-turn GRPO block")
    ap.add_argument("--protocol", default="tags", choices=["tags", "review"],
                    help="the agent protocol of rows, rollouts and evaluations: tags (<sql> first), or review (the first "
                         "turn a plain answer as in one pass, its result shown as a user message, then keep or revise)")
    ap.add_argument("--attempt-loss", default="all", choices=["all", "right", "none"],
                    help="agent rows --attempt-loss: which of the policy's own attempts the warm start trains on")
    ap.add_argument("--attempt-temperature", type=float, default=0.0,
                    help="agent rows --attempt-temperature: sampled attempts (more revision rows)")
    ap.add_argument("--mix-plain", action="store_true",
                    help="the warm start trains on each agent row and its single-pass twin (the same answer, no agent "
                         "format: rows-plain.jsonl), so the first attempt keeps the start's own habit")
    ap.add_argument("--on-limit", default=None, choices=["last_query", "none"],
                    help="the multi-turn arm's answer of a trajectory that never answers (default: the recipe's last_query; "
                         "none scores it as no answer, SkyRL's rule). Evaluations keep predict's last_query")
    ap.add_argument("--turn-tokens", type=int, default=64,
                    help="agent evaluations and the multi-turn arm: tokens per model turn (--max-new-tokens, max_turn_tokens; "
                         "the multi-turn recipe's 64 by default)")
    ap.add_argument("--total-tokens", type=int, default=192,
                    help="agent evaluations and the multi-turn arm: tokens per trajectory, observations included "
                         "(--max-total-tokens, max_completion_length; the recipe's 192 by default)")
    ap.add_argument("--parallel", type=int, default=1, help="stage groups run at once (the start's rows and each seed)")
    ap.add_argument("--table-only", action="store_true", help="only print the table of what exists")
    args = ap.parse_args()
    if shutil.which(SQLCOACH) is None:
        raise SystemExit(f"agent_seeds: {SQLCOACH} not found: run it with the venv's python")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    args.arms = [] if args.arms == "none" else [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in args.arms if a not in ARMS]
    if unknown:
        ap.error(f"--arms: unknown {unknown}; known: {', '.join(ARMS)}")
    if not args.table_only:
        t0 = time.monotonic()
        print(f"load {os.getloadavg()}; logs in {out}/start.log and {out}/seed*/log.txt", flush=True)
        with ThreadPoolExecutor(max_workers=args.parallel) as pool:
            futs = [pool.submit(start_job, args, out)] + [pool.submit(seed_job, args, out, s) for s in seeds]
            for f in futs:
                f.result()
        print(f"stages done in {time.monotonic() - t0:.0f} s; load {os.getloadavg()}", flush=True)
    table(args, out, seeds)


if __name__ == "__main__":
    main()
