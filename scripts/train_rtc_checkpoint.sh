#!/usr/bin/env bash
# Issue #15: fine-tune the shipped PI0.5 checkpoint with training-time real-time chunking, then
# measure it in closed loop at 0.4 s of latency (the issue's >= 80 % a family goal).
#
# Why: test-time RTC guidance cannot steer this checkpoint. Its denoiser barely reads x_t (a
# whole N(0, 1) initial noise moves the chunk by only 0.05-0.10 rad, against the 0 noise it
# ships with), so d a_hat / d x_t, through which guidance acts, is nearly zero. Training-time
# RTC instead gives the committed rows to the model as clean tokens (flow time 0) that it
# learns to continue, and keeps them out of the loss.
#
# Usage: bash scripts/train_rtc_checkpoint.sh [WORK_DIR]
#   WORK_DIR  runs/sim_small by default; its dataset/ (scripts/train_sim_checkpoint.sh's) is
#             reused when present. Re-running continues a stopped run (--resume).
#   MAX_STEPS (env, default 4000) fine-tuning steps at batch 8 and lr 1e-4.
#   ZERO_DELAY (env, default 0.5) --rtc-zero-delay-prob: the share of samples without a prefix.
#   RUN (env, default train_rtc_mix) the run's folder in WORK_DIR.
# Runs so far: ZERO_DELAY=0 RUN=train_rtc (4000 steps, below), and the defaults with
# MAX_STEPS=2500 (34 min; 50 % in RTC mode, 60 % ensembling at 0.4 s): neither beat the shipped
# checkpoint (README: training-time RTC).
# RTC_MAX_DELAY 25 rows = 0.5 s at 50 Hz: above the 0.4 s goal's 20 rows of delay.
# Run once (2026-12-07, 2-core dev machine): 4000 steps in 1 h 4 min; at 0.4 s it scored 68 %
# in RTC mode against the shipped checkpoint's 75 % (ensembling), seeds 3000-3019: not shipped
# (README: training-time RTC). Delay 0 (no prefix) is drawn for 1 sample in 26, and without a
# prefix the fine-tune fell to 50 %.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
WORK="${1:-runs/sim_small}"
MAX_STEPS="${MAX_STEPS:-4000}"
make setup
source env.sh
if [ ! -d "$WORK/dataset" ]; then  # the shipped checkpoint's demonstrations
  pi05-moe sim-demos --out "$WORK/bags" --episodes 240 --layout slots --no-depth
  pi05-moe convert "$WORK"/bags/* --out "$WORK/dataset" --only-success
fi
ZERO_DELAY="${ZERO_DELAY:-0.5}"
OUT="$WORK/${RUN:-train_rtc_mix}"
# The router is trained already: its loss at full weight from the start.
TRAIN=(pi05-moe train --dataset "$WORK/dataset" --init pi05_moe_policy/checkpoints/sim_small
  --out "$OUT" --batch-size 8 --lr 1e-4 --warmup-steps 100 --routing-warmup-steps 0
  --routing-ramp-steps 0 --save-every 250 --keep-last 0 --num-workers 1
  --oversample-start-s 0.3 --oversample-factor 8 --rtc-max-delay 25
  --rtc-zero-delay-prob "$ZERO_DELAY")
if [ -e "$OUT/latest" ]; then "${TRAIN[@]}" --max-steps "$MAX_STEPS" --resume
else "${TRAIN[@]}" --max-steps "$MAX_STEPS"; fi
pi05-moe export "$OUT" --out "$OUT/export" --weights-dtype float16 --noise-scale 0
# 0.4 s: RTC on (the committed rows fed clean) with the executor on the newest chunk, as the
# committed rows assume; then sim.yaml's ensembling executor without RTC, for comparison.
pi05-moe sim-eval --checkpoint "$OUT/export" --latency-s 0.4 --episodes 20 --seed 3000 \
  --num-threads 1 --set policy_node.rtc=true --set executor_node.mode=rtc \
  --out "$OUT/sim_eval_0.4_rtc.json"
pi05-moe sim-eval --checkpoint "$OUT/export" --latency-s 0.4 --episodes 20 --seed 3000 \
  --num-threads 1 --out "$OUT/sim_eval_0.4_ensemble.json"
