"""Headroom of a model's samples on unseen databases: greedy vs first/vote/vote-nonempty@n vs pass@k.

Run (from the repository root; the tiny demo model on ~100 questions takes a few minutes on 2 cores):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/headroom.py --model runs/base-compare10/start/sft/final \
        --world runs/base-compare10/start/world --out runs/headroom [--limit 100] [--n 8] \
        [--temperature 0.8] [--select vote] [--max-new-tokens 96]

What it does, each step with the library call a user would make:

1. picks ``--limit`` dev questions of the world (``pipelines.evaluate.stratified``: every dev
   database in proportion, i.e. databases never seen in training) and writes their gold lines to
   ``OUT/gold.sql``;
2. predicts them greedily (``OUT/greedy.sql``) and with ``--n`` samples at ``--temperature``
   (``OUT/sc{n}.sql`` + ``OUT/sc{n}.jsonl``, the answer chosen by ``--select``), the model's own
   prompt recipe (``sqlcoach_recipe.json``), as ``sqlcoach predict`` does;
3. runs ``sqlcoach evaluate --gold OUT/gold.sql --pred OUT/sc{n}.sql --db WORLD/database
   --greedy OUT/greedy.sql --etype exec --out OUT/summary.json`` in a child process, the command a
   user types: it prints EX of the chosen answers, then the headroom table (``metrics.headroom``);
4. shows ``--show`` questions where ``vote`` and ``vote-nonempty`` chose differently: each pick's
   SQL, its result as a model would read it (``execution.render.render_result``, 300 characters)
   and whether it is right.

Prints the prediction times and the machine's load (``os.getloadavg``) beside the tables: the
figures are accuracies, which do not depend on load, the seconds do.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a model folder sqlcoach trained (its recipe is read)")
    ap.add_argument("--world", required=True, help="a demo world folder (dev.json, dev_gold.sql, database/)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--limit", type=int, default=100, help="dev questions, spread over every dev database")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--select", default="vote")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show", type=int, default=3, help="questions where vote and vote-nonempty differ, shown")
    args = ap.parse_args()

    from sqlcoach.data import load_examples
    from sqlcoach.generate.predict import predict
    from sqlcoach.models.load import load_model
    from sqlcoach.pipelines.evaluate import stratified
    from sqlcoach.prompts.recipe import resolve_prompt

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    world = Path(args.world)
    dev = stratified(load_examples("spider", str(world), "dev"), args.limit)
    gold = out / "gold.sql"
    gold.write_text("".join(f"{' '.join((ex.gold_sql or '').split())}\t{ex.db_id}\n" for ex in dev), encoding="utf-8")
    dbs = sorted({ex.db_id for ex in dev})
    print(f"{len(dev)} dev questions from {len(dbs)} databases ({', '.join(dbs)}); load {os.getloadavg()[0]:.1f}")

    recipe = resolve_prompt(args.model)
    model, tok = load_model(args.model, dtype="auto", device="auto")
    common = dict(prompt=recipe.prompt, max_new_tokens=args.max_new_tokens,
                  batch_size=args.batch_size, seed=args.seed, model_id=args.model, progress=False)
    t0 = time.monotonic()
    predict(model, tok, dev, out / "greedy.sql", **common)
    t_greedy = time.monotonic() - t0
    t0 = time.monotonic()
    sc = out / f"sc{args.n}.sql"
    predict(model, tok, dev, sc, n=args.n, temperature=args.temperature, select=args.select, **common)
    t_sc = time.monotonic() - t0
    print(f"predicted: greedy {t_greedy:.1f}s ({t_greedy / len(dev):.3f} s/question), n={args.n} at "
          f"T={args.temperature} {t_sc:.1f}s ({t_sc / len(dev):.3f} s/question, selection {args.select}); "
          f"load {os.getloadavg()[0]:.1f}")

    cmd = [sys.executable, "-m", "sqlcoach.cli", "evaluate", "--gold", str(gold), "--pred", str(sc),
           "--db", str(world / "database"), "--greedy", str(out / "greedy.sql"), "--etype", "exec",
           "--no-explain", "--out", str(out / "summary.json")]
    print("$ sqlcoach " + " ".join(cmd[3:]), flush=True)
    rc = subprocess.run(cmd).returncode
    if args.show:
        show_differences(dev, sc.with_suffix(".jsonl"), args.show)
    return rc


def show_differences(dev: list, jsonl: Path, limit: int) -> None:
    """Print up to ``limit`` questions on which ``vote`` and ``vote-nonempty`` pick different
    samples (those where exactly one pick is right first), with what each pick returned (rendered
    as a model reads it) and its EX."""
    import json

    from sqlcoach.execution.pool import ExecutorPool
    from sqlcoach.execution.render import render_result
    from sqlcoach.execution.select import Candidates, get_selector
    from sqlcoach.metrics import evaluate_examples

    recs = {r["index"]: r for r in map(json.loads, jsonl.read_text(encoding="utf-8").splitlines())}
    found = []  # (question, results, picks)
    with ExecutorPool(workers=1) as pool:
        for i, ex in enumerate(dev):
            sqls = recs[i]["samples"]
            res = [pool.run_one(ex.db_path, s, cache=True) if s else None for s in sqls]
            c = Candidates.of(sqls, res, question=ex.question)
            picks = {name: get_selector(name)(c) for name in ("vote", "vote-nonempty")}
            if picks["vote"].chosen != picks["vote-nonempty"].chosen:
                found.append((ex, res, picks))
        right = evaluate_examples([ex for ex, _, p in found for _ in p], [q.sql for _, _, p in found for q in p.values()],
                                  etype="exec", explain=False, pool=pool).verdicts if found else []
    pairs = [(f, (right[2 * k].ex, right[2 * k + 1].ex)) for k, f in enumerate(found)]
    better = sum(b and not a for _, (a, b) in pairs)
    worse = sum(a and not b for _, (a, b) in pairs)
    print(f"\nvote and vote-nonempty differ on {len(found)} of {len(dev)} questions: vote-nonempty right and vote "
          f"wrong on {better}, the reverse on {worse}")
    pairs.sort(key=lambda fp: fp[1][0] == fp[1][1])  # a pick that matters first
    for (ex, res, picks), oks in pairs[:limit]:
        print(f"\n[{ex.db_id}] {ex.question}\n  gold: {ex.gold_sql}\n  votes: {list(picks['vote'].votes)}")
        for (name, p), ok in zip(picks.items(), oks):
            body = render_result(res[p.chosen], budget=300).replace("\n", "\n      ")
            print(f"  {name} -> sample {p.chosen} ({'right' if ok else 'wrong'}): {p.sql}\n      {body}")


if __name__ == "__main__":
    sys.exit(main())
