#!/usr/bin/env bash
# Run the whole suite in the workspace environment. Extra arguments go to pytest.
# Exits non-zero on any failure, and when no test ran (pytest's exit code 5).
set -eo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source env.sh
# Each pytest run gets its own DDS domain, so parallel runs on one machine never cross-talk.
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( (RANDOM % 200) + 1 ))}"
echo "[test] ROS_DOMAIN_ID=$ROS_DOMAIN_ID MUJOCO_GL=$MUJOCO_GL"
python -m pytest "${@:-test}"
