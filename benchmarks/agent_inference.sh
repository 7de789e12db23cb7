#!/usr/bin/env bash
# Agent inference against single-pass greedy on the first N dev questions of a world, one model.
#   benchmarks/agent_inference.sh MODEL WORLD N OUTDIR [extra predict flags for the agent rows]
# Prints, per row: EX (sqlcoach evaluate, execution) and the agent summary line. Rows:
#   greedy                  single-pass greedy (the control)
#   agent                   --agent (instruction in the prompt, untagged turns are errors: SkyRL's rule)
#   agent-untagged-answers  --agent --untagged solution (a turn without tags is the final answer)
#   agent-no-instruction    --agent --no-agent-instruction (the prompt the model was trained on)
set -euo pipefail
MODEL=$1; WORLD=$2; N=$3; OUT=$4; shift 4
mkdir -p "$OUT"
head -n "$N" "$WORLD/dev_gold.sql" > "$OUT/gold.sql"
common=(--model "$MODEL" --data "$WORLD" --split dev --limit "$N" --workers 1 --device cpu --batch-size 16)
score() { sqlcoach evaluate --gold "$OUT/gold.sql" --pred "$OUT/$1.sql" --db "$WORLD/database" --etype exec --quiet --no-headroom 2>/dev/null | grep -E "EX" | head -3; }
row() {
  name=$1; shift
  echo "== $name"
  /usr/bin/time -f "wall %e s" sqlcoach predict "${common[@]}" --out "$OUT/$name.sql" "$@" 2>&1 | grep -E "^agent:|^predicted|^wall|recoveries" || true
  score "$name"
}
row greedy
row agent --agent "$@"
row agent-untagged-answers --agent --untagged solution "$@"
row agent-no-instruction --agent --no-agent-instruction "$@"
uptime
