#!/usr/bin/env bash
# Multi-turn GRPO against single-turn GRPO at the same step budget on the demo world, 1 seed.
#   benchmarks/agent_grpo.sh START WORLD N_TRAIN N_DEV STEPS OUTDIR
# 1. warm start: benchmarks/agent_warmstart.sh START WORLD N_TRAIN N_DEV OUTDIR/warm (multi-turn SFT
#    rows from START's own attempts, SFT on them; prints its greedy and --agent rows);
# 2. single-turn GRPO (configs/grpo/demo.yaml) for STEPS steps, from START and from the warm start;
# 3. multi-turn GRPO (configs/grpo/demo-agent.yaml) for STEPS steps from the warm start (START writes
#    no tag, so its trajectories would all be malformed and carry no reward signal);
# 4. every model on the first N_DEV dev questions: single-pass greedy (`--single-pass`) and agent
#    (`--agent --no-agent-instruction --max-turns 3`, what the multi-turn recipe trains), EX by
#    `sqlcoach evaluate`; the agent summary line (mean turns, queries, recoveries) beside it.
# Every GRPO arm runs the same pass-rate filter size (160 prompts, k=4), 8 questions per step and the
# same steps; each prints its training seconds. A stage whose output folder exists is kept (delete it
# to redo). Run with OMP_NUM_THREADS=1 on a shared machine.
set -euo pipefail
START=$1; WORLD=$2; NTRAIN=$3; NDEV=$4; STEPS=$5; OUT=$6
HERE=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
WARM="$OUT/warm/sft/final"
if [ -d "$WARM" ]; then echo "== warm start: kept $WARM (delete it to redo)"; else
  echo "== warm start"
  bash "$HERE/benchmarks/agent_warmstart.sh" "$START" "$WORLD" "$NTRAIN" "$NDEV" "$OUT/warm"
fi
grpo() {  # name config model [key=value ...]
  name=$1; config=$2; model=$3; shift 3
  if [ -d "$OUT/$name/final" ]; then echo "== train $name: kept $OUT/$name/final (delete it to redo)"; return; fi
  echo "== train $name"
  sqlcoach train grpo --config "$HERE/configs/grpo/$config" model="$model" data_path="$WORLD" output_dir="$OUT/$name" \
    max_steps="$STEPS" max_seconds=3600 pass_rate_max_prompts=160 save_steps="$STEPS" sample_every=0 disable_tqdm=true "$@" \
    2>/dev/null | grep -E "pass-rate filter|train_runtime" || true
}
grpo grpo-single-start demo.yaml "$START"
grpo grpo-single-warm demo.yaml "$WARM"
grpo grpo-multi-warm demo-agent.yaml "$WARM"
head -n "$NDEV" "$WORLD/dev_gold.sql" > "$OUT/gold.sql"
score() { sqlcoach evaluate --gold "$OUT/gold.sql" --pred "$1" --db "$WORLD/database" --etype exec --quiet --no-headroom 2>/dev/null | grep -E "EX" | head -2; }
for m in start:"$START" warm:"$WARM" grpo-single-start:"$OUT/grpo-single-start/final" grpo-single-warm:"$OUT/grpo-single-warm/final" \
         grpo-multi-warm:"$OUT/grpo-multi-warm/final"; do
  name=${m%%:*}; model=${m#*:}
  common=(--model "$model" --data "$WORLD" --split dev --limit "$NDEV" --workers 1 --device cpu --batch-size 16)
  echo "== $name greedy"
  sqlcoach predict "${common[@]}" --single-pass --out "$OUT/$name.greedy.sql" 2>/dev/null | grep -E "^predicted" || true
  score "$OUT/$name.greedy.sql"
  echo "== $name agent"
  sqlcoach predict "${common[@]}" --agent --no-agent-instruction --max-turns 3 --max-new-tokens 64 --max-total-tokens 192 \
    --out "$OUT/$name.agent.sql" 2>/dev/null | grep -E "^agent:" || true
  score "$OUT/$name.agent.sql"
done
uptime
