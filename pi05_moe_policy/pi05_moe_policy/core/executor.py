"""The executor's runtime, without ROS: chunk checks, ensembling, safety filter, enable/reset.

``executor_node`` translates messages into calls of :class:`ExecutorCore`, and sim-eval's closed
loop (``pi05_moe_bringup.sim_tools.closed_loop``) makes the same calls, so both apply one set of
rules:

- **Chunks** (:meth:`ExecutorCore.add_chunk`) are rejected with a :class:`ChunkRejectedError` (its
  ``reason`` keys a rate-limited warning) when they are stamped more than
  ``max_future_stamp_s`` ahead of the clock, when their period lies outside
  ``[dt / max_period_ratio, dt * max_period_ratio]`` for the control period ``dt``, when their
  rows span more than ``max_chunk_span_s``, when their joint names are not exactly the
  configured joints (another order is reordered by name), or when the ensembler refuses them
  (NaN/inf, empty). An accepted stamp is never later than its arrival, so no age is negative.
- **The watchdog** (:meth:`ExecutorCore.tick`): hold when no chunk covers now, or when every
  chunk that covers now is older than ``stale_timeout``; chunks that old never contribute. A
  chunk that arrived late but still covers now runs from its current row.
- **Enable and reset** never jump: the last command stays the rate limiter's reference and the
  holds that follow ramp to the measured position within the velocity limit. Enabling needs a
  joint state younger than ``joint_state_max_age``.

Joint order comes from ``joint_names``; with none configured (possible only for an output that
carries names) the first accepted chunk's names are adopted, and :meth:`reset` forgets them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pi05_moe_policy.core.ensembler import EnsemblerConfig, TemporalEnsembler
from pi05_moe_policy.core.safety import SafetyConfig, SafetyFilter, SafetyOutput
from pi05_moe_policy.params import check, param


@dataclass
class ExecutorCoreConfig(SafetyConfig, EnsemblerConfig):
    """The executor's rate, joint order and the bounds a chunk must keep to be executed."""

    control_hz: float = param(50.0, 'Control rate (Hz, on the node clock).')
    joint_names: list[str] = param(
        [], 'Joint order of the commands and of the limits. Required for output commands '
        '(Float64MultiArray carries no names); chunks in another order are reordered by name, '
        'chunks with other names are rejected. Empty (joint_trajectory only): taken from the '
        'first chunk.')
    max_future_stamp_s: float = param(
        0.05, 'Reject chunks stamped more than this many seconds ahead of the node clock '
        '(clock skew tolerance); an accepted stamp ahead of the clock counts as now.')
    max_period_ratio: float = param(
        5.0, 'A chunk\'s period must lie within [1/r, r] control periods, r = this.')
    max_chunk_span_s: float = param(
        10.0, 'Reject chunks whose rows span more than this (horizon x period, s).')
    joint_state_max_age: float = param(
        0.5, 'Refuse ~/enable (and do not ramp to the measured position on ~/reset) when the '
        'newest usable joint state arrived longer ago than this (s, node clock).')

    def __post_init__(self) -> None:
        SafetyConfig.__post_init__(self)
        EnsemblerConfig.__post_init__(self)
        check(self.control_hz > 0 and math.isfinite(self.control_hz), self, 'control_hz',
              'a rate > 0')
        check(len(set(self.joint_names)) == len(self.joint_names) and all(self.joint_names),
              self, 'joint_names', 'unique, non-empty names')
        check(math.isfinite(self.max_future_stamp_s) and self.max_future_stamp_s >= 0, self,
              'max_future_stamp_s', 'seconds >= 0')
        for name in ('max_chunk_span_s', 'joint_state_max_age'):
            check(math.isfinite(getattr(self, name)) and getattr(self, name) > 0, self, name,
                  'seconds > 0')
        check(math.isfinite(self.max_period_ratio) and self.max_period_ratio >= 1, self,
              'max_period_ratio', 'a finite ratio >= 1')


class ChunkRejectedError(ValueError):
    """A chunk the executor will not use; ``reason`` names the problem (a log key)."""

    def __init__(self, reason: str, text: str) -> None:
        super().__init__(text)
        self.reason = reason


class ExecutorCore:
    """Chunks and joint states in, one safe command per control tick out (all times in s)."""

    def __init__(self, cfg: ExecutorCoreConfig) -> None:
        self.cfg = cfg
        self.dt = 1.0 / cfg.control_hz
        self.ensembler = TemporalEnsembler(cfg)
        self.joint_names: list[str] | None = None
        self.safety: SafetyFilter | None = None
        self.newest_stamp: float | None = None  # observation time of the newest chunk kept
        self.measured: np.ndarray | None = None  # (D,) latest usable joint positions
        self.measured_at: float | None = None  # when they arrived
        self.chunks = {'received': 0, 'late': 0, 'rejected': 0}
        self.reset_at = -math.inf  # chunks observed before the last reset are not used
        if cfg.joint_names:
            self._set_joints(list(cfg.joint_names))

    def _set_joints(self, names: list[str]) -> None:
        self.safety = SafetyFilter(self.cfg, len(names))  # raises on limits of the wrong length
        self.joint_names = names

    # ------------------------------------------------------------------ inputs
    def add_chunk(self, stamp: float, period: float, names: list[str], actions: np.ndarray,
                  now: float) -> int:
        """Check and place a chunk (H, A) received at ``now``; return how many rows had passed
        (H: wholly late, not kept). Raises :class:`ChunkRejectedError`."""
        try:
            passed = self._add(stamp, period, list(names), actions, now)
        except ChunkRejectedError:
            self.chunks['rejected'] += 1
            raise
        self.chunks['received'] += 1
        if passed == len(actions):
            self.chunks['late'] += 1
        else:
            stamp = min(stamp, now)
            self.newest_stamp = stamp if self.newest_stamp is None else max(stamp,
                                                                            self.newest_stamp)
        return passed

    def _add(self, stamp: float, period: float, names: list[str], actions: np.ndarray,
             now: float) -> int:
        cfg, dt = self.cfg, self.dt
        if not math.isfinite(stamp) or stamp > now + cfg.max_future_stamp_s:
            raise ChunkRejectedError('future', f'stamped {stamp - now:+.3f} s from now, more than '
                                f'max_future_stamp_s {cfg.max_future_stamp_s:g} ahead')
        r = cfg.max_period_ratio
        if not (math.isfinite(period) and dt / r <= period <= dt * r):
            raise ChunkRejectedError('period', f'period {period!r} s outside [{dt / r:g}, '
                                f'{dt * r:g}] (control period {dt:g} s x/÷ max_period_ratio)')
        if len(actions) * period > cfg.max_chunk_span_s:
            raise ChunkRejectedError('span', f'{len(actions)} rows x {period:g} s span more than '
                                f'max_chunk_span_s {cfg.max_chunk_span_s:g}')
        if self.joint_names is None:
            try:
                self._set_joints(self._unique(names))
            except ValueError as exc:
                raise ChunkRejectedError('names', str(exc)) from None
        actions = self._reorder(names, np.asarray(actions, dtype=np.float64))  # (H, D)
        if stamp < self.reset_at:  # observed before the last reset: counted late, not kept
            return len(actions)
        try:
            return self.ensembler.add(min(stamp, now), period, actions, now)
        except ValueError as exc:
            raise ChunkRejectedError('malformed', str(exc)) from None

    @staticmethod
    def _unique(names: list[str]) -> list[str]:
        if not names or len(set(names)) != len(names) or not all(names):
            raise ValueError(f'joint names {names} are not unique non-empty names')
        return names

    def _reorder(self, names: list[str], actions: np.ndarray) -> np.ndarray:
        """The chunk's columns (H, A) in the executor's joint order (H, D)."""
        if names == self.joint_names:
            return actions
        if sorted(names) != sorted(self.joint_names) or len(set(names)) != len(names):
            unknown = sorted(set(names) - set(self.joint_names))
            missing = sorted(set(self.joint_names) - set(names))
            raise ChunkRejectedError('names', f'joint names {names} are not the executor\'s '
                                f'{self.joint_names} (unknown {unknown}, missing {missing})')
        index = [names.index(n) for n in self.joint_names]
        return actions[:, index]  # (H, D)

    def set_joint_state(self, positions: np.ndarray, now: float) -> None:
        """Usable measured positions (D,) in joint order; seed the first command from them."""
        self.measured, self.measured_at = np.asarray(positions, dtype=np.float64), now
        if self.safety is not None:
            self.safety.seed(self.measured)

    def fresh_measured(self, now: float) -> np.ndarray | None:
        """The measured positions if younger than ``joint_state_max_age``, else None."""
        if self.measured is None or not (
                0.0 <= now - self.measured_at <= self.cfg.joint_state_max_age):
            return None  # old, or from before the clock went back
        return self.measured

    def joint_state_problem(self, now: float) -> str | None:
        """Why the joint states cannot back an enable now (None: they can)."""
        if self.safety is None:
            return 'no joint order yet (no joint_names and no chunk)'
        if self.measured is None:
            return 'no usable joint state received yet'
        age = now - self.measured_at
        if not 0.0 <= age <= self.cfg.joint_state_max_age:
            return (f'the newest joint state is {age:.3f} s old (joint_state_max_age '
                    f'{self.cfg.joint_state_max_age:g} s)')
        return None

    # ------------------------------------------------------------------ services
    def enable(self, now: float) -> str | None:
        """Prepare actuation: the first command starts from the measured position, the one
        place the robot surely is (while disabled nothing reached the controller, so the
        previews are no reference: after the robot moved, or the simulator reset, ramping from
        the last preview would pull the arm back to it). Returns why it must be refused (None:
        go ahead)."""
        problem = self.joint_state_problem(now)
        if problem is None:
            self.safety.reset(self.measured)
        return problem

    def reset(self, now: float) -> None:
        """Drop every chunk (and joint names adopted from a chunk), and refuse chunks observed
        before ``now`` that are still in flight (they planned for the world before the reset);
        holds ramp to the measured position when it is fresh, else keep the last command."""
        self.ensembler.reset()
        self.newest_stamp = None
        self.reset_at = now
        if not self.cfg.joint_names:
            self.joint_names = self.safety = None
            self.measured = self.measured_at = None  # in the old order
            return
        measured = self.fresh_measured(now)
        if self.safety is not None and measured is not None:
            self.safety.hold_toward(measured)

    # ------------------------------------------------------------------ the control tick
    def tick(self, now: float) -> SafetyOutput | None:
        """The command for the tick at ``now`` (None before the joint order is known)."""
        if self.safety is None:
            return None
        proposal = self.ensembler.action_at(now, min_stamp=now - self.cfg.stale_timeout)
        newest = self.ensembler.newest_covering(now)
        if newest is None:  # nothing covers now: a hold, reported stale if the newest is
            newest = self.newest_stamp
        return self.safety.step(now, proposal, newest, self.dt)

    def chunk_age(self, now: float) -> float | None:
        """Age of the newest chunk kept (s, >= 0), None before any."""
        return None if self.newest_stamp is None else max(0.0, now - self.newest_stamp)
