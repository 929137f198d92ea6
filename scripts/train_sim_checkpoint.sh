#!/usr/bin/env bash
# Reproduce the shipped simulator checkpoint (pi05_moe_policy/checkpoints/sim_small) from scratch:
# scripted-expert demonstrations -> dataset -> training -> fp16 export -> closed-loop evaluation.
# Usage: bash scripts/train_sim_checkpoint.sh [WORK_DIR]
# It trains on the 'slots' scene layout (sim.yaml's): two cube places 20 cm apart, +-2 cm.
# The shipped run took this path: steps 0-2000 without oversampling and a 7500-step cosine,
# resumed with oversampling, and at step 5500 resumed with --max-steps 8500. This script runs
# the same flags in one go (same data, same model, oversampling from step 0).
# On the 2-core dev machine: demos 5 min (240 episodes, 9.5 GB of bags), conversion 3 min,
# training ~1.65 steps/s at batch 8 (8500 steps: ~1 h 30 min), evaluation ~5 min.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
WORK="${1:-runs/sim_small}"
make setup
source env.sh
pi05-moe sim-demos --out "$WORK/bags" --episodes 240 --layout slots --no-depth  # 120 a family
pi05-moe convert "$WORK"/bags/* --out "$WORK/dataset" --only-success
pi05-moe check-labels "$WORK/dataset"
pi05-moe train --dataset "$WORK/dataset" --preset small --out "$WORK/train" --batch-size 8 \
  --warmup-steps 200 --routing-warmup-steps 300 --routing-ramp-steps 500 --save-every 500 \
  --keep-last 0 --num-workers 1 --max-steps 8500 --oversample-start-s 0.3 --oversample-factor 8 \
  --model-overrides 'camera_router_input_type="prompt"' state_in_prompt=false
pi05-moe export "$WORK/train" --out pi05_moe_policy/checkpoints/sim_small --weights-dtype float16 \
  --noise-scale 0
pi05-moe sim-eval --checkpoint pi05_moe_policy/checkpoints/sim_small --episodes 20 \
  --layout slots --num-threads 1 --out "$WORK/sim_eval.json"
