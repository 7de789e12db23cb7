"""The demo comparison, measured: SFT (continued), DPO, PPO and GRPO from one start checkpoint with
the same wall-clock budget, each evaluated the same way; prints the Markdown table and the time.

    OMP_NUM_THREADS=1 python benchmarks/compare_demo.py --out runs/compare-demo \\
        [--config configs/compare/demo.yaml] [start=/work/runs/start/sft/final world=/work/runs/start/world] \\
        [budget_value=180 eval_limit=200 ...]

It is ``sqlcoach compare`` (same function, same files: OUT/report.json, report.md, report.html)
plus the figures this benchmark exists to print: total wall time of this call, and per method the
median seconds per step, training seconds, tokens per second, peak memory of its process, EX.
A second call on the same OUT resumes: finished methods are not run again (their figures are
read back from OUT/methods/<name>/result.json).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs" / "compare" / "demo.yaml"))
    ap.add_argument("--out", required=True)
    ap.add_argument("overrides", nargs="*", metavar="key=value")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from sqlcoach.pipelines.compare import load_compare_config, run_compare
    from sqlcoach.pipelines.compare.report import caption, markdown_table
    from sqlcoach.config import parse_overrides

    cfg = load_compare_config(args.config, parse_overrides(args.overrides))
    t0 = time.monotonic()
    report = run_compare(cfg, args.out, log=lambda m: print(f"[{time.strftime('%H:%M:%S')}] {m}", flush=True),
                         config_path=args.config + "".join(f" {o}" for o in args.overrides))
    wall = time.monotonic() - t0
    print()
    print(markdown_table(report))
    print()
    print(caption(report))
    print(f"wall time of this call: {wall:.0f} s ({os.cpu_count()} CPUs, load average now "
          f"{os.getloadavg()[0]:.1f}); report: {Path(args.out) / 'report.html'}")
    for r in report.methods:
        t, ev = r.train, r.eval
        extra = f", prepare {t.prepare_seconds} s" if t and t.prepare_seconds else ""
        train_s = t.process_seconds if t and t.process_seconds is not None else "-"
        eval_s, eval_rss = (ev.process_seconds, ev.peak_process_rss_mb) if ev else ("-", "-")
        print(f"  {r.name}: status {r.status}; process wall: train {train_s} s{extra}, "
              f"eval {eval_s if eval_s is not None else '-'} s; eval peak RSS {eval_rss if eval_rss is not None else '-'} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
