"""Executor commands -> a SimRobot action (7,). Pure: works on plain sequences, no rclpy.

The executor sends either a Float64MultiArray (values in the robot's joint order) or a
JointTrajectory (named joints; the sim follows its first point at once).
"""

from collections.abc import Sequence

import numpy as np

from pi05_moe_policy.core.joint_state import reorder_joints


def action_from_array(values: Sequence[float], joint_names: Sequence[str]) -> np.ndarray:
    """(D,) action from values already in `joint_names` order; ValueError if unusable."""
    action = np.asarray(values, dtype=np.float64)  # (D,)
    if action.shape != (len(joint_names),):
        raise ValueError(f'expected {len(joint_names)} values {tuple(joint_names)}, '
                         f'got {action.size}')
    if not np.all(np.isfinite(action)):
        raise ValueError(f'non-finite command {action.tolist()}')
    return action


def action_from_trajectory(names: Sequence[str], points: Sequence[Sequence[float]],
                           joint_names: Sequence[str]) -> np.ndarray:
    """(D,) action from the first point's positions of a trajectory over joints `names`."""
    if not points:
        raise ValueError('trajectory has no points')
    match = reorder_joints(names, points[0], joint_names)
    if match.missing:
        raise ValueError(f'trajectory lacks joints {list(match.missing)}')
    if not match.ok:
        raise ValueError(f'non-finite positions for {list(match.nonfinite)}')
    return match.positions
