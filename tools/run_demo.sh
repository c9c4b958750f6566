#!/usr/bin/env bash
# The main job: set up the environment (idempotent), generate the synthetic shapes dataset, train a small
# model on the CPU with MMEngine's progress/ETA logging and evaluate it with CocoMetric (bbox + segm).
# Override with: CONFIG=... WORK_DIR=... bash tools/run_demo.sh [--cfg-options ...]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/tools/setup_env.sh"
venv="${MASKDINO_VENV:-$repo/.venv}"
py="$venv/bin/python"
config="${CONFIG:-configs/demo/mask2former_r18_shapes.py}"
work_dir="${WORK_DIR:-work_dirs/demo}"
cd "$repo"
"$py" tools/dataset_converters/make_shapes_dataset.py data/shapes --num-train 64 --num-val 16 \
  --size 128 128
"$py" tools/train.py "$config" --work-dir "$work_dir" "$@"
