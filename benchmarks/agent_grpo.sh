#!/usr/bin/env bash
# Multi-turn GRPO against single-turn GRPO at the same step budget on the demo world, 1 seed (seed 0):
#   benchmarks/agent_grpo.sh START WORLD N_TRAIN N_DEV STEPS OUTDIR
# The one-seed form of benchmarks/agent_seeds.py (which says what each stage does): the start's rows,
# the warm start on N_TRAIN training questions' agent rows, STEPS steps of each GRPO arm, every model
# on the first N_DEV dev questions single-pass and as an agent, and the table. Stages whose output
# exists are kept. Run with OMP_NUM_THREADS=1 on a shared machine.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
PY=$(dirname "$(command -v sqlcoach)")/python
exec "$PY" "$HERE/benchmarks/agent_seeds.py" --start "$1" --world "$2" --train "$3" --dev "$4" --steps "$5" --out "$6" --seeds 0 --filter-prompts 160
