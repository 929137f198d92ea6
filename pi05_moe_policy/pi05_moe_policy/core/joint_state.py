"""Joint states in the robot's joint order. Pure: no rclpy.

``sensor_msgs/JointState`` carries names and positions in whatever order the driver (or
joint_state_broadcaster) likes, and often more joints than the policy uses. The policy and the
executor need one fixed order, ``joint_names``. :func:`reorder_joints` maps one onto the other
and reports what is missing, extra or not finite, so the node can warn with names instead of
indices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class JointMatch:
    """The result of matching a joint-state message against ``joint_names``."""

    positions: np.ndarray | None  # (D,) float64 in joint_names order; None if any is missing
    missing: tuple[str, ...]  # expected joints absent from the message
    extra: tuple[str, ...]  # joints in the message that are not expected (ignored)
    nonfinite: tuple[str, ...]  # expected joints whose position is NaN or infinite

    @property
    def ok(self) -> bool:
        """True when every expected joint is present and finite."""
        return self.positions is not None and not self.nonfinite


def reorder_joints(names: Sequence[str], positions: Sequence[float],
                   joint_names: Sequence[str]) -> JointMatch:
    """Pick ``joint_names`` out of (``names``, ``positions``), in that order.

    Raises ``ValueError`` when the message itself is malformed: names and positions of different
    lengths, or a joint named twice.
    """
    if len(names) != len(positions):
        raise ValueError(f'{len(names)} joint names but {len(positions)} positions')
    index = {name: i for i, name in enumerate(names)}
    if len(index) != len(names):
        dupes = sorted({n for n in names if list(names).count(n) > 1})
        raise ValueError(f'joint(s) named more than once: {dupes}')
    wanted = set(joint_names)
    missing = tuple(n for n in joint_names if n not in index)
    extra = tuple(n for n in names if n not in wanted)
    if missing:
        return JointMatch(None, missing, extra, ())
    values = np.asarray(positions, dtype=np.float64)  # (N,)
    out = values[[index[n] for n in joint_names]]  # (D,)
    nonfinite = tuple(n for n, v in zip(joint_names, out) if not np.isfinite(v))
    return JointMatch(out, (), extra, nonfinite)


def resolve_joint_names(configured: Sequence[str], from_checkpoint: Sequence[str] | None,
                        dim: int) -> list[str]:
    """The joint order to use: the parameter, else the checkpoint's, else ``joint_0..``.

    Raises ``ValueError`` when the chosen list does not have ``dim`` entries.
    """
    if configured:
        names, source = list(configured), 'the joint_names parameter'
    elif from_checkpoint:
        names, source = list(from_checkpoint), 'the checkpoint'
    else:
        return [f'joint_{i}' for i in range(dim)]
    if len(names) != dim or len(set(names)) != len(names) or not all(names):
        raise ValueError(f'joint_names={names!r} from {source}: expected {dim} unique, '
                         'non-empty names (the checkpoint\'s state/action dimension)')
    return names
