"""Physical plausibility of the policy's inputs: joint positions and thermal frames. Pure.

Well-formed messages can still describe a robot that cannot exist: a joint at 100 rad or 1e30,
a thermal frame at 0 K (a sensor fault or a driver bug). The model would turn them into targets
that only the executor's clamp stops, so the policy node drops such messages (with a
rate-limited warning, like a NaN) and they never replace the last good one: the stream then ages
out under the snapshot's ``max_age`` rules and the inference is skipped until valid input comes.
Frame sizes are bounded too (``max_image_size``): a fuzzer or a misconfigured driver must not
make the node hold and resize arbitrarily large buffers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pi05_moe_policy.core.image_codec import ImageCodecError
from pi05_moe_policy.core.joint_state import JointMatch, reorder_joints
from pi05_moe_policy.core.observation import THERMAL, check_image_header, decode_image
from pi05_moe_policy.params import check, param


@dataclass
class InputCheckConfig:
    """Which inputs are physically plausible."""

    joint_lower_limits: list[float] = param(
        [], 'Lower position limit per joint (joint_names order; rad or m). Empty: '
        '-max_abs_joint_position for every joint.')
    joint_upper_limits: list[float] = param(
        [], 'Upper position limit per joint (joint_names order). Empty: '
        '+max_abs_joint_position for every joint.')
    joint_limit_margin: float = param(
        0.1, 'A measured position may lie this far (rad or m) outside its limits (encoder '
        'noise, a joint pushed past its soft limit) before the message is dropped.')
    max_abs_joint_position: float = param(
        20.0, 'Bound on |position| used where no per-joint limits are given (over three turns '
        'of a continuous joint).')
    thermal_min_k: float = param(
        173.15, 'Coldest plausible thermal pixel (K); a 0 K frame is a sensor fault.')
    thermal_max_k: float = param(
        1000.0, 'Hottest plausible thermal pixel (K). mono16 centi-Kelvin tops out at 655.35 K.')
    thermal_max_bad_fraction: float = param(
        0.05, 'A thermal frame with more than this fraction of pixels outside [thermal_min_k, '
        'thermal_max_k] is dropped (a few dead pixels are tolerated).')
    max_image_size: int = param(
        4096, 'Images wider or higher than this (pixels) are dropped unread.')

    def __post_init__(self) -> None:
        check(len(self.joint_lower_limits) == len(self.joint_upper_limits), self,
              'joint_upper_limits', f'as many values as joint_lower_limits '
              f'({len(self.joint_lower_limits)})')
        check(all(lo < hi for lo, hi in zip(self.joint_lower_limits, self.joint_upper_limits)),
              self, 'joint_upper_limits', 'each limit above its joint_lower_limits entry')
        check(self.joint_limit_margin >= 0, self, 'joint_limit_margin', 'a margin >= 0')
        check(self.max_abs_joint_position > 0, self, 'max_abs_joint_position', 'a bound > 0')
        check(0 <= self.thermal_min_k < self.thermal_max_k, self, 'thermal_max_k',
              f'a temperature above thermal_min_k ({self.thermal_min_k!r}) >= 0')
        check(0 <= self.thermal_max_bad_fraction < 1, self, 'thermal_max_bad_fraction',
              'a fraction in [0, 1)')
        check(self.max_image_size >= 1, self, 'max_image_size', 'an int >= 1')


@dataclass(frozen=True)
class JointVerdict:
    """What to do with one joint-state message."""

    positions: np.ndarray | None  # (D,) float32 in joint_names order, None: drop the message
    problem: str | None  # why it is dropped ('malformed' | 'missing' | 'nan' | 'limits')
    text: str  # the warning for a dropped message ('' when kept)
    extra: tuple[str, ...]  # joints in the message that are not in joint_names (ignored)


class JointStateCheck:
    """Joint states -> positions in ``joint_names`` order, or why the message is dropped."""

    def __init__(self, cfg: InputCheckConfig, joint_names: Sequence[str]) -> None:
        n = len(joint_names)
        if cfg.joint_lower_limits and len(cfg.joint_lower_limits) != n:
            raise ValueError(f'joint_lower_limits={cfg.joint_lower_limits!r} has '
                             f'{len(cfg.joint_lower_limits)} values for {n} joints '
                             f'{list(joint_names)}')
        bound = cfg.max_abs_joint_position
        self.joint_names = list(joint_names)
        self.lower = np.array(cfg.joint_lower_limits or [-bound] * n, np.float64)  # (D,)
        self.upper = np.array(cfg.joint_upper_limits or [bound] * n, np.float64)  # (D,)
        self.margin = float(cfg.joint_limit_margin)

    def __call__(self, names: Sequence[str], positions: Sequence[float]) -> JointVerdict:
        try:
            match: JointMatch = reorder_joints(names, positions, self.joint_names)
        except ValueError as exc:
            return JointVerdict(None, 'malformed', f'dropping message: {exc}', ())
        if match.missing:
            return JointVerdict(None, 'missing', f'dropping message without joints '
                                f'{list(match.missing)} (joint_names {self.joint_names})',
                                match.extra)
        if match.nonfinite:
            return JointVerdict(None, 'nan', 'dropping message with NaN/inf positions for '
                                f'{list(match.nonfinite)}', match.extra)
        p = match.positions  # (D,) float64
        out = (p < self.lower - self.margin) | (p > self.upper + self.margin)  # (D,)
        if out.any():
            bad = ', '.join(f'{n}={p[i]:.4g} not in [{self.lower[i]:.4g}, {self.upper[i]:.4g}]'
                            for i, n in enumerate(self.joint_names) if out[i])
            return JointVerdict(None, 'limits', 'dropping physically impossible joint '
                                f'positions: {bad} (+- joint_limit_margin {self.margin:g})',
                                match.extra)
        return JointVerdict(p.astype(np.float32), None, '', match.extra)


def check_thermal(image: np.ndarray, cfg: InputCheckConfig, topic: str) -> str | None:
    """None for a plausible (H, W) uint16 centi-Kelvin frame, else why it is not."""
    lo, hi = round(cfg.thermal_min_k * 100), round(cfg.thermal_max_k * 100)
    bad = (image < lo) | (image > hi)  # (H, W) bool
    fraction = float(bad.mean()) if image.size else 1.0
    if fraction <= cfg.thermal_max_bad_fraction:
        return None
    return (f'{topic}: thermal frame with {fraction:.0%} of pixels outside '
            f'[{cfg.thermal_min_k:g}, {cfg.thermal_max_k:g}] K (min {image.min() / 100:.2f} K, '
            f'max {image.max() / 100:.2f} K): a sensor fault, not a scene')


def check_frame(msg: Any, kind: str, topic: str, min_size: int, cfg: InputCheckConfig) -> None:
    """Raise ``ImageCodecError`` for a frame the policy must not use: the header checks of
    :func:`check_image_header` (``min_size``..``cfg.max_image_size``) and, for a thermal camera,
    the plausibility of its pixels (decoded here: a thermal frame is small)."""
    check_image_header(msg, kind, topic, min_size, cfg.max_image_size)
    if kind == THERMAL:
        problem = check_thermal(decode_image(msg, kind, topic), cfg, topic)  # (H, W) uint16
        if problem:
            raise ImageCodecError(problem)
