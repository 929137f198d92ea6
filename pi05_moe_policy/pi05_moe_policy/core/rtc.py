"""Real-time chunking on the robot side, without ROS: the inference delay and the committed
prefix a new chunk must agree with (``Policy.infer(obs, prefix=...)``; the model side is
``pi05_moe_policy.model.rtc``). Pure: numpy only; every time is on the node clock (s).

- :class:`DelayEstimator`: the delay d in control periods is a high percentile of the last N
  measured latencies (observation stamp -> chunk published), rounded up: a chunk lands after
  about d rows, and guessing d too small breaks the agreement exactly where it matters.
- :class:`CommittedChunk`: the newest chunk the policy published. With the executor in ``rtc``
  (or ``latest``) mode the executor runs the newest chunk from its current row, so the rows of
  that chunk from the next observation's time on are what it will execute while the policy
  thinks: the committed prefix. The policy keeps its own last chunk instead of subscribing to
  an executor topic: it is the same information when the executor runs the newest chunk, it
  needs no new message or topic, and it cannot lag or go missing over DDS. Both stamps are
  observation (header) stamps, so it holds under ``use_sim_time`` and bag replay.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from pi05_moe_policy.core.safety import HOLD_NO_CHUNK, NO_REFERENCE, OK
from pi05_moe_policy.params import check, param


@dataclass
class RtcConfig:
    """Real-time chunking in policy_node (the checkpoint's ModelConfig.rtc_mode picks how)."""

    rtc: bool = param(False, 'Condition each chunk on the rows of the previous chunk the '
                      'executor will still run while the policy thinks (real-time chunking; run '
                      'the executor with mode rtc). The checkpoint decides how: test-time '
                      'guidance, or clean prefix tokens when trained with --rtc-max-delay.')
    rtc_latency_window: int = param(20, 'The delay estimate uses the last this many latencies.')
    rtc_latency_percentile: float = param(90.0, 'The delay is this percentile of those '
                                          'latencies, in control periods, rounded up.')
    rtc_max_prefix_age_s: float = param(2.0, 'A previous chunk whose observation is older than '
                                        'this (s) is not used as a prefix.')
    rtc_executor_status: str = param(
        'executor_node: control', 'The name of the executor\'s DiagnosticStatus (on '
        'diagnostics_topic). While it reports actuation disabled, or the watchdog holding the '
        'arm, nothing of the last chunk is being executed, so chunks get no prefix. Empty: do '
        'not watch, always assume the executor runs the newest chunk.')

    def __post_init__(self) -> None:
        check(self.rtc_latency_window >= 1, self, 'rtc_latency_window', 'an int >= 1')
        check(0.0 <= self.rtc_latency_percentile <= 100.0, self, 'rtc_latency_percentile',
              'a percentile in [0, 100]')
        check(math.isfinite(self.rtc_max_prefix_age_s) and self.rtc_max_prefix_age_s > 0, self,
              'rtc_max_prefix_age_s', 'seconds > 0')


class DelayEstimator:
    """Recent latencies (s) -> the inference delay in whole control periods."""

    def __init__(self, window: int = 20, percentile: float = 90.0) -> None:
        if window < 1 or not 0.0 <= percentile <= 100.0:
            raise ValueError(f'window must be >= 1 and percentile in [0, 100], got {window!r}, '
                             f'{percentile!r}')
        self.percentile = float(percentile)
        self._latencies: deque[float] = deque(maxlen=int(window))

    def add(self, latency_s: float) -> None:
        """One measured latency (s); negative or non-finite ones (clock jumps) are ignored."""
        if math.isfinite(latency_s) and latency_s >= 0:
            self._latencies.append(float(latency_s))

    def latency_s(self) -> float | None:
        """The percentile latency (s), None before any measurement."""
        if not self._latencies:
            return None
        return float(np.percentile(np.asarray(self._latencies), self.percentile))

    def delay_steps(self, period_s: float, horizon: int | None = None) -> int:
        """ceil(percentile latency / period), at most ``horizon`` (0 before any latency)."""
        lat = self.latency_s()
        if lat is None:
            return 0
        d = math.ceil(lat / period_s - 1e-9)
        return d if horizon is None else min(d, int(horizon))


class CommittedChunk:
    """The last chunk published; answers "which of its rows run from time ``t`` on"."""

    def __init__(self, max_age_s: float = 2.0) -> None:
        self.max_age_s = float(max_age_s)
        self.stamp: float | None = None
        self.period = 0.0
        self.actions: np.ndarray | None = None  # (H, A)

    def reset(self) -> None:
        self.stamp = self.actions = None

    def remember(self, stamp: float, period: float, actions: np.ndarray) -> None:
        """The chunk just published: observation stamp (s), row period (s), actions (H, A)."""
        self.stamp, self.period = float(stamp), float(period)
        self.actions = np.array(actions, dtype=np.float32)  # a copy: the caller keeps its own

    def prefix_at(self, stamp: float) -> tuple[np.ndarray, float] | None:
        """For a new observation at ``stamp``: (the committed rows (n, A), the start of the
        first one relative to ``stamp`` (s, in (-period, 0])), or None when there is no chunk,
        it is older than ``max_age_s``, the clock went back, or all its rows have passed."""
        if self.actions is None or not 0.0 <= stamp - self.stamp <= self.max_age_s:
            return None
        first = math.floor((stamp - self.stamp) / self.period + 1e-9)  # the row running then
        if first >= len(self.actions):
            return None
        start = self.stamp + first * self.period - stamp  # (-period, 0]
        return self.actions[first:].copy(), min(0.0, start)


# executor_node statuses (core.safety) in which it runs the newest chunk it has, or will run
# the next one it gets (none yet since its start or a reset). The others (hold_stale, hold_nan)
# hold the arm: the rows of the last chunk are not being executed.
RUNS_CHUNKS = (OK, HOLD_NO_CHUNK, NO_REFERENCE)


def executor_executes(values: dict[str, str]) -> bool | None:
    """From the key/values of executor_node's DiagnosticStatus: does it run the chunks it is
    sent (actuation enabled, a status of ``RUNS_CHUNKS``)? None when they say neither (another
    node's status)."""
    if 'enabled' not in values or 'status' not in values:
        return None
    return values['enabled'] == 'True' and values['status'] in RUNS_CHUNKS


class RtcPlanner:
    """policy_node's RTC state: the delay estimate and the last chunk, as ``Policy.infer``
    arguments. Times are node-clock seconds (header stamps), never wall time.

    ``executing`` (True until told otherwise, :meth:`executor_state`) says whether the executor
    runs the newest chunk. While it does not (actuation disabled, the watchdog holding), the
    committed rows are not what the arm does, so no prefix is given: an episode's first chunk
    after the demo's disable-reset-enable is never conditioned on the previous episode's rows."""

    def __init__(self, cfg: RtcConfig, period_s: float, horizon: int) -> None:
        self.period, self.horizon = float(period_s), int(horizon)
        self.delay = DelayEstimator(cfg.rtc_latency_window, cfg.rtc_latency_percentile)
        self.committed = CommittedChunk(cfg.rtc_max_prefix_age_s)
        self.executing = True

    def executor_state(self, executing: bool | None) -> None:
        """The executor's latest report (:func:`executor_executes`; None changes nothing)."""
        if executing is not None:
            self.executing = bool(executing)

    def infer_kwargs(self, stamp: float) -> dict:
        """``prefix``, ``prefix_start_s``, ``delay_steps`` for an observation at ``stamp``
        ({} when there is nothing committed, or the executor does not run it)."""
        if not self.executing:
            return {}
        got = self.committed.prefix_at(stamp)
        if got is None:
            return {}
        rows, start = got
        return {'prefix': rows, 'prefix_start_s': start,
                'delay_steps': self.delay.delay_steps(self.period, self.horizon)}

    def published(self, stamp: float, now: float, actions: np.ndarray) -> None:
        """A chunk for the observation at ``stamp`` went out at ``now``: its latency counts
        toward the delay, and it is what the executor runs next."""
        self.delay.add(now - stamp)
        self.committed.remember(stamp, self.period, actions)
