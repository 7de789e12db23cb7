#!/usr/bin/env bash
# GPU figures for sqlcoach in ONE call of the lent GPU machine (docs/gpu.md has the call).
#
#   bash benchmarks/gpu_bundle.sh                      # first, here: .whl/ and .gpu_data/ (sizes printed)
#   bash benchmarks/gpu_check.sh                       # there: install from .whl/, run every part
#   GPU_CHECK_DRY_RUN=1 bash benchmarks/gpu_check.sh   # anywhere, no GPU, no install: lists, shapes,
#                                                      # configs, and every part in --plan mode (CI runs this)
#   GPU_CHECK_SMOKE=1 bash benchmarks/gpu_check.sh     # on a CPU: every part end to end with tiny models
#
# Steps, all bounded so that the whole check stays under GPU_CHECK_BUDGET seconds (default 450):
#   1. install the carried wheels with `pip install --no-index --no-deps --target $SITE .whl/*.whl`:
#      a folder of its own, put first on PYTHONPATH, so the machine's torch is never touched (no
#      torch wheel is carried; benchmarks/gpu/wheels.txt lists what is);
#   2. stop unless torch sees a CUDA GPU (the smoke run goes on on the CPU);
#   3. one process per part (benchmarks/gpu_check.py --part P), each under `timeout` at its cap
#      (gpu_check.py CAPS) or what is left of the budget: env, deps, sft, grpo, ppo, dpo, predict,
#      serve, fsdp, qlora, correct. A part whose package is missing prints `SKIP <part>: <why>`; one
#      that fails or runs out of time prints `SKIP <part>: FAILED ...` / `SKIP <part>: timed out ...`,
#      and the others still run;
#   4. every figure is one `part.name value unit` line; with OUT set they are also collected into
#      $OUT/gpu_check.json ({"figures", "units", "skipped"}) beside $OUT/gpu_check.log.
#
# Environment: PYTHON (python3), WHEELS (.whl), GPU_DATA (.gpu_data: spider/ and demo_model/),
# GPU_CHECK_SITE (/tmp/gpu_site), GPU_CHECK_WORK (/tmp/gpu_check), GPU_CHECK_BUDGET (450),
# GPU_CHECK_PARTS (all), GPU_CHECK_DRY_RUN, GPU_CHECK_SMOKE, GPU_CHECK_ARGS (extra gpu_check.py flags).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}
DATA=${GPU_DATA:-.gpu_data}
SITE=${GPU_CHECK_SITE:-/tmp/gpu_site}
WORK=${GPU_CHECK_WORK:-/tmp/gpu_check}
BUDGET=${GPU_CHECK_BUDGET:-450}
PARTS=${GPU_CHECK_PARTS:-env,deps,sft,grpo,ppo,dpo,predict,serve,fsdp,qlora,correct}
DRY=${GPU_CHECK_DRY_RUN:-0}
SMOKE=${GPU_CHECK_SMOKE:-0}
RESULTS="$WORK/results.jsonl"
START=$SECONDS
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PIP_DISABLE_PIP_VERSION_CHECK=1
export GPU_CHECK_WORK=$WORK SPIDER=${SPIDER:-$PWD/$DATA/spider}
read -r -a EXTRA <<< "${GPU_CHECK_ARGS:-}"
if [[ "$SMOKE" == 1 ]]; then
  EXTRA+=(--cpu-smoke --sft-steps 2 --rl-steps 1 --seq 384 --completion 8 --predict-questions 8
          --predict-batch 4 --serve-clients 2 --serve-requests 2 --batch 2)
fi

say() { echo "gpu_check: $*"; }
left() { echo $((BUDGET - (SECONDS - START))); }

mkdir -p "$WORK"
rm -f "$RESULTS"
if [[ -n "${OUT:-}" ]]; then
  mkdir -p "$OUT"
  exec > >(tee "$OUT/gpu_check.log") 2>&1
fi
IFS=, read -r -a parts <<< "$PARTS"

# 1. install ----------------------------------------------------------------------------------
if [[ "$DRY" == 1 ]]; then
  say "dry run: no install, no GPU; would run: $PY -m pip install --no-index --no-deps --target $SITE $WHEELS/*.whl"
  export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
  "$PY" benchmarks/gpu_check.py --dry-run --parts "$PARTS" ${EXTRA[@]+"${EXTRA[@]}"}
  if compgen -G "$WHEELS/*.whl" > /dev/null; then "$PY" benchmarks/gpu_bundle.py verify; fi
else
  if compgen -G "$WHEELS/*.whl" > /dev/null; then
    rm -rf "$SITE"
    t0=$SECONDS
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$WHEELS"/*.whl
    say "installed $(ls "$WHEELS"/*.whl | wc -l) wheels into $SITE in $((SECONDS - t0)) s"
    export PYTHONPATH="$SITE:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
  else
    say "no wheels in $WHEELS: using what is installed (run benchmarks/gpu_bundle.sh first for the lent machine)"
    export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
  fi
  # 2. CUDA -----------------------------------------------------------------------------------
  if [[ "$SMOKE" != 1 ]]; then
    if ! cuda=$("$PY" -c 'import torch; print(torch.cuda.is_available())' 2>/dev/null); then
      say "STOP: $PY cannot import torch (this script never installs torch)"
      exit 2
    fi
    if [[ "$cuda" != "True" ]]; then
      say "STOP: torch.cuda.is_available() is $cuda here: no CUDA GPU (GPU_CHECK_SMOKE=1 runs the parts on the CPU)"
      exit 2
    fi
  fi
fi

# 3. parts -------------------------------------------------------------------------------------
declare -A CAP
while read -r part cap; do CAP[$part]=$cap; done < <("$PY" -c '
import sys; sys.path.insert(0, "benchmarks")
from gpu_check import CAPS
for p, c in CAPS.items(): print(p, c)')
for part in "${parts[@]}"; do
  if [[ -z "${CAP[$part]:-}" ]]; then
    say "unknown part $part"; exit 2
  fi
  mode=()
  [[ "$DRY" == 1 ]] && mode=(--plan)
  cap=${CAP[$part]}
  (( SMOKE == 1 )) && cap=$(( cap * 4 ))  # tiny models, but 2 shared CPU cores and every import
  remaining=$(( $(left) - 10 ))  # 10 s kept for collecting the results
  if [[ "$DRY" != 1 ]] && (( remaining < 15 )); then
    echo "SKIP $part: out of time (GPU_CHECK_BUDGET=$BUDGET s spent)"
    echo "{\"part\": \"$part\", \"skip\": \"out of time\"}" >> "$RESULTS"
    continue
  fi
  limit=$(( remaining < cap ? remaining : cap ))
  [[ "$DRY" == 1 ]] && limit=60
  say "part $part (at most $limit s)"
  rc=0
  timeout -k 10 "$limit" "$PY" benchmarks/gpu_check.py --part "$part" --results "$RESULTS" --work "$WORK" --cap "$limit" \
    ${mode[@]+"${mode[@]}"} ${EXTRA[@]+"${EXTRA[@]}"} || rc=$?
  if (( rc == 124 || rc == 137 )); then
    echo "SKIP $part: timed out after $limit s"
    echo "{\"part\": \"$part\", \"skip\": \"timed out after $limit s\"}" >> "$RESULTS"
  elif (( rc != 0 )); then
    say "part $part exited with $rc (its figures so far are kept)"
  fi
done

# 4. results -----------------------------------------------------------------------------------
"$PY" benchmarks/gpu_check.py --collect "$RESULTS" --json "${OUT:-$WORK}/gpu_check.json"
say "done in $((SECONDS - START)) s"
