#!/usr/bin/env bash
# Reproduce the shipped simulator checkpoint (pi05_moe_policy/checkpoints/sim_small) from scratch:
# scripted-expert demonstrations -> dataset -> training -> fp16 export -> closed-loop evaluation.
# Usage: bash scripts/train_sim_checkpoint.sh [WORK_DIR]
# Exactly what made the shipped one: 3000 steps, then --resume to 5000 (the cosine restarts from
# the resumed step). On the 2-core dev machine training ran at ~1.6 steps/s at batch 8: 36 min for
# the first 3000 steps, ~22 min for the rest; demos 2 min, conversion 2 min, evaluation ~10 min.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
WORK="${1:-runs/sim_small}"
make setup
source env.sh
pi05-moe sim-demos --out "$WORK/bags" --episodes 60 --no-depth            # 30 per prompt family
pi05-moe convert "$WORK"/bags/* --out "$WORK/dataset" --only-success
pi05-moe check-labels "$WORK/dataset"
TRAIN=(--dataset "$WORK/dataset" --preset small --out "$WORK/train" --batch-size 8
       --warmup-steps 200 --routing-warmup-steps 300 --routing-ramp-steps 500
       --save-every 250 --num-workers 1 --no-delta-actions)  # it predates delta actions
pi05-moe train "${TRAIN[@]}" --max-steps 3000
pi05-moe train "${TRAIN[@]}" --max-steps 5000 --resume
pi05-moe export "$WORK/train" --out pi05_moe_policy/checkpoints/sim_small --weights-dtype float16
pi05-moe sim-eval --checkpoint pi05_moe_policy/checkpoints/sim_small --episodes 20 \
  --num-threads 1 --out "$WORK/sim_eval.json"
