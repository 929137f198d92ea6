#!/usr/bin/env bash
# Reproduce the shipped simulator checkpoint (pi05_moe_policy/checkpoints/sim_small) from scratch:
# scripted-expert demonstrations -> dataset -> training -> fp16 export -> closed-loop evaluation.
# Usage: bash scripts/train_sim_checkpoint.sh [WORK_DIR]
# Exactly what made the shipped one. On the 2-core dev machine: 260 demos in ~5 min (10 GB of
# bags), conversion ~3 min, training ~1.75 steps/s at batch 8 (6500 steps, ~65 min), evaluation
# ~5 min. Delta actions (joints relative to the state, gripper absolute) are train's default.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
WORK="${1:-runs/sim_small}"
make setup
source env.sh
pi05-moe sim-demos --out "$WORK/bags" --episodes 260 --no-depth           # 130 per prompt family
pi05-moe convert "$WORK"/bags/* --out "$WORK/dataset" --only-success
pi05-moe check-labels "$WORK/dataset"
TRAIN=(--dataset "$WORK/dataset" --preset small --out "$WORK/train" --batch-size 8
       --warmup-steps 200 --routing-warmup-steps 300 --routing-ramp-steps 500
       --save-every 500 --keep-last 4 --num-workers 1)
pi05-moe train "${TRAIN[@]}" --max-steps 6500
pi05-moe export "$WORK/train" --out pi05_moe_policy/checkpoints/sim_small --weights-dtype float16 \
  --noise-scale 0
pi05-moe sim-eval --checkpoint pi05_moe_policy/checkpoints/sim_small --episodes 20 \
  --num-threads 1 --out "$WORK/sim_eval.json"
