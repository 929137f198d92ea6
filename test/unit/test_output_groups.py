"""core.output_groups: splitting a command over controllers and back, without ROS (#18 item 6)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from pi05_moe_bringup.sim.commands import CommandInputs
from pi05_moe_policy import topics
from pi05_moe_policy.core.output_groups import GroupAssembler, OutputGroupsConfig, plan_groups

JOINTS = ['j1', 'j2', 'j3', 'grip']


def _cfg(**kw):
    base = dict(output_groups=['arm', 'gripper'], group_joints={'arm': 'j3 j1 j2',
                                                                 'gripper': 'grip'},
                output_scale={'grip': 0.04}, output_offset={'grip': 0.01},
                group_outputs={'gripper': 'joint_trajectory'})
    return OutputGroupsConfig(**{**base, **kw})


def test_groups_split_map_and_reassemble_a_command():
    arm, grip = plan_groups(_cfg(), JOINTS)
    assert (arm.controller, arm.output, arm.topic) == (
        'arm_controller', 'commands', topics.controller_commands('arm_controller'))
    assert grip.topic == topics.controller_trajectory('gripper_controller')
    command = np.array([0.1, 0.2, 0.3, 0.5])  # (D,) policy units
    np.testing.assert_allclose(arm.command(command), [0.3, 0.1, 0.2])  # controller order
    np.testing.assert_allclose(grip.command(command), [0.5 * 0.04 + 0.01])
    assembler = GroupAssembler([arm, grip], len(JOINTS))
    assert assembler.put('arm', arm.command(command)) is None  # the gripper has not sent yet
    np.testing.assert_allclose(assembler.put('gripper', grip.command(command)), command)


def test_no_groups_is_the_single_output():
    assert plan_groups(OutputGroupsConfig(), JOINTS) == []


@pytest.mark.parametrize('kw, match', [
    (dict(group_joints={'arm': 'j1 j2 j3', 'gripper': 'grip nope'}), "'nope' is not in"),
    (dict(group_joints={'arm': 'j1 j2 grip', 'gripper': 'grip'}), "already in group 'arm'"),
    (dict(group_joints={'arm': 'j1 j2', 'gripper': 'grip'}), r"joints \['j3'\] are in no"),
    (dict(output_scale={'elbow': 2.0}), r"output_scale: joints \['elbow'\]"),
])
def test_bad_groups_name_the_joint(kw, match):
    with pytest.raises(ValueError, match=match):
        plan_groups(_cfg(**kw), JOINTS)


@pytest.mark.parametrize('kw, field', [
    (dict(group_outputs={'arm': 'effort'}), "group_outputs={'arm': 'effort'}"),
    (dict(group_joints={'arm': '', 'gripper': 'grip'}), 'group_joints='),
    (dict(output_scale={'grip': 0.0}), "output_scale={'grip': 0.0}"),
    (dict(group_controllers={'tool': 'x'}), "group_controllers={'tool': 'x'}"),
])
def test_bad_config_quotes_the_value(kw, field):
    with pytest.raises(ValueError, match=re.escape(field)):
        _cfg(**kw)


class _Array:
    def __init__(self, data):
        self.data = data


def test_sim_command_inputs_follow_the_groups():
    cfg = _cfg(group_outputs={})
    inputs = CommandInputs(cfg, JOINTS, {'/all/commands': 'commands'})
    assert inputs.topics == {'/arm_controller/commands': 'commands',
                             '/gripper_controller/commands': 'commands'}
    assert inputs.take('/arm_controller/commands', _Array([0.3, 0.1, 0.2])) is None
    action = inputs.take('/gripper_controller/commands', _Array([0.5 * 0.04 + 0.01]))
    np.testing.assert_allclose(action, [0.1, 0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match='expected 3 values'):
        inputs.take('/arm_controller/commands', _Array([0.0] * 4))
    single = CommandInputs(OutputGroupsConfig(), JOINTS, {'/all/commands': 'commands'})
    np.testing.assert_allclose(single.take('/all/commands', _Array([1, 2, 3, 4])), [1, 2, 3, 4])
