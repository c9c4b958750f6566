#!/usr/bin/env bash
# The main job: set up the environment (idempotent), generate the synthetic shapes dataset, train a
# small Mask DINO on the CPU (MMEngine progress + ETA), evaluate it with CocoMetric (bbox + segm), and
# draw predictions with mmdet's DetInferencer / DetLocalVisualizer.
# Override with: CONFIG=... WORK_DIR=... bash tools/run_demo.sh [--cfg-options ...]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/tools/setup_env.sh"
venv="${MASKDINO_VENV:-$repo/.venv}"
py="$venv/bin/python"
config="${CONFIG:-configs/demo/maskdino_r18_shapes.py}"
work_dir="${WORK_DIR:-work_dirs/demo}"
cd "$repo"
export PYTHONWARNINGS=ignore
"$py" tools/dataset_converters/make_shapes_dataset.py data/shapes --num-train 64 --num-val 16 \
  --size 128 128
"$py" tools/train.py "$config" --work-dir "$work_dir" "$@"
ckpt="$(cat "$work_dir/last_checkpoint")"
"$py" tools/demo/draw_predictions.py "$config" "$ckpt" data/shapes/val/000065.jpg \
  data/shapes/val/000066.jpg --out-dir "$work_dir/vis"
echo "[run_demo] checkpoint: $ckpt; drawings (PNG): $work_dir/vis/"
