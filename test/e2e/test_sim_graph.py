"""The whole sim bringup end to end: `pi05-moe up sim` with a tiny policy moves the simulated arm.

sim_node, policy_node (preset:tiny, random weights) and executor_node run as the runner starts
them, over DDS on a private ROS_DOMAIN_ID, on sim time. With actuation disabled the commands go
to the preview topic only and the arm holds its pose; once ``/executor_node/enable`` is called
the commands reach ``/arm_controller/commands``, within sim.yaml's joint limits, and the simulated
joints move.
"""

import time
from pathlib import Path

import numpy as np
import pytest
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool, Trigger

from pi05_moe_bringup.description import load_graph
from pi05_moe_bringup.sim.robot import JOINT_NAMES
from pi05_moe_msgs.msg import ActionChunk
from pi05_moe_policy.nodes import qos

SIM_YAML = Path(__file__).resolve().parents[2] / 'pi05_moe_bringup' / 'config' / 'sim.yaml'


class Probe(Node):
    """Joint states, commands, previews and chunks as they arrive; the executor's services."""

    def __init__(self, context):
        super().__init__('sim_graph_probe', context=context)
        self.joints: list[np.ndarray] = []  # (7,) positions in JOINT_NAMES order
        # sim.yaml's output groups: the arm's 6 joints and the gripper (metres) on their own
        # controllers, previewed per group while disabled.
        self.commands: list[np.ndarray] = []  # (6,)
        self.gripper: list[float] = []
        self.previews: list[np.ndarray] = []  # (6,)
        self.chunks = 0
        self.create_subscription(JointState, '/joint_states', self._on_joints, qos.SENSOR)
        self.create_subscription(Float64MultiArray, '/arm_controller/commands',
                                 lambda m: self.commands.append(np.array(m.data)), qos.COMMAND)
        self.create_subscription(Float64MultiArray, '/gripper_controller/commands',
                                 lambda m: self.gripper.extend(m.data), qos.COMMAND)
        self.create_subscription(Float64MultiArray, '/pi05_moe/command_preview/arm',
                                 lambda m: self.previews.append(np.array(m.data)), qos.COMMAND)
        self.create_subscription(ActionChunk, '/pi05_moe/action_chunk', self._on_chunk,
                                 qos.COMMAND)
        self.enable = self.create_client(SetBool, '/executor_node/enable')
        self.sim_reset = self.create_client(Trigger, '/sim_node/reset')

    def _on_joints(self, msg: JointState) -> None:
        assert tuple(msg.name) == JOINT_NAMES
        self.joints.append(np.array(msg.position))

    def _on_chunk(self, _msg: ActionChunk) -> None:
        self.chunks += 1


@pytest.fixture
def graph(ros, spawn_each):
    """`pi05-moe up sim` (tiny policy) on the module's private domain; yields (runner, probe).
    The runner must exit 0 on Ctrl-C."""
    runner = spawn_each(['pi05-moe', 'up', str(SIM_YAML), '--no-color', '--set',
                         'policy_node.checkpoint=preset:tiny', '--set',
                         'policy_node.torch_compile=false'])
    probe = ros.add(Probe(ros.context))
    yield runner, probe
    ros.remove(probe)
    code = runner.stop(timeout=30)  # the runner stops its nodes
    assert code == 0, f'{runner.describe()}; last lines:\n{runner.tail()}'


def test_enabled_executor_commands_reach_the_simulated_arm(graph, ros, wait_until):
    runner, probe = graph
    wait_until(lambda: probe.chunks > 0, 90.0, 'the first action chunk', process=runner)

    # Disabled: the executor only previews; the sim, reset to its home pose, holds it.
    assert ros.call(probe.enable, SetBool.Request(data=False)).success
    assert ros.call(probe.sim_reset, Trigger.Request()).success
    time.sleep(0.5)  # the last pre-reset joint states are out of the way
    held, previews = len(probe.joints), len(probe.previews)
    commands = len(probe.commands)
    wait_until(lambda: len(probe.joints) >= held + 25, 20.0, '25 joint states', process=runner)
    still = np.stack(probe.joints[held:])  # (T, 7)
    assert np.abs(still - still[0]).max() < 1e-3, 'the arm moved while actuation was disabled'
    assert len(probe.previews) > previews  # the executor runs, and says what it would command
    assert len(probe.commands) == commands

    # Enabled: commands reach /arm_controller/commands and the joints follow them.
    home = still[-1]
    assert ros.call(probe.enable, SetBool.Request(data=True)).success
    wait_until(lambda: len(probe.commands) > commands + 10, 20.0, 'commands', process=runner)
    wait_until(lambda: np.abs(probe.joints[-1][:6] - home[:6]).max() > 0.02, 20.0,
               'the arm joints to move', process=runner)
    sent = np.stack(probe.commands[commands:])  # (N, 6)
    limits = load_graph(SIM_YAML).node('executor_node').params
    assert (sent >= np.array(limits['lower_limits'][:6]) - 1e-9).all()
    assert (sent <= np.array(limits['upper_limits'][:6]) + 1e-9).all()
    # the gripper's 0..1 mapped to metres: within [offset, offset + scale]
    scale, offset = limits['output_scale.gripper'], limits['output_offset.gripper']
    assert probe.gripper and all(offset - 1e-9 <= g <= offset + scale + 1e-9
                                 for g in probe.gripper)
    # the joints moved toward what was commanded: closer to the latest command than home is
    target = sent[-1][:6]
    assert np.linalg.norm(probe.joints[-1][:6] - target) < np.linalg.norm(home[:6] - target)
