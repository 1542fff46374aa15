#!/usr/bin/env bash
# benchmarks/gpu_check.py with its log beside the archive ($OUT on the device tool, else gpu/).
set -o pipefail; cd "$(dirname "$0")/.." && mkdir -p "${OUT:-gpu}" || exit
PYTHONUNBUFFERED=1 python3 -m benchmarks.gpu_check "$@" 2>&1 | tee "${OUT:-gpu}/gpu_check.log"
