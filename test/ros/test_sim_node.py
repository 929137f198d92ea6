"""sim_node over real DDS: topics, formats, rates, latched prompt, both command formats, reset.

The node and a probe node share one rclpy context on a random ROS domain, spun by a background
executor thread; messages still go through DDS (no intra-process shortcut).
"""

import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict

import numpy as np
import pytest
import rclpy
from domains import private_domain_id
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Bool, Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from pi05_moe_bringup.sim.robot import JOINT_NAMES
from pi05_moe_bringup.sim_node import STREAMS, SimNode
from pi05_moe_policy.nodes import qos

IMAGE_TOPICS = [topic for _, topic, _, _, _ in STREAMS.values()] + ['/thermal/image_color']
INFO_TOPICS = {topic: info for _, topic, info, _, _ in STREAMS.values()}


class Probe(Node):
    """Records every message on the sim's output topics, with its arrival order."""

    def __init__(self, context):
        super().__init__('sim_probe', context=context)
        self.msgs = defaultdict(list)
        for topic in IMAGE_TOPICS:
            self._sub(Image, topic, qos.SENSOR)
        for topic in INFO_TOPICS.values():
            self._sub(CameraInfo, topic, qos.SENSOR)
        self._sub(JointState, '/joint_states', qos.SENSOR)  # as policy_node and the executor
        # A default-QoS subscriber (reliable, depth 10), as rqt or robot_state_publisher's.
        self.default_joints = []
        self.create_subscription(JointState, '/joint_states', self.default_joints.append, 10)
        self._sub(Clock, '/clock', qos.CLOCK)
        self._sub(String, '/pi05_moe/prompt', qos.PROMPT)
        self._sub(Bool, '/sim/success', qos.PROMPT)
        self.commands = self.create_publisher(Float64MultiArray, '/arm_controller/commands',
                                              qos.COMMAND)
        self.trajectory = self.create_publisher(JointTrajectory,
                                                '/arm_controller/joint_trajectory', qos.COMMAND)
        self.reset = self.create_client(Trigger, '/sim_node/reset')

    def _sub(self, msg_type, topic, profile):
        self.create_subscription(msg_type, topic, self.msgs[topic].append, profile)

    def wait_for(self, predicate, timeout_s=20.0):
        deadline = time.monotonic() + timeout_s
        while not predicate():
            assert time.monotonic() < deadline, 'timed out waiting'
            time.sleep(0.05)


@pytest.fixture(scope='module')
def ros():
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=private_domain_id())
    sim = SimNode(context=context, parameter_overrides=[Parameter('seed', value=3)])
    probe = Probe(context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(sim)
    executor.add_node(probe)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    yield sim, probe
    executor.shutdown()
    spinner.join(timeout=10)  # no tick may still be rendering when the renderers are freed
    sim.destroy_node()
    probe.destroy_node()
    rclpy.shutdown(context=context)


def sim_time(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def test_publishes_every_stream_in_the_driver_formats(ros):
    sim, probe = ros
    probe.wait_for(lambda: all(len(probe.msgs[t]) >= 3 for t in IMAGE_TOPICS))
    for stream, (_, topic, info_topic, encoding, frame_id) in STREAMS.items():
        msg = probe.msgs[topic][-1]
        assert (msg.encoding, msg.header.frame_id) == (encoding, frame_id), stream
        probe.wait_for(lambda t=info_topic: probe.msgs[t])
        info = probe.msgs[info_topic][-1]
        assert (info.width, info.height) == (msg.width, msg.height)
        assert info.k[0] > 0 and info.k[0] == info.k[4] and info.p[2] == info.k[2]
    preview = probe.msgs['/thermal/image_color'][-1]
    assert (preview.encoding, preview.width, preview.height) == ('rgb8', 160, 120)
    color, depth, thermal = (probe.msgs[t][-1] for t in
                             ('/l515/color/image_raw', '/l515/depth/image_rect_raw',
                              '/thermal/image_raw'))
    assert (color.width, color.height, thermal.width, thermal.height) == (224, 224, 160, 120)
    depth_mm = np.frombuffer(bytes(depth.data), np.uint16)
    assert 250 <= depth_mm[depth_mm > 0].min() and depth_mm.max() <= 9000
    centi_k = np.frombuffer(bytes(thermal.data), np.uint16)
    assert 28000 < np.median(centi_k) < 31000  # room temperature, centi-kelvin
    assert probe.msgs['/joint_states'][-1].name == list(JOINT_NAMES)


def test_joint_states_are_reliable_as_joint_state_broadcaster_publishes_them(ros):
    sim, probe = ros
    (info,) = probe.get_publishers_info_by_topic('/joint_states')
    assert info.qos_profile.reliability == ReliabilityPolicy.RELIABLE
    probe.wait_for(lambda: len(probe.default_joints) >= 5 and probe.msgs['/joint_states'])
    assert probe.default_joints[-1].name == list(JOINT_NAMES)


def test_rates_follow_sim_time(ros):
    sim, probe = ros
    start = len(probe.msgs['/clock'])
    probe.wait_for(lambda: len(probe.msgs['/clock']) >= start + 100)  # 2 s of sim time
    clock = [c.clock.sec + c.clock.nanosec * 1e-9 for c in probe.msgs['/clock']]
    assert all(b > a for a, b in zip(clock, clock[1:]))
    window = (clock[start], clock[-1])

    def rate(topic):
        stamps = [sim_time(m) for m in probe.msgs[topic] if window[0] <= sim_time(m) <= window[1]]
        return (len(stamps) - 1) / (stamps[-1] - stamps[0])

    # best effort over local DDS rarely drops; allow some slack
    assert 40 <= rate('/joint_states') <= 51
    assert 24 <= rate('/l515/color/image_raw') <= 31
    assert 7 <= rate('/thermal/image_raw') <= 9.5


def test_prompt_is_latched_for_late_subscribers(ros):
    sim, probe = ros
    late = []
    node = Node('late_joiner', context=sim.context)
    node.create_subscription(String, '/pi05_moe/prompt', late.append, qos.PROMPT)
    executor = SingleThreadedExecutor(context=sim.context)
    executor.add_node(node)
    deadline = time.monotonic() + 10
    while not late and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.1)
    node.destroy_node()
    assert late and late[-1].data == sim.robot.task.prompt


def wait_joints_near(probe, target, tol=0.05):
    probe.wait_for(lambda: np.abs(
        np.array(probe.msgs['/joint_states'][-1].position) - target).max() < tol)


def test_follows_array_commands_and_trajectories(ros):
    sim, probe = ros
    target = np.array([0.3, 0.2, 0.1, 0.0, 1.2, 0.2, 0.6])
    probe.commands.publish(Float64MultiArray(data=target.tolist()))
    wait_joints_near(probe, target)
    # a trajectory names joints in its own order; the sim reorders them
    names = list(reversed(JOINT_NAMES))
    target2 = np.array([-0.2, 0.1, 0.3, 0.1, 1.0, -0.1, 0.3])
    point = JointTrajectoryPoint(positions=[float(target2[JOINT_NAMES.index(n)]) for n in names])
    probe.trajectory.publish(JointTrajectory(joint_names=names, points=[point]))
    wait_joints_near(probe, target2)
    probe.commands.publish(Float64MultiArray(data=[1.0, 2.0]))  # wrong length: ignored
    time.sleep(0.3)
    wait_joints_near(probe, target2)


def test_reset_service_starts_an_episode_of_the_parameter_task(ros):
    sim, probe = ros
    sim.set_parameters([Parameter('task', value='lift_hot_cube')])
    assert probe.reset.wait_for_service(timeout_sec=10)
    future = probe.reset.call_async(Trigger.Request())
    probe.wait_for(future.done)
    reply = future.result()
    assert reply.success, reply.message
    assert 'lift the hot cube' in reply.message and 'seed=4' in reply.message
    probe.wait_for(lambda: probe.msgs['/pi05_moe/prompt'][-1].data == 'lift the hot cube')
    assert probe.msgs['/sim/success'] and probe.msgs['/sim/success'][-1].data is False

    sim.set_parameters([Parameter('task', value='juggle')])
    future = probe.reset.call_async(Trigger.Request())
    probe.wait_for(future.done)
    assert not future.result().success and "'juggle'" in future.result().message


def test_executable_exits_cleanly_on_ctrl_c():
    """`sim_node` as its own process: runs, publishes /clock, and exits 0 on SIGINT. A parameter
    no config field declares (here a typo of `seed`) is named in a warning, not ignored."""
    env = dict(os.environ, ROS_DOMAIN_ID=str(private_domain_id()))
    proc = subprocess.Popen([sys.executable, '-m', 'pi05_moe_bringup.sim_node', '--ros-args',
                             '-p', 'sed:=3'], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        context = rclpy.Context()
        rclpy.init(context=context, domain_id=int(env['ROS_DOMAIN_ID']))
        node = Node('clock_listener', context=context)
        ticks = []
        node.create_subscription(Clock, '/clock', ticks.append, qos.CLOCK)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        deadline = time.monotonic() + 30
        while len(ticks) < 10 and time.monotonic() < deadline and proc.poll() is None:
            executor.spin_once(timeout_sec=0.1)
        node.destroy_node()
        rclpy.shutdown(context=context)
        assert len(ticks) >= 10, 'no /clock from the sim_node process'
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output
    assert 'Traceback' not in output and 'EGLError' not in output, output
    assert "ignoring unknown parameter(s) ['sed']: SimConfig has no such field" in output, output
