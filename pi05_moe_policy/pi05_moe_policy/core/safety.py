"""The last line before the robot: limits, rate limits and a stale-chunk watchdog. Pure: numpy.

Every control tick, :meth:`SafetyFilter.step` turns the ensembler's proposal into the command
actually sent:

1. hold the last safe command when the newest chunk that covers now is older than
   ``stale_timeout`` (the policy stopped: cameras gone, inference stuck), when no chunk covers
   now, or when the proposal holds a NaN or an infinity;
2. otherwise clamp to ``[lower_limits, upper_limits]``;
3. then move from the last command by at most ``max_velocity * dt`` per joint.

The first command needs a reference to rate-limit from: :meth:`SafetyFilter.seed` it with the
measured joint positions. Until then ``step`` returns no command at all. Since the last command
and the clamped target both lie within the limits, so does every step between them.

Once a command exists it stays the reference: :meth:`SafetyFilter.hold_toward` (the executor's
``~/enable`` and ``~/reset``) does not jump to a new position, it makes the holds that follow
ramp to it within the velocity limit, until a proposal takes over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pi05_moe_policy.params import check, param

# Statuses of one tick; the hold_* ones repeat the last command.
OK = 'ok'
HOLD_STALE = 'hold_stale'
HOLD_NO_CHUNK = 'hold_no_chunk'
HOLD_NAN = 'hold_nan'
NO_REFERENCE = 'no_reference'  # nothing to hold yet: no command, no joint state


@dataclass
class SafetyConfig:
    """Joint limits, velocity limits and the stale-chunk watchdog (robot units: rad, m)."""

    lower_limits: list[float] = param(
        [-3.14159], 'Lowest command per joint (rad or m), in joint_names order; one value '
        'applies to every joint.')
    upper_limits: list[float] = param(
        [3.14159], 'Highest command per joint (rad or m), in joint_names order; one value '
        'applies to every joint.')
    max_velocity: list[float] = param(
        [1.5], 'Largest command change per second per joint (rad/s or m/s); one value applies '
        'to every joint.')
    stale_timeout: float = param(
        0.5, 'Absolute age limit (s, on the node clock): a chunk whose observation is older '
        'than this is never commanded from; when every chunk covering now is that old, hold.')

    def __post_init__(self) -> None:
        for name in ('lower_limits', 'upper_limits', 'max_velocity'):
            values = getattr(self, name)
            check(len(values) > 0 and all(math.isfinite(v) for v in values), self, name,
                  'a non-empty list of finite numbers')
        check(all(v > 0 for v in self.max_velocity), self, 'max_velocity', 'values > 0')
        lo, hi = self.lower_limits, self.upper_limits
        check(len(lo) == len(hi) or 1 in (len(lo), len(hi)), self, 'upper_limits',
              f'as many values as lower_limits ({len(lo)}), or one')
        n = max(len(lo), len(hi))
        check(bool(np.all(np.broadcast_to(lo, n) < np.broadcast_to(hi, n))), self,
              'upper_limits', f'each value > the lower limit {lo!r}')
        check(self.stale_timeout > 0, self, 'stale_timeout', 'a number of seconds > 0')


@dataclass
class SafetyCounts:
    """What the filter did since it was built (for logs and /diagnostics)."""

    executed: int = 0  # ticks that sent a new (possibly clamped) target
    clamped_position: int = 0  # of those, ticks where a joint limit cut the target
    clamped_velocity: int = 0  # of those, ticks where the velocity limit cut the step
    holds: dict[str, int] = field(default_factory=lambda: {HOLD_STALE: 0, HOLD_NO_CHUNK: 0,
                                                           HOLD_NAN: 0})


@dataclass(frozen=True)
class SafetyOutput:
    command: np.ndarray | None  # (D,) the command to send; None before any reference exists
    status: str  # OK or one of the HOLD_* / NO_REFERENCE statuses


class SafetyFilter:
    """Per-joint clamp, velocity limit and hold logic for ``num_joints`` joints."""

    def __init__(self, cfg: SafetyConfig, num_joints: int) -> None:
        def per_joint(name: str) -> np.ndarray:
            values = getattr(cfg, name)
            if len(values) not in (1, num_joints):
                raise ValueError(f'{type(cfg).__name__}.{name}={values!r}: expected 1 or '
                                 f'{num_joints} values (one per joint)')
            return np.broadcast_to(np.asarray(values, dtype=np.float64), (num_joints,)).copy()

        self.cfg = cfg
        self.lower = per_joint('lower_limits')  # (D,)
        self.upper = per_joint('upper_limits')  # (D,)
        self.max_velocity = per_joint('max_velocity')  # (D,)
        self.counts = SafetyCounts()
        self._last: np.ndarray | None = None  # (D,) the last command sent (always in limits)
        self._hold_target: np.ndarray | None = None  # (D,) where holds ramp to (hold_toward)

    @property
    def last(self) -> np.ndarray | None:
        return None if self._last is None else self._last.copy()

    def seed(self, position: np.ndarray) -> bool:
        """Start from the measured ``position`` (D,) unless a command was already sent.

        Returns True when the position became the reference. Non-finite positions are refused.
        """
        p = np.asarray(position, dtype=np.float64)
        if self._last is not None or p.shape != self.lower.shape or not np.isfinite(p).all():
            return False
        self._last = np.clip(p, self.lower, self.upper)
        return True

    def reset(self, position: np.ndarray | None = None) -> None:
        """Drop the last command; start again from ``position`` when given."""
        self._last = None
        self._hold_target = None
        if position is not None:
            self.seed(position)

    def hold_toward(self, position: np.ndarray) -> bool:
        """Make the next holds ramp from the last command to ``position`` (D,), clamped to the
        limits, at most ``max_velocity * dt`` a tick, until a proposal is executed.

        Without a last command this seeds it instead. Non-finite positions are refused (False).
        """
        p = np.asarray(position, dtype=np.float64)
        if p.shape != self.lower.shape or not np.isfinite(p).all():
            return False
        if self._last is None:
            return self.seed(p)
        self._hold_target = np.clip(p, self.lower, self.upper)
        return True

    def step(self, now: float, proposal: np.ndarray | None, newest_stamp: float | None,
             dt: float) -> SafetyOutput:
        """The command for this tick, from the ensembler's ``proposal`` (D,) or None.

        ``newest_stamp`` is the observation time of the newest chunk that covers now
        (:meth:`TemporalEnsembler.newest_covering`; None: none);
        ``dt`` the control period (s) that bounds the step.
        """
        if newest_stamp is not None and now - newest_stamp > self.cfg.stale_timeout:
            status = HOLD_STALE
        elif proposal is None:
            status = HOLD_NO_CHUNK
        elif not np.isfinite(proposal).all():
            status = HOLD_NAN
        else:
            status = OK
        if self._last is None:
            return SafetyOutput(None, NO_REFERENCE)
        if status != OK:
            self.counts.holds[status] += 1
            if self._hold_target is not None:
                self._move_toward(self._hold_target, dt)
            return SafetyOutput(self._last.copy(), status)
        target = np.asarray(proposal, dtype=np.float64)  # (D,)
        if target.shape != self.lower.shape:
            raise ValueError(f'proposal of shape {target.shape}, expected {self.lower.shape}')
        self._hold_target = None  # a proposal takes over from any ramp
        clamped = np.clip(target, self.lower, self.upper)
        too_fast = self._move_toward(clamped, dt)
        self.counts.executed += 1
        self.counts.clamped_position += int(not np.array_equal(clamped, target))
        self.counts.clamped_velocity += int(too_fast)
        return SafetyOutput(self._last.copy(), status)

    def _move_toward(self, clamped: np.ndarray, dt: float) -> bool:
        """Step the last command toward ``clamped`` (D,, in limits) within the velocity limit;
        True when the limit cut the step."""
        max_step = self.max_velocity * dt  # (D,)
        delta = clamped - self._last
        too_fast = np.abs(delta) > max_step
        command = np.where(too_fast, self._last + np.sign(delta) * max_step, clamped)
        self._last = np.clip(command, self.lower, self.upper)  # rounding must not leave limits
        return bool(too_fast.any())
