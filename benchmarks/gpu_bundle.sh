#!/usr/bin/env bash
# Fill .whl/ with the wheels the lent GPU machine's image lacks (benchmarks/gpu/wheels.txt) and
# .gpu_data/spider with a Spider slice, check that the wheels' dependencies resolve against the
# image (benchmarks/gpu/image.txt), print the sizes, and fail when what one call carries would
# be over 64 MiB. Run here, on the CPU machine, before the GPU run (docs/gpu.md).
#
#   bash benchmarks/gpu_bundle.sh [--spider ../shared/data/spider]
#
# PYTHON (default .venv/bin/python, else python3) runs benchmarks/gpu_bundle.py; it needs pip and
# the packaging library, and network access to the package index.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-}
if [[ -z "$PY" ]]; then
  if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
exec "$PY" benchmarks/gpu_bundle.py build "$@"
