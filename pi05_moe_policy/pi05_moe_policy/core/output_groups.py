"""Output groups: one policy command split over several ros2_control controllers. Pure: no rclpy.

A forward_command_controller takes exactly its own joints (an arm controller refuses a 7-value
array with the gripper in it), so the executor can send each group of joints to its own
controller, as ``Float64MultiArray`` (``commands``) or ``JointTrajectory``
(``joint_trajectory``), with an optional affine map per joint from the policy's units to the
controller's (``value * scale + offset``, e.g. a gripper's 0..1 to finger metres). The
executor's safety limits apply before the map, in the policy's units. The simulator reads the
same groups and undoes the map (:meth:`OutputGroup.unmap`). No groups: one output, as before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pi05_moe_policy.params import check, param

OUTPUTS = ('commands', 'joint_trajectory')


@dataclass
class OutputGroupsConfig:
    """Where commands go when they are split per controller (ROS parameters of the executor
    and of the simulator, which must agree)."""

    output_groups: list[str] = param([], 'Group names, e.g. [arm, gripper]. Empty: one output '
                                     '(controller, output) with every joint.')
    group_joints: dict[str, str] = param({}, 'Joints per group, space-separated, in the '
                                         'controller\'s order, e.g. arm: "waist shoulder".')
    group_controllers: dict[str, str] = param({}, 'ros2_control controller per group; default '
                                              '<group>_controller.')
    group_outputs: dict[str, str] = param({}, 'commands (Float64MultiArray on '
                                          '/<controller>/commands) or joint_trajectory '
                                          '(/<controller>/joint_trajectory) per group; default '
                                          'commands.')
    output_scale: dict[str, float] = param({}, 'Per joint: controller value = policy value * '
                                           'scale + offset (after the limits); default 1.')
    output_offset: dict[str, float] = param({}, 'Per joint: see output_scale; default 0.')

    def __post_init__(self) -> None:
        names = self.output_groups
        check(len(set(names)) == len(names) and all(n and '/' not in n for n in names), self,
              'output_groups', 'distinct names without "/"')
        for field in ('group_joints', 'group_controllers', 'group_outputs'):
            check(set(getattr(self, field)) <= set(names), self, field,
                  f'keys among output_groups {names}')
        check(all(self.group_joints.get(n, '').split() for n in names), self, 'group_joints',
              f'at least one joint for each of {names}')
        check(all(v in OUTPUTS for v in self.group_outputs.values()), self, 'group_outputs',
              f'values in {OUTPUTS}')
        check(all(c and '/' not in c for c in self.group_controllers.values()), self,
              'group_controllers', 'controller names without "/"')
        check(all(math.isfinite(v) and v != 0 for v in self.output_scale.values()), self,
              'output_scale', 'finite, non-zero scales')
        check(all(math.isfinite(v) for v in self.output_offset.values()), self, 'output_offset',
              'finite offsets')


@dataclass(frozen=True)
class OutputGroup:
    """One controller's share of the command: ``index`` into the policy's joint order."""

    name: str
    controller: str
    output: str
    joints: tuple[str, ...]
    index: tuple[int, ...]
    scale: tuple[float, ...]
    offset: tuple[float, ...]

    @property
    def topic(self) -> str:
        """The controller's input topic (as ``topics.controller_commands``/``_trajectory``)."""
        return f'/{self.controller}/{self.output}'

    def command(self, command: np.ndarray) -> np.ndarray:
        """(G,) controller values from the full (D,) command in policy units."""
        return command[list(self.index)] * np.asarray(self.scale) + np.asarray(self.offset)

    def unmap(self, values: np.ndarray) -> np.ndarray:
        """(G,) policy-unit values from (G,) controller values (the simulator's side)."""
        return (np.asarray(values, np.float64) - np.asarray(self.offset)) / np.asarray(self.scale)


def plan_groups(cfg: OutputGroupsConfig, joint_names: Sequence[str]) -> list[OutputGroup]:
    """The groups of ``cfg`` over the policy's ``joint_names`` (empty when none are configured).

    Raises ``ValueError`` naming the joint when a group names a joint not in ``joint_names``,
    when a joint is in two groups or in none (it would never be commanded), or when a scale or
    offset names a joint no group has."""
    if not cfg.output_groups:
        return []
    joint_names = list(joint_names)
    groups, seen = [], {}
    for name in cfg.output_groups:
        joints = tuple(cfg.group_joints[name].split())
        for j in joints:
            if j not in joint_names:
                raise ValueError(f'group_joints.{name}: joint {j!r} is not in joint_names '
                                 f'{joint_names}')
            if j in seen:
                raise ValueError(f'group_joints.{name}: joint {j!r} is already in group '
                                 f'{seen[j]!r}')
            seen[j] = name
        groups.append(OutputGroup(
            name, cfg.group_controllers.get(name, f'{name}_controller'),
            cfg.group_outputs.get(name, 'commands'), joints,
            tuple(joint_names.index(j) for j in joints),
            tuple(float(cfg.output_scale.get(j, 1.0)) for j in joints),
            tuple(float(cfg.output_offset.get(j, 0.0)) for j in joints)))
    missing = [j for j in joint_names if j not in seen]
    if missing:
        raise ValueError(f'output_groups {cfg.output_groups}: joints {missing} are in no group '
                         '(group_joints)')
    for field in ('output_scale', 'output_offset'):
        stray = sorted(set(getattr(cfg, field)) - set(seen))
        if stray:
            raise ValueError(f'{field}: joints {stray} are in no group')
    return groups


class GroupAssembler:
    """The receiving side: the latest values of every group -> one (D,) command, once each
    group has sent at least once (until then a joint would have no target)."""

    def __init__(self, groups: Sequence[OutputGroup], num_joints: int) -> None:
        self.groups = {g.name: g for g in groups}
        self._command = np.zeros(num_joints)  # (D,) policy units
        self._seen: set[str] = set()

    def put(self, name: str, values: np.ndarray) -> np.ndarray | None:
        """Store group ``name``'s (G,) controller values; the full (D,) command or None."""
        group = self.groups[name]
        self._command[list(group.index)] = group.unmap(values)
        self._seen.add(name)
        return self._command.copy() if len(self._seen) == len(self.groups) else None
