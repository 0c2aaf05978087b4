#!/usr/bin/env bash
# The GPU check of issue 14 (benchmarks/gpu_check.py says what it runs): at most 8 minutes
# on one GPU, a short report in $OUT/gpu_report.md.
#
# With the device tool (it runs a command in the repository root of a copy of the working
# tree, outputs under $OUT):
#   here, once:   benchmarks/gpu_prepare.sh        # VGG16 conv weights and photos -> .gpu/
#   run:          command "bash benchmarks/gpu_check.sh", carry [".gpu"], timeout_s 600
# Elsewhere:      OUT=/tmp/gpu bash benchmarks/gpu_check.sh
# A dry run on the CPU (the same steps): GPU_CHECK_DEVICE=cpu bash benchmarks/gpu_check.sh
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && ! command -v nvidia-smi >/dev/null; then
    PY=.venv/bin/python  # this repository's environment, on a machine without a GPU
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
exec "$PY" benchmarks/gpu_check.py
