#!/usr/bin/env bash
# Warm start for the SQL agent, then the agent rows of benchmarks/agent_inference.sh on the result.
#   [VERIFY=0.2] benchmarks/agent_warmstart.sh START_MODEL WORLD N_TRAIN N_DEV OUTDIR [train sft key=value ...]
# 1. `sqlcoach agent rows` on the first N_TRAIN training questions (no instruction in the prompt,
#    3 turns), 2. `train sft` (full, CPU) from START_MODEL on those rows, 3. single-pass greedy and
#    `predict --agent --no-agent-instruction --max-turns 3` of the warm-started model on N_DEV dev
#    questions, each scored by `sqlcoach evaluate`.
set -euo pipefail
START=$1; WORLD=$2; NTRAIN=$3; NDEV=$4; OUT=$5; shift 5
mkdir -p "$OUT"
sqlcoach agent rows --model "$START" --data "$WORLD" --split train --limit "$NTRAIN" --out "$OUT/rows.jsonl" \
  --device cpu --no-agent-instruction --max-turns 3 --verify-fraction "${VERIFY:-0.2}" 2>/dev/null
cat > "$OUT/sft.yaml" <<YAML
method: full
data_kind: export
learning_rate: 1.0e-3
lr_scheduler_type: constant
weight_decay: 0.0
per_device_train_batch_size: 16
max_length: 512
max_steps: 150
save_steps: 150
save_total_limit: 1
dtype: float32
use_cpu: true
logging_steps: 25
report_to: none
disable_tqdm: true
YAML
sqlcoach train sft --config "$OUT/sft.yaml" model="$START" data_path="$OUT/rows.jsonl" output_dir="$OUT/sft" "$@" 2>/dev/null \
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
