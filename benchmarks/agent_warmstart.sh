#!/usr/bin/env bash
# Warm start for the SQL agent, then the agent rows of benchmarks/agent_inference.sh on the result.
#   [VERIFY=0.2] [SEED=0] benchmarks/agent_warmstart.sh START_MODEL WORLD N_TRAIN N_DEV OUTDIR [train sft key=value ...]
# 1. `sqlcoach agent rows` on the first N_TRAIN training questions (no instruction in the prompt,
#    3 turns), 2. `train sft` (configs/sft/demo-agent-warm.yaml: full, CPU) from START_MODEL on those rows, 3. single-pass greedy and
#    `predict --agent --no-agent-instruction --max-turns 3` of the warm-started model on N_DEV dev
#    questions, each scored by `sqlcoach evaluate`.
set -euo pipefail
START=$1; WORLD=$2; NTRAIN=$3; NDEV=$4; OUT=$5; shift 5
mkdir -p "$OUT"
sqlcoach agent rows --model "$START" --data "$WORLD" --split train --limit "$NTRAIN" --out "$OUT/rows.jsonl" \
  --device cpu --no-agent-instruction --max-turns 3 --verify-fraction "${VERIFY:-0.2}" --seed "${SEED:-0}" 2>/dev/null
sqlcoach train sft --config "$(dirname "$0")/../configs/sft/demo-agent-warm.yaml" model="$START" data_path="$OUT/rows.jsonl" output_dir="$OUT/sft" seed="${SEED:-0}" "$@" 2>/dev/null \
  | grep -E "loss|train_runtime" | tail -3
head -n "$NDEV" "$WORLD/dev_gold.sql" > "$OUT/gold.sql"
common=(--model "$OUT/sft/final" --data "$WORLD" --split dev --limit "$NDEV" --workers 1 --device cpu --batch-size 16)
for row in greedy agent; do
  flags=(); [ "$row" = agent ] && flags=(--agent --no-agent-instruction --max-turns 3 --max-new-tokens 128)
  echo "== warm-start $row"
  sqlcoach predict "${common[@]}" "${flags[@]}" --out "$OUT/$row.sql" 2>/dev/null | grep -E "^agent:|^predicted" || true
  sqlcoach evaluate --gold "$OUT/gold.sql" --pred "$OUT/$row.sql" --db "$WORLD/database" --etype exec --quiet --no-headroom
done
uptime
