#!/usr/bin/env bash
# The API baseline end to end, one command: a real `sqlcoach serve` process -> `predict --backend
# openai` on Spider dev -> `evaluate` (EX/EM + EXPLAIN audit, HTML page) -> `judge` (the served
# model as the judge) -> `compare` with a `method: api` row and the cost table.
#
#   MODEL=runs/smollm2-spider/sft/final DATA=../shared/data/spider N=50 PORT=8765 OUT=runs/api-e2e \
#       bash benchmarks/api_end_to_end.sh
#
# MODEL: anything `sqlcoach serve` loads (a model or adapter folder; a tiny model is fastest);
# DATA: a Spider-layout folder (dev.json, dev_gold.sql, tables.json, database/); N: questions.
# On 2 busy CPU cores with SmolLM2-135M, N=50 takes ~7 min to predict and ~6 min to judge.
# The serve process is stopped when the script ends (also on error or Ctrl-C).
set -euo pipefail
MODEL=${MODEL:?set MODEL to a model folder sqlcoach serve can load}
DATA=${DATA:-../shared/data/spider}
N=${N:-50}
PORT=${PORT:-8765}
OUT=${OUT:-runs/api-e2e}
PY=${PY:-python}
SQ="$PY -m sqlcoach.cli"
URL="http://127.0.0.1:$PORT/v1"
mkdir -p "$OUT"

$SQ serve "$MODEL" --served-model-name served --port "$PORT" >"$OUT/serve.log" 2>&1 &
SERVE_PID=$!
trap 'kill $SERVE_PID 2>/dev/null || true; wait $SERVE_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 180); do
  if $PY -c "import urllib.request,sys; urllib.request.urlopen('$URL/models', timeout=2)" 2>/dev/null; then break; fi
  kill -0 $SERVE_PID 2>/dev/null || { echo "serve exited:"; tail -20 "$OUT/serve.log"; exit 1; }
  sleep 1
done
echo "+ serving $MODEL at $URL"

set -x
$SQ predict --backend openai --base-url "$URL" --model served --data "$DATA" --split dev --limit "$N" \
    --max-new-tokens 96 --concurrency 4 --request-timeout 120 --out "$OUT/pred.sql" --json "$OUT/predict.json"
head -n "$N" "$DATA/dev_gold.sql" >"$OUT/gold.sql"
$SQ evaluate --gold "$OUT/gold.sql" --pred "$OUT/pred.sql" --db "$DATA/database" --table "$DATA/tables.json" \
    --etype all --per-example "$OUT/eval.rows.jsonl" --out "$OUT/eval.summary.json" --html "$OUT/eval.html"
$SQ judge --pred "$OUT/pred.sql" --gold "$OUT/gold.sql" --questions "$DATA/dev.json" --db "$DATA/database" \
    --table "$DATA/tables.json" --url "$URL" --model served --limit "$N" --max-tokens 160 --concurrency 4 \
    --out "$OUT/judge"
cat >"$OUT/compare.yaml" <<YAML
# sqlcoach compare --config $OUT/compare.yaml --out $OUT/compare
start: "$MODEL"
world: "$DATA"
eval_start: false
eval_limit: $N
max_new_tokens: 96
schema_sample_values: 0
prices:
  hardware: "NVIDIA A40 at \$0.475/h (seed 004's example)"
  train_per_hour: 0.475
  predict_per_hour: 0.475
  api:
    served: {input_per_m: 0.50, output_per_m: 1.50}
methods:
  - {name: served, method: api, base_url: "$URL", model: served, concurrency: 4, request_timeout: 120}
YAML
$SQ compare --config "$OUT/compare.yaml" --out "$OUT/compare"
cat "$OUT/compare/report.md"
