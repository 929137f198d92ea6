"""executor_node over DDS with two output groups (#18 item 6): the arm controller's topic gets
the 6 arm joints, the gripper's topic 1 value mapped to the controller's units (after the limits,
which stay in the policy's units), and the disabled executor previews per group."""

from __future__ import annotations

import time

import numpy as np
import pytest
import yaml
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, Header
from std_srvs.srv import SetBool

from pi05_moe_msgs.msg import ActionChunk
from pi05_moe_policy.nodes import qos
from pi05_moe_policy.nodes.config import ExecutorNodeConfig
from pi05_moe_policy.nodes.msg_convert import make_action_chunk

JOINTS = ['waist', 'shoulder', 'elbow', 'forearm_roll', 'wrist_pitch', 'wrist_roll', 'gripper']
PARAMS = dict(joint_names=JOINTS, mode='latest', control_hz=50.0,
              lower_limits=[-1.0] * 6 + [0.0], upper_limits=[1.0] * 6 + [1.0],
              max_velocity=[100.0] * 7, output_groups=['arm', 'gripper'],
              group_joints={'arm': ' '.join(JOINTS[:6]), 'gripper': 'gripper'},
              group_controllers={'arm': 'arm_controller', 'gripper': 'gripper_controller'},
              output_scale={'gripper': 0.036}, output_offset={'gripper': 0.021})


@pytest.mark.timeout(90)
def test_two_groups_get_their_joints_and_the_mapped_gripper(ros, spawn, tmp_path, wait_until):
    ExecutorNodeConfig(**PARAMS)
    path = tmp_path / 'executor.yaml'
    path.write_text(yaml.safe_dump({'executor_node': {'ros__parameters': PARAMS}}))
    node = ros.node('groups_probe')
    got: dict[str, list] = {t: [] for t in (
        '/arm_controller/commands', '/gripper_controller/commands',
        '/pi05_moe/command_preview/arm', '/pi05_moe/command_preview/gripper',
        '/pi05_moe/command_preview')}
    for topic, into in got.items():
        node.create_subscription(Float64MultiArray, topic, lambda m, i=into: i.append(m.data),
                                 qos.COMMAND)
    joints = node.create_publisher(JointState, '/joint_states', qos.SENSOR)
    chunks = node.create_publisher(ActionChunk, '/pi05_moe/action_chunk', qos.COMMAND)
    enable = node.create_client(SetBool, '/executor_node/enable')
    node.create_timer(0.05, lambda: joints.publish(JointState(
        header=Header(stamp=node.get_clock().now().to_msg()), name=JOINTS,
        position=[0.0] * 7)))
    proc = spawn(['executor_node', '--ros-args', '--params-file', str(path)])
    proc.wait_for(r'actuation disabled -> /pi05_moe/command_preview/arm, '
                  r'/pi05_moe/command_preview/gripper', timeout=20)
    wait_until(lambda: chunks.get_subscription_count() > 0, 10, 'the executor to subscribe')
    time.sleep(0.5)
    # The gripper asks for 1.5: clamped to 1.0 in policy units, then mapped to 0.057 m.
    target = np.array([0.5, -0.5, 2.0, 0.1, 0.2, 0.3, 1.5], np.float32)
    chunks.publish(make_action_chunk(node.get_clock().now().to_msg(), 1, JOINTS,
                                     np.tile(target, (500, 1)), 0.02, 0.0, 'test', {}))
    want_arm = [0.5, -0.5, 1.0, 0.1, 0.2, 0.3]
    wait_until(lambda: got['/pi05_moe/command_preview/arm']
               and np.allclose(got['/pi05_moe/command_preview/arm'][-1], want_arm, atol=1e-6),
               10, 'the arm preview at the clamped target', process=proc)
    assert not got['/arm_controller/commands'] and not got['/pi05_moe/command_preview']
    assert ros.call(enable, SetBool.Request(data=True)).success
    wait_until(lambda: got['/arm_controller/commands'] and got['/gripper_controller/commands']
               and np.allclose(got['/arm_controller/commands'][-1], want_arm, atol=1e-6)
               and np.allclose(got['/gripper_controller/commands'][-1], [0.057], atol=1e-6),
               10, 'both controllers at the target', process=proc)
    assert all(len(v) == 6 for v in got['/arm_controller/commands'])
    assert all(len(v) == 1 for v in got['/gripper_controller/commands'])
    assert all(0.021 - 1e-9 <= v[0] <= 0.057 + 1e-9 for v in got['/gripper_controller/commands'])
    assert proc.stop() == 0
