#!/usr/bin/env bash
# Reproduce the shipped simulator checkpoint (pi05_moe_policy/checkpoints/sim_small) from scratch:
# scripted-expert demonstrations -> dataset -> training -> fp16 export -> closed-loop evaluation.
# Usage: bash scripts/train_sim_checkpoint.sh [WORK_DIR] [MAX_STEPS]
# On the 2-core dev machine the whole run takes about an hour (training ~1.6 steps/s at batch 8).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
WORK="${1:-runs/sim_small}"
STEPS="${2:-3000}"
make setup
source env.sh
pi05-moe sim-demos --out "$WORK/bags" --episodes 60 --no-depth            # 30 per prompt family
pi05-moe convert "$WORK"/bags/* --out "$WORK/dataset" --only-success
pi05-moe check-labels "$WORK/dataset"
pi05-moe train --dataset "$WORK/dataset" --preset small --out "$WORK/train" \
  --max-steps "$STEPS" --batch-size 8 --warmup-steps 200 \
  --routing-warmup-steps 300 --routing-ramp-steps 500 --save-every 250 --num-workers 1
pi05-moe export "$WORK/train" --out pi05_moe_policy/checkpoints/sim_small --weights-dtype float16
pi05-moe sim-eval --checkpoint pi05_moe_policy/checkpoints/sim_small --episodes 20 \
  --num-threads 1 --out "$WORK/sim_eval.json"
