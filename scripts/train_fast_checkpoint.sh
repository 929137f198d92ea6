#!/usr/bin/env bash
# Issue #15: train, from scratch, a faster simulator checkpoint with training-time real-time
# chunking, then export and measure it against the shipped one (sim_small).
#
# What changes against scripts/train_sim_checkpoint.sh (the shipped recipe, same schedule):
#   image_size 224 -> 168   36 image tokens a camera instead of 64 (vision and prefix ~0.56x)
#   expert_mlp_dim 768 -> 512   the action expert's MLP, which runs once per Euler step
#   --rtc-max-delay 25      the first d ~ U{0..25} rows given clean (the committed prefix at
#                           inference) and kept out of the loss, from the first step on
#   --rtc-zero-delay-prob 0.5   and half the chunks without a prefix (the first chunk of an
#                           episode, ensembling executors)
# Measured with random weights of this shape (bench/bench_fast_inference.py, 1 idle thread, this
# 2-core AVX2 EPYC, load 0.5): 3 Euler steps + torch_compile 55.9 ms a chunk, against 70.4 ms for
# image_size 168 alone; the shipped shape needs ~100 ms.
#
# Usage: bash scripts/train_fast_checkpoint.sh [WORK_DIR]
#   WORK_DIR  runs/sim_small by default; its dataset/ (scripts/train_sim_checkpoint.sh's) is
#             reused when present.
#   Re-running continues a stopped run where it stopped (each leg --resume's from <run>/latest;
#   checkpoints every 500 steps). Ctrl-C, or `kill -INT`/`-TERM` of the `pi05-moe train`
#   process, ends the step in flight, writes its checkpoint and stops the script (exit 130).
#   RUN (env, default train_fast) the run's folder in WORK_DIR.
#   SHAPE (env, default fast) 'fast': the shape above; 'shipped': the shipped checkpoint's shape
#         (image_size 224, expert_mlp_dim 768), so training-time RTC alone is what changes,
#         evaluated at the shipped 5 Euler steps. Started 2026-12-08 as
#         SHAPE=shipped RUN=train_rtc_shipped nohup bash scripts/train_fast_checkpoint.sh \
#           > runs/sim_small/train_rtc_shipped.log 2>&1 &
# In the background, as run on 2026-12-07 (1 h 52 min on the 2-core dev machine, nothing beside
# it; its result and why it was not shipped: README, real time):
#   nohup bash scripts/train_fast_checkpoint.sh > runs/sim_small/train_fast.log 2>&1 &
set -euo pipefail
# The whole body is one function, parsed before it runs: editing this file while a run is
# under way cannot change what that run does next.
main() {
  cd "$(dirname "${BASH_SOURCE[0]}")/.."
  WORK="${1:-runs/sim_small}"
  OUT="$WORK/${RUN:-train_fast}"
  case "${SHAPE:-fast}" in
    fast) SHAPE_OVERRIDES=(image_size=168 expert_mlp_dim=512); EULER=3 ;;
    shipped) SHAPE_OVERRIDES=(); EULER=5 ;;
    *) echo "SHAPE must be 'fast' or 'shipped', got '${SHAPE}'" >&2; return 2 ;;
  esac
  make setup
  source env.sh
  if [ ! -d "$WORK/dataset" ]; then  # the shipped checkpoint's demonstrations
    pi05-moe sim-demos --out "$WORK/bags" --episodes 240 --layout slots --no-depth
    pi05-moe convert "$WORK"/bags/* --out "$WORK/dataset" --only-success
  fi
  TRAIN=(pi05-moe train --dataset "$WORK/dataset" --preset small --out "$OUT" --batch-size 8
    --warmup-steps 200 --routing-warmup-steps 300 --routing-ramp-steps 500 --save-every 500
    --keep-last 0 --num-workers 1 --oversample-start-s 0.3 --oversample-factor 8
    --rtc-max-delay 25 --rtc-zero-delay-prob 0.5
    --model-overrides 'camera_router_input_type="prompt"' state_in_prompt=false
    "${SHAPE_OVERRIDES[@]}")
  step() {  # the step of <run>/latest, 0 when there is none
    local target
    target=$(readlink "$OUT/latest" 2>/dev/null || true)
    echo "${target#checkpoint-}" | grep -E '^[0-9]+$' || echo 0
  }
  leg() {  # leg MAX_STEPS [FLAGS...]: train to MAX_STEPS, resuming when a checkpoint exists
    local max=$1; shift
    if [ "$(step)" -ge "$max" ]; then return; fi
    if [ -e "$OUT/latest" ]; then "${TRAIN[@]}" --max-steps "$max" --resume "$@"
    else "${TRAIN[@]}" --max-steps "$max" "$@"; fi
  }
  leg 8500                # warm-up + cosine at lr 3e-4
  leg 18000 --lr 2e-4     # the warm restart, a second cosine at lr 2e-4
  pi05-moe export "$OUT" --out "$OUT/export" --weights-dtype float16 --noise-scale 0
  # The issue's 0.4 s goal, on the tuning seeds 3000-3019: RTC mode (committed rows fed clean,
  # executor on the newest chunk) and sim.yaml's ensembling executor without RTC.
  pi05-moe sim-eval --checkpoint "$OUT/export" --latency-s 0.4 --episodes 20 --seed 3000 \
    --num-threads 1 --set policy_node.rtc=true --set executor_node.mode=rtc \
    --set policy_node.num_steps=$EULER --out "$OUT/sim_eval_0.4_rtc.json"
  pi05-moe sim-eval --checkpoint "$OUT/export" --latency-s 0.4 --episodes 20 --seed 3000 \
    --num-threads 1 --set policy_node.num_steps=$EULER --out "$OUT/sim_eval_0.4_ensemble.json"
}
main "$@"; exit $?
