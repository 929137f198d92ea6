#!/usr/bin/env bash
# Run the whole suite in the workspace environment. Extra arguments go to pytest.
# Exits non-zero on any failure, and when no test ran (pytest's exit code 5).
#
# A test process wedged in C code (seen once in CI: a run that sat in an executor DDS test until
# the 90 min limit) is ended by test/conftest.py's faulthandler watchdog, which writes every
# thread's stack to $PI05_HANG_REPORT. Then this script prints that report and runs the suite
# once more: a second hang, or any failed test, fails the run.
set -eo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source env.sh
# Each pytest run gets its own DDS domain, so parallel runs on one machine never cross-talk.
# 1..101: above that, Fast DDS's ports fall into Linux's ephemeral port range (test/domains.py).
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( (RANDOM % 101) + 1 ))}"
export PI05_HANG_REPORT="${PI05_HANG_REPORT:-$(mktemp -t pi05_moe_hang.XXXXXX)}"
echo "[test] ROS_DOMAIN_ID=$ROS_DOMAIN_ID MUJOCO_GL=$MUJOCO_GL"
for attempt in 1 2; do
  export PI05_TEST_RUN="$$.$attempt"  # inherited by every process the run starts
  : > "$PI05_HANG_REPORT"
  status=0
  python -m pytest "${@:-test}" || status=$?
  if [[ $status -eq 0 || ! -s "$PI05_HANG_REPORT" ]]; then
    exit $status
  fi
  echo "[test] attempt $attempt: a test process hung in C code; its threads' stacks:" >&2
  cat "$PI05_HANG_REPORT" >&2
  # The nodes it started (own process groups) outlive it: end every process of this run.
  for environ in /proc/[0-9]*/environ; do
    if grep -qz "^PI05_TEST_RUN=$PI05_TEST_RUN\$" "$environ" 2>/dev/null; then
      pid="${environ#/proc/}"; kill -9 "${pid%/environ}" 2>/dev/null || true
    fi
  done
  [[ $attempt -eq 1 ]] && echo "[test] running the suite once more" >&2
done
exit 1
