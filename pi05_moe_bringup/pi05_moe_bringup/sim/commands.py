"""Executor commands -> a SimRobot action (7,). Pure: works on plain sequences, no rclpy.

The executor sends either a Float64MultiArray (values in the robot's joint order) or a
JointTrajectory (named joints; the sim follows its first point at once), for all joints on one
controller or split over the executor's output groups (:class:`CommandInputs`).
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

from pi05_moe_policy.core.joint_state import reorder_joints
from pi05_moe_policy.core.output_groups import GroupAssembler, OutputGroupsConfig, plan_groups


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


class CommandInputs:
    """The controller topics the sim listens on, and their messages -> a (D,) action.

    Without output groups: ``default`` (topic -> output kind), each carrying every joint. With
    groups (the executor's own :class:`OutputGroupsConfig`): one topic per group, its values
    mapped back to the policy's units; an action once every group has sent.
    """

    def __init__(self, cfg: OutputGroupsConfig, joint_names: Sequence[str],
                 default: dict[str, str]) -> None:
        self.joint_names = tuple(joint_names)
        groups = plan_groups(cfg, joint_names)
        self._assembler = GroupAssembler(groups, len(joint_names))
        self.topics = ({g.topic: g.output for g in groups} if groups else dict(default))
        self._group = {g.topic: g for g in groups}

    def take(self, topic: str, msg: Any) -> np.ndarray | None:
        """A Float64MultiArray (``data``) or JointTrajectory (``joint_names``, ``points``) from
        ``topic`` -> the (D,) action, or None while a group has not sent yet."""
        group = self._group.get(topic)
        joints = group.joints if group else self.joint_names
        if self.topics[topic] == 'commands':
            values = action_from_array(msg.data, joints)
        else:
            values = action_from_trajectory(msg.joint_names, [p.positions for p in msg.points],
                                            joints)
        return values if group is None else self._assembler.put(group.name, values)
