"""Label-free adaptation on unseen databases: `sqlcoach adapt` on half A, greedy EX on half B.

Run (from the repository root; the tiny demo model, a short budget, a few minutes on 2 cores):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/adapt_demo.py --model runs/base-compare10/start/sft/final \
        --world runs/base-compare10/start/world --out /tmp/adapt-bench [--steps 30] [--seeds 0] [--group 8] \
        [--reward consensus|verifier|consensus,verifier --verifier runs/verifier/final]

What it does:

1. the world's dev questions (databases never seen in training) are split per question by a fixed
   rule, the sha256 of the question text (``data.questions.in_half_a``: bucket < 50, half A);
2. half A is written as JSONL with ``question`` and ``db_id`` only (no SQL in the file at all),
   and ``pipelines.adapt.adapt`` (what ``sqlcoach adapt`` runs) adapts the model on it, one run
   per seed;
3. half B (never seen in any form) is predicted greedily by the start model and each adapted
   model (``generate.predict.predict``, the model's own recipe) and scored by EX
   (``metrics.evaluate_examples``); adapted minus start is a paired bootstrap difference with
   McNemar's p (``metrics.stats.paired_difference``), overall and per database;
4. with ``--maj N``, also the start's vote among N samples at temperature 1.0 (maj@N, N times
   the inference cost), the ceiling consensus training could distil;
5. prints the adapt report's per-database table, early stop, the collapse curve and the first
   questions of half B whose greedy answer changed (right/wrong before and after).

Prints the machine's load (``os.getloadavg``): the figures are accuracies, the seconds depend on load.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def _greedy(model_dir: str, examples: list, out: Path, n: int = 1) -> list[dict]:
    """Greedy (``n=1``) or the execution vote among ``n`` samples at temperature 1.0, scored by EX."""
    from sqlcoach.generate.predict import predict
    from sqlcoach.metrics import evaluate_examples
    from sqlcoach.models.load import load_model
    from sqlcoach.prompts.recipe import resolve_prompt

    rec = resolve_prompt(model_dir, log=None)
    model, tok = load_model(model_dir, device="cpu", dtype="float32")
    out.with_suffix(".jsonl").unlink(missing_ok=True)
    predict(model, tok, examples, out, n=n, temperature=0.0 if n == 1 else 1.0, batch_size=16, max_new_tokens=128,
            prompt=rec.prompt, workers=1, progress=False)
    preds = out.read_text(encoding="utf-8").splitlines()
    return evaluate_examples(examples, preds, etype="exec", workers=1).rows()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--world", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--min-share", type=float, default=0.4)
    ap.add_argument("--learning-rate", type=float, default=2e-5)
    ap.add_argument("--questions-per-step", type=int, default=2)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--show", type=int, default=6)
    ap.add_argument("--maj", type=int, default=0, help="also score the start's vote among N samples (maj@N) on half B")
    ap.add_argument("--reward", default="consensus",
                    help="comma-separated adapt rewards: consensus (default), verifier, or consensus,verifier (both)")
    ap.add_argument("--verifier", default=None, help="a `sqlcoach train verifier` folder (needed by the verifier reward)")
    args = ap.parse_args()

    from sqlcoach.data import load_examples
    from sqlcoach.data.questions import in_half_a
    from sqlcoach.errors import DataError
    from sqlcoach.metrics.stats import paired_difference
    from sqlcoach.pipelines.adapt import AdaptOptions, adapt

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    world = Path(args.world)
    dev = load_examples("spider", str(world), "dev")
    half_a = [e for e in dev if in_half_a(e.question)]
    half_b = [e for e in dev if not in_half_a(e.question)]
    qfile = out / "half_a.jsonl"
    qfile.write_text("".join(json.dumps({"question": e.question, "db_id": e.db_id}) + "\n" for e in half_a))
    print(f"load {os.getloadavg()}; dev {len(dev)} questions on {sorted({e.db_id for e in dev})}: "
          f"half A {len(half_a)} (adapt, no labels), half B {len(half_b)} (scored)")

    t0 = time.monotonic()
    start = _greedy(args.model, half_b, out / "start_B.sql")
    print(f"start greedy on B: EX {sum(r['ex'] for r in start) / len(start):.4f} ({time.monotonic() - t0:.0f} s)")
    if args.maj:
        t1 = time.monotonic()
        maj = _greedy(args.model, half_b, out / f"start_maj{args.maj}_B.sql", n=args.maj)
        d = paired_difference([[float(r["ex"]) for r in maj]], [[float(r["ex"]) for r in start]])
        print(f"start maj@{args.maj} (vote, T=1.0) on B: EX {sum(r['ex'] for r in maj) / len(maj):.4f}; minus greedy "
              f"{d.mean:+.4f} [{d.lo:+.4f}, {d.hi:+.4f}] mcnemar_p={d.p_mcnemar:.3f} ({time.monotonic() - t1:.0f} s)")
    for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
        run = out / f"adapt-seed{seed}"
        t1 = time.monotonic()
        opts = AdaptOptions(reward=[r.strip() for r in args.reward.split(",") if r.strip()], verifier=args.verifier,
                            num_generations=args.group, max_steps=args.steps, min_share=args.min_share,
                            learning_rate=args.learning_rate, questions_per_step=args.questions_per_step, use_cpu=True, seed=seed,
                            overrides={"disable_tqdm": True})
        try:
            report = adapt(args.model, str(qfile), str(run), databases=str(world / "database"), opts=opts,
                           log=lambda m: print(m) if m.startswith("adapt") else None)
        except DataError as exc:  # a safeguard refused to write a model: that is a result too
            print(f"\n== seed {seed}: no model ({time.monotonic() - t1:.0f} s): {exc}")
            continue
        train_s = time.monotonic() - t1
        adapted = _greedy(str(run / "final"), half_b, out / f"adapted{seed}_B.sql")
        a = [[float(r["ex"]) for r in adapted]]
        s = [[float(r["ex"]) for r in start]]
        d = paired_difference(a, s)
        print(f"\n== seed {seed} (reward {args.reward}): adapt {train_s:.0f} s, {report['adapted']['steps']} steps, early stop: {report['early_stop']}")
        print(f"EX on half B: start {sum(s[0]) / len(s[0]):.4f}  adapted {sum(a[0]) / len(a[0]):.4f}  "
              f"diff {d.mean:+.4f} [{d.lo:+.4f}, {d.hi:+.4f}] p_bootstrap={d.p_bootstrap:.3f} mcnemar_p={d.p_mcnemar:.3f} "
              f"(adapted-only {d.a_only}, start-only {d.b_only}) n={len(a[0])}")
        for db in sorted({r["db_id"] for r in start}):
            idx = [i for i, r in enumerate(start) if r["db_id"] == db]
            sa, ss = sum(a[0][i] for i in idx) / len(idx), sum(s[0][i] for i in idx) / len(idx)
            pd = report["per_database"].get(db, {})
            print(f"  {db:10s} B n={len(idx):3d}  start {ss:.3f}  adapted {sa:.3f}  diff {sa - ss:+.3f} | A: used "
                  f"{pd.get('used')}/{pd.get('sampled')} sampled, mean vote share {pd.get('mean_vote_share')}, "
                  f"skips {pd.get('skip_reasons')}")
        print("collapse curve:")
        for p in report["collapse_curve"]:
            print("  ", json.dumps(p))
        print("reward curve:", [(p["step"], p.get("reward")) for p in report["reward_curve"]])
        changed = [(st, ad) for st, ad in zip(start, adapted) if st["pred"] != ad["pred"]]
        print(f"half-B answers changed: {len(changed)} of {len(start)}; right->wrong "
              f"{sum(1 for st, ad in changed if st['ex'] and not ad['ex'])}, wrong->right "
              f"{sum(1 for st, ad in changed if ad['ex'] and not st['ex'])}")
        for st, ad in changed[: args.show]:
            q = half_b[st["index"]].question if st.get("index") is not None and st["index"] < len(half_b) else "?"
            print(f"  [{st['db_id']}] {q}\n    start  ({'right' if st['ex'] else 'wrong'}): {st['pred']}\n"
                  f"    adapted({'right' if ad['ex'] else 'wrong'}): {ad['pred']}")
    print(f"load {os.getloadavg()}")


if __name__ == "__main__":
    main()
