#!/usr/bin/env bash
# The GPU check (issue 12): one prepared run on one H100/H200, <= 9 minutes, one JSON in $OUT (or bench/results).
# Runner and trainer throughput and peak memory of a random-weight Qwen2.5-VL-3B in bf16, the runner's batch
# halving on out-of-memory forced once, what --dtype auto picks, a Cycles GPU render of 8 clevr scenes,
# and the study's 3B at its published size through train/evaluate/probe (bench/real_size.py; --roster-models all).
#   bash bench/gpu_check.sh            # on the GPU machine, from the repository root
#   bash bench/gpu_check.sh --smoke    # on a CPU: every part at toy size (checks the script only)
# PYTHON names the interpreter that has the project and its train extra installed (default: python3).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-bench/results}/gpu_check.json"
[ "${1:-}" = "--smoke" ] && out="${OUT:-/tmp}/gpu_check_smoke.json"
PYTHON="${PYTHON:-python3}"
timeout 560 "$PYTHON" bench/gpu_check.py --out "$out" "$@"
echo "wrote $out"
