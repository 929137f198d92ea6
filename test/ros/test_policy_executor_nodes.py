"""policy_node + executor_node as a real graph (`pi05-moe up`, separate processes, Fast DDS).

A probe node in the test process publishes three synthetic cameras, joint states and a prompt
(and, for the sim-time test, /clock) and records what the graph publishes. The policy runs
``preset:tiny`` with random weights, so the tests check shapes, stamps, rates, limits, holds and
warnings, not the quality of the actions.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, Header, String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from pi05_moe_msgs.msg import ActionChunk, RoutingWeights
from pi05_moe_policy.core.image_codec import numpy_to_image
from pi05_moe_policy.nodes import qos
from pi05_moe_policy.nodes.config import ExecutorNodeConfig, PolicyNodeConfig
from pi05_moe_policy.nodes.msg_convert import make_action_chunk, sec_to_stamp, stamp_to_sec

JOINTS = ['waist', 'shoulder', 'elbow', 'forearm_roll', 'wrist_pitch', 'wrist_roll', 'gripper']
CAMERAS = {'wrist': '/wrist/image_raw', 'l515': '/l515/color/image_raw',
           'thermal': '/thermal/image_raw'}
# stale_timeout above the default 0.5 s: tiny's inference takes 0.3 s+ on this shared 2-core CPU.
LIMIT, VMAX, STALE, HZ = 0.3, 2.0, 0.8, 50.0
POLICY = dict(checkpoint='preset:tiny', num_threads=1, joint_names=JOINTS, max_inference_hz=8.0,
              warn_period=1.0, diagnostics_period=0.5)
EXECUTOR = dict(control_hz=HZ, mode='ensemble', joint_names=JOINTS, lower_limits=[-LIMIT],
                upper_limits=[LIMIT], max_velocity=[VMAX], stale_timeout=STALE, warn_period=1.0,
                diagnostics_period=0.5)
# Reliable with a deep queue: a probe starved of CPU for a moment must not lose commands.
DEEP = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
COMMANDS = '/arm_controller/commands'
PREVIEW = '/pi05_moe/command_preview'


def write_graph(path, use_sim_time: bool, policy=None, executor=None):
    """A bringup config for the two nodes; the parameters go through the config dataclasses
    first, so a misspelt name fails here instead of being ignored by ROS."""
    policy, executor = {**POLICY, **(policy or {})}, {**EXECUTOR, **(executor or {})}
    PolicyNodeConfig(**policy)
    ExecutorNodeConfig(**executor)
    graph = {
        'pi05_moe_graph': {
            'description': 'policy + executor under test', 'use_sim_time': use_sim_time,
            'nodes': {name: {'package': 'pi05_moe_policy', 'executable': name}
                      for name in ('policy_node', 'executor_node')}},
        'policy_node': {'ros__parameters': policy},
        'executor_node': {'ros__parameters': executor},
    }
    path.write_text(yaml.safe_dump(graph))
    return path


class Probe:
    """Publishes the robot's inputs at 20 Hz and records the graph's outputs with arrival times.

    With ``sim_clock``, it also publishes /clock (200 Hz, at ``rate`` x wall time from 1000 s)
    and stamps every input with that sim time.
    """

    def __init__(self, ros, sim_clock: bool = False, rate: float = 1.0):
        self.node = node = ros.node('graph_probe')
        self.cameras_on = self.joints_on = True
        self.sim_clock = sim_clock
        self.sim_time, self.sim_rate, self.frozen = 1000.0, rate, False
        self._last_wall = time.monotonic()
        self._lock = threading.Lock()
        self.sent_stamps: set[tuple[int, int]] = set()  # (sec, nanosec) of every input
        self.got: dict[str, list[tuple[float, object]]] = {}
        self.image_pubs = {n: node.create_publisher(Image, t, qos.SENSOR)
                           for n, t in CAMERAS.items()}
        self.joint_pub = node.create_publisher(JointState, '/joint_states', qos.SENSOR)
        self.prompt_pub = node.create_publisher(String, '/pi05_moe/prompt', qos.PROMPT)
        self.chunk_pub = node.create_publisher(ActionChunk, '/pi05_moe/action_chunk',
                                               qos.COMMAND)
        self.clock_pub = node.create_publisher(Clock, '/clock', qos.CLOCK)
        for msg_type, topic, profile in (
                (ActionChunk, '/pi05_moe/action_chunk', qos.COMMAND),
                (RoutingWeights, '/pi05_moe/routing', qos.STATUS),
                (Float64MultiArray, COMMANDS, DEEP),
                (Float64MultiArray, PREVIEW, DEEP),
                (DiagnosticArray, '/diagnostics', qos.STATUS)):
            self.got[topic] = []
            node.create_subscription(msg_type, topic, self._recorder(topic), profile)
        self.enable = node.create_client(SetBool, '/executor_node/enable')
        self.prompt_pub.publish(String(data='lift the red cube'))
        rgb = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
        self.frames = {'wrist': (rgb, 'rgb8'), 'l515': (rgb[::-1].copy(), 'rgb8'),
                       'thermal': (np.full((60, 80), 30315, np.uint16), 'mono16')}
        if sim_clock:
            node.create_timer(0.005, self._tick_clock)
        node.create_timer(0.05, self._publish_inputs)

    def _recorder(self, topic):
        def record(msg):
            with self._lock:
                self.got[topic].append((time.monotonic(), self.now(), msg))
        return record

    def now(self) -> float:
        if self.sim_clock:
            return self.sim_time
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _tick_clock(self):
        wall = time.monotonic()
        if not self.frozen:
            self.sim_time += (wall - self._last_wall) * self.sim_rate
        self._last_wall = wall
        self.clock_pub.publish(Clock(clock=sec_to_stamp(self.sim_time)))

    def _publish_inputs(self):
        t = self.now()
        stamp = sec_to_stamp(t)
        if self.cameras_on:
            for name, (array, encoding) in self.frames.items():
                msg = numpy_to_image(array, encoding, Image(), CAMERAS[name])
                msg.header.stamp = stamp
                self.image_pubs[name].publish(msg)
        if self.joints_on:
            self.publish_joints(JOINTS, [0.1 * i for i in range(len(JOINTS))], stamp)
        with self._lock:
            self.sent_stamps.add((stamp.sec, stamp.nanosec))

    def publish_joints(self, names, positions, stamp=None):
        msg = JointState(name=list(names), position=[float(p) for p in positions])
        msg.header.stamp = stamp or sec_to_stamp(self.now())
        self.joint_pub.publish(msg)

    def publish_image(self, camera, array, encoding):
        msg = Image(height=array.shape[0], width=array.shape[1], encoding=encoding,
                    step=array.strides[0], data=array.tobytes())
        msg.header.stamp = sec_to_stamp(self.now())
        self.image_pubs[camera].publish(msg)

    def messages(self, topic, since: float = 0.0):
        """(arrival time, msg) pairs on ``topic`` that arrived after ``since`` (monotonic)."""
        with self._lock:
            return [(t, m) for t, _, m in self.got[topic] if t > since]

    def arrivals(self, topic, since: float = 0.0):
        """(arrival time on the ROS clock, msg) pairs on ``topic`` that arrived after ``since``
        (ROS time: the graph's clock, wall or sim)."""
        with self._lock:
            return [(t, m) for _, t, m in self.got[topic] if t > since]

    def diagnostics(self, name_prefix, since: float = 0.0):
        """(arrival time, header stamp s, DiagnosticStatus) of one node's diagnostics."""
        return [(t, stamp_to_sec(m.header.stamp), s)
                for t, m in self.messages('/diagnostics', since) for s in m.status
                if s.name.startswith(name_prefix)]


def start_graph(spawn, tmp_path, use_sim_time=False, policy=None, executor=None):
    config = write_graph(tmp_path / 'graph.yaml', use_sim_time, policy, executor)
    graph = spawn(['pi05-moe', 'up', str(config), '--no-color'])
    graph.wait_for(r'\[policy_node\]: preset:tiny: cameras', timeout=60)
    mode = (executor or {}).get('mode', 'ensemble')
    graph.wait_for(rf'\[executor_node\]: 50 Hz, mode {mode}', timeout=10)
    return graph


def assert_graph_alive(graph):
    assert graph.alive, '\n'.join(graph.lines[-40:])
    assert not graph.matching(r'^\[up\].*(exited|error)'), '\n'.join(graph.lines[-40:])


@pytest.fixture(scope='class')
def wall_graph(ros, spawn, tmp_path_factory):
    graph = start_graph(spawn, tmp_path_factory.mktemp('wall'))
    probe = Probe(ros)
    yield graph, probe
    ros.remove(probe.node)
    code = graph.stop()
    print('\n'.join(graph.lines))  # shown by pytest when a test of the class failed
    assert code == 0


@pytest.mark.timeout(120)
class TestWallClockGraph:
    def test_chunks_routing_and_enabled_commands(self, wall_graph, ros, wait_until):
        graph, probe = wall_graph
        wait_until(lambda: len(probe.messages('/pi05_moe/action_chunk')) >= 3, 60,
                   'three action chunks')
        received, chunk = probe.messages('/pi05_moe/action_chunk')[-1]
        assert list(chunk.joint_names) == JOINTS
        assert (chunk.horizon, chunk.action_dim, chunk.period) == (50, len(JOINTS), 0.02)
        assert len(chunk.actions) == 50 * len(JOINTS) and np.isfinite(chunk.actions).all()
        assert chunk.prompt == 'lift the red cube'
        # Stamped with an observation time: one of the probe's input stamps, not a later one.
        assert (chunk.header.stamp.sec, chunk.header.stamp.nanosec) in probe.sent_stamps
        routing = {m.chunk_id: m for _, m in probe.messages('/pi05_moe/routing')}
        assert routing, 'no RoutingWeights'
        for r in routing.values():
            assert list(r.expert_names) == ['l515', 'thermal'] and list(r.present) == [1, 1]
            assert math.isclose(sum(r.weights), 1.0, abs_tol=1e-5)
            assert r.base_camera == 'wrist'
        chunk_ids = {m.chunk_id for _, m in probe.messages('/pi05_moe/action_chunk')}
        assert set(routing) <= chunk_ids

        # Disabled by default: a preview, nothing for the controller.
        wait_until(lambda: len(probe.messages(PREVIEW)) >= 10, 10, 'preview commands')
        assert probe.messages(COMMANDS) == []
        response = ros.call(probe.enable, SetBool.Request(data=True))
        assert response.success and COMMANDS in response.message
        t_enabled = time.monotonic()
        time.sleep(3.0)
        window = [(t, np.array(m.data)) for t, m in probe.messages(COMMANDS, t_enabled + 0.5)]
        assert not probe.messages(PREVIEW, t_enabled + 0.5), 'preview kept going after enable'
        times = np.array([t for t, _ in window])
        rate = (len(times) - 1) / (times[-1] - times[0])
        assert 45.0 <= rate <= 55.0, f'{rate:.1f} Hz'
        commands = np.stack([c for _, c in window])  # (N, D)
        assert commands.shape[1] == len(JOINTS)
        assert np.all(np.abs(commands) <= LIMIT + 1e-12)
        assert np.all(np.abs(np.diff(commands, axis=0)) <= VMAX / HZ + 1e-9)
        assert np.ptp(commands, axis=0).max() > 0, 'the commands never moved'
        executor = probe.diagnostics('executor_node')[-1][2]
        values = {kv.key: kv.value for kv in executor.values}
        assert values['enabled'] == 'True' and int(values['executed']) > 0
        assert 0.0 <= float(values['chunk_age_s']) < STALE + 0.5
        policy = {kv.key: kv.value for kv in probe.diagnostics('policy_node')[-1][2].values}
        for camera in CAMERAS:  # the probe publishes each camera at 20 Hz
            assert 10.0 < float(policy[f'rate_hz_{camera}']) < 30.0, policy
        assert float(policy['inference_ms_p50']) > 0 and int(policy['chunks_published']) >= 3

    def test_cameras_stopping_makes_policy_skip_and_executor_hold(self, wall_graph,
                                                                  wait_until):
        graph, probe = wall_graph
        since_line = graph.mark()
        probe.cameras_on = False
        graph.wait_for(r'\[WARN\].*\[policy_node\]: skipping inference: /wrist/image_raw.*'
                       r'(max_age|max_skew)', timeout=5, since=since_line)
        # An inference already running when the cameras stopped may still deliver a chunk:
        # wait until the policy has been quiet for a second.
        wait_until(lambda: time.monotonic() - max(
            [t for t, _ in probe.messages('/pi05_moe/action_chunk')] or [0]) > 1.0, 10,
                   'the policy to stop publishing')
        newest = max(stamp_to_sec(m.header.stamp)
                     for _, m in probe.messages('/pi05_moe/action_chunk'))
        # The watchdog holds from the first tick after newest + stale_timeout: every command
        # sent later than one more control period (+ 50 ms for delivery and timer lateness on
        # this shared CPU) is the same held command.
        wait_until(lambda: probe.now() > newest + STALE + 1.0 / HZ + 0.5, 5, 'time to pass')
        held = [np.array(m.data) for t, m in probe.arrivals(COMMANDS)
                if t > newest + STALE + 1.0 / HZ + 0.05]
        assert len(held) >= 10 and all(np.array_equal(c, held[0]) for c in held)
        assert probe.diagnostics('executor_node')[-1][2].message == 'hold_stale'
        values = {kv.key: kv.value for kv in probe.diagnostics('policy_node')[-1][2].values}
        assert int(values['skipped_stale']) + int(values['skipped_skew']) > 0
        probe.cameras_on = True
        t_back = time.monotonic()
        wait_until(lambda: probe.messages('/pi05_moe/action_chunk', t_back), 20,
                   'chunks after the cameras came back')

    def test_bad_input_warns_and_nodes_keep_running(self, wall_graph, wait_until):
        graph, probe = wall_graph
        since_line = graph.mark()
        nan = [0.0] * len(JOINTS)
        nan[3] = float('nan')
        bad_chunk = ActionChunk(chunk_id=999, joint_names=JOINTS, horizon=2,
                                action_dim=len(JOINTS), period=0.02,
                                actions=[float('nan')] * (2 * len(JOINTS)))
        bad_chunk.header.stamp = sec_to_stamp(probe.now())
        for _ in range(5):
            probe.publish_joints(JOINTS, nan)
            probe.publish_joints([*JOINTS, 'mystery_joint'], range(len(JOINTS) + 1))
            probe.publish_image('wrist', np.zeros((32, 32, 2), np.uint8), 'yuv422')
            probe.publish_image('thermal', np.zeros((32, 32, 3), np.uint8), 'rgb8')
            probe.publish_image('l515', np.zeros((1, 1, 3), np.uint8), 'rgb8')
            probe.prompt_pub.publish(String(data=('lift the red cube ' * 600)[:10_000]))
            probe.chunk_pub.publish(bad_chunk)
            time.sleep(0.05)
        for pattern in (
                r"\[policy_node\]: /joint_states: dropping message with NaN/inf positions for "
                r"\['forearm_roll'\]",
                r"\[policy_node\]: /joint_states: ignoring joints not in joint_names: "
                r"\['mystery_joint'\]",
                r"\[policy_node\]: dropping frame: /wrist/image_raw: unsupported image encoding "
                r"'yuv422'",
                r"\[policy_node\]: dropping frame: /thermal/image_raw: encoding 'rgb8' does not "
                r"fit a thermal camera",
                r'\[policy_node\]: dropping frame: /l515/color/image_raw: rgb8 image of 1x1 is '
                r'smaller than min_image_size',
                r'\[policy_node\]: /pi05_moe/prompt: prompt of 10000 characters cut to '
                r'max_prompt_chars 512',
                r'\[executor_node\]: rejecting chunk 999: .*NaN',
                r'\[executor_node\]: /joint_states: missing \[\], NaN/inf \[.forearm_roll.\]'):
            graph.wait_for(r'\[WARN\].*' + pattern, timeout=10, since=since_line)
        probe.prompt_pub.publish(String(data='lift the red cube'))
        t_after = time.monotonic()
        wait_until(lambda: probe.messages('/pi05_moe/action_chunk', t_after), 20,
                   'a chunk after the bad input')
        wait_until(lambda: probe.messages(COMMANDS, t_after), 5, 'commands after the bad input')
        assert_graph_alive(graph)


@pytest.mark.timeout(120)
def test_stamps_and_staleness_follow_sim_time(ros, spawn, tmp_path, wait_until):
    """Under use_sim_time with a test-published /clock at half speed, frozen, then jumping."""
    probe = Probe(ros, sim_clock=True, rate=0.5)
    graph = start_graph(spawn, tmp_path, use_sim_time=True)
    try:
        wait_until(lambda: len(probe.messages('/pi05_moe/action_chunk')) >= 3, 60,
                   'three action chunks on sim time')
        _, chunk = probe.messages('/pi05_moe/action_chunk')[-1]
        assert 1000.0 < stamp_to_sec(chunk.header.stamp) <= probe.sim_time
        assert (chunk.header.stamp.sec, chunk.header.stamp.nanosec) in probe.sent_stamps
        # 50 Hz of *sim* time is 25 Hz of wall time at rate 0.5.
        sim0, t0 = probe.sim_time, time.monotonic()
        time.sleep(2.0)
        n = len(probe.messages(PREVIEW, t0))
        per_sim_second = n / (probe.sim_time - sim0)
        assert 40.0 <= per_sim_second <= 60.0, per_sim_second
        assert n / (time.monotonic() - t0) < 35.0  # clearly not 50 Hz of wall time

        # Frozen clock: nothing ages, so nothing goes stale however long the wall clock runs;
        # the control timer does not fire either.
        probe.frozen = True
        probe.cameras_on = probe.joints_on = False
        time.sleep(0.3)
        frozen_at, mark = time.monotonic(), graph.mark()
        time.sleep(1.5)
        assert probe.messages(PREVIEW, frozen_at) == []
        assert not [h for h in probe.diagnostics('executor_node', frozen_at)
                    if h[2].message == 'hold_stale']
        assert not graph.matching(r'skipping inference', since=mark)

        # A 2 s jump of sim time: the newest chunk and every input are now stale.
        jump_from = probe.sim_time
        probe.sim_time += 2.0
        probe.frozen = False
        holds = wait_until(lambda: [h for h in probe.diagnostics('executor_node', frozen_at)
                                    if h[2].message == 'hold_stale'], 10, 'a hold after the jump')
        assert holds[0][1] >= jump_from + 2.0  # reported at a sim time after the jump
        graph.wait_for(r'\[policy_node\]: skipping inference: /wrist/image_raw: newest message '
                       r'is 2\.\d+ s old', timeout=10, since=mark)

        # The clock going back (a bag or simulator restart) resets both nodes, and they run on.
        probe.sim_time = 500.0
        probe.cameras_on = probe.joints_on = True
        graph.wait_for(r'\[executor_node\]: clock went back from 10\d\d\.\d+ s to 50\d\.',
                       timeout=10, since=mark)
        graph.wait_for(r'\[policy_node\]: skipping inference: node clock went back', timeout=10,
                       since=mark)
        t_back = time.monotonic()
        wait_until(lambda: probe.messages('/pi05_moe/action_chunk', t_back), 30,
                   'chunks after the clock went back')
        _, chunk = probe.messages('/pi05_moe/action_chunk', t_back)[-1]
        assert 500.0 < stamp_to_sec(chunk.header.stamp) < 600.0
        assert_graph_alive(graph)
    finally:
        ros.remove(probe.node)
        assert graph.stop() == 0


@pytest.mark.timeout(60)
def test_executor_alone_joint_trajectory_output_and_reset(ros, spawn, tmp_path, wait_until):
    """The console script with --params-file; JointTrajectory output; ~/reset re-seeds."""
    params = dict(EXECUTOR, output='joint_trajectory', controller='arm', enabled=True,
                  mode='latest')
    ExecutorNodeConfig(**params)
    path = tmp_path / 'executor.yaml'
    path.write_text(yaml.safe_dump({'executor_node': {'ros__parameters': params}}))
    node = ros.node('trajectory_probe')
    got: list[JointTrajectory] = []
    node.create_subscription(JointTrajectory, '/arm/joint_trajectory', got.append, qos.COMMAND)
    diagnostics: list[DiagnosticArray] = []
    node.create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append, qos.STATUS)
    joints = node.create_publisher(JointState, '/joint_states', qos.SENSOR)
    chunks = node.create_publisher(ActionChunk, '/pi05_moe/action_chunk', qos.COMMAND)
    reset = node.create_client(Trigger, '/executor_node/reset')
    measured = [0.1 * i for i in range(len(JOINTS))]  # the last three beyond LIMIT

    def publish_joints():
        stamp = node.get_clock().now().to_msg()
        joints.publish(JointState(header=Header(stamp=stamp), name=JOINTS, position=measured))

    node.create_timer(0.05, publish_joints)
    proc = spawn(['executor_node', '--ros-args', '--params-file', str(path)])
    try:
        proc.wait_for(r'\[executor_node\]: 50 Hz, mode latest, actuation ENABLED -> '
                      r'/arm/joint_trajectory', timeout=20)
        wait_until(lambda: chunks.get_subscription_count() > 0, 10, 'the executor to subscribe')
        time.sleep(0.5)  # let discovery finish on both sides: a volatile message is not resent
        target = np.float32(0.25)
        chunks.publish(make_action_chunk(node.get_clock().now().to_msg(), 1, JOINTS,
                                         np.full((200, len(JOINTS)), target), 0.02, 0.0, 'test',
                                         {}))
        wait_until(lambda: got and np.allclose(got[-1].points[0].positions, target), 10,
                   'the commands to reach the chunk\'s target')
        msg = got[-1]
        assert list(msg.joint_names) == JOINTS and len(msg.points) == 1
        duration = msg.points[0].time_from_start
        assert (duration.sec, duration.nanosec) == (0, 20_000_000)
        positions = np.array([list(m.points[0].positions) for m in got])  # (N, D)
        assert np.all(np.abs(positions) <= LIMIT + 1e-12)
        assert np.all(np.abs(np.diff(positions, axis=0)) <= VMAX / HZ + 1e-9)
        response = ros.call(reset, Trigger.Request())
        assert response.success
        n_diagnostics = len(diagnostics)
        # Reset drops the chunk and holds the measured position (clamped to the limits).
        wait_until(lambda: np.allclose(got[-1].points[0].positions,
                                       np.clip(measured, -LIMIT, LIMIT)), 5,
                   'the measured position held after reset')
        wait_until(lambda: diagnostics[-1].status[0].message == 'hold_no_chunk'
                   and len(diagnostics) > n_diagnostics, 5, 'a hold_no_chunk report')
        assert proc.alive
    finally:
        assert proc.stop() == 0
        ros.remove(node)


def _prefix_gaps(chunks):
    """For consecutive chunks: how far each one's first row is from the row of the one before
    that ran at its observation time (max over joints)."""
    gaps = []
    for prev, new in zip(chunks[:-1], chunks[1:]):
        a_prev = np.asarray(prev.actions).reshape(prev.horizon, prev.action_dim)
        a_new = np.asarray(new.actions).reshape(new.horizon, new.action_dim)
        shift = round((stamp_to_sec(new.header.stamp) - stamp_to_sec(prev.header.stamp))
                      / prev.period)
        assert 0 <= shift < prev.horizon
        gaps.append(float(np.abs(a_new[0] - a_prev[shift]).max()))
    return gaps


@pytest.mark.timeout(150)
def test_rtc_chunks_agree_with_the_previous_chunk_only_while_the_executor_runs_them(
        ros, spawn, tmp_path, wait_until):
    """policy_node rtc:=true with the executor in mode rtc and enabled, on a slow sim clock
    (0.05 x wall, so an inference spans a few 20 ms rows of sim time): each chunk starts on
    the rows of the one before that the executor was still running. Once the executor is
    disabled (its diagnostics say so at once), nothing runs those rows, and the chunks come
    without a prefix: random-init chunks from different noise, ~3.6 rad apart."""
    probe = Probe(ros, sim_clock=True, rate=0.05)
    graph = start_graph(spawn, tmp_path, use_sim_time=True, policy={'rtc': True},
                        executor={'mode': 'rtc', 'enabled': True})
    def executing_since():  # when the executor first reported running a chunk
        times = [t for t, _, st in probe.diagnostics('executor_node') if st.message == 'ok']
        return times[0] if times else None

    try:
        wait_until(lambda: executing_since() is not None, 90, 'the executor running a chunk')
        t_on = executing_since() + 1.0  # chunks inferred before that had no prefix
        wait_until(lambda: len(probe.messages('/pi05_moe/action_chunk', t_on)) >= 4, 60,
                   'four action chunks')
        chunks = [m for _, m in probe.messages('/pi05_moe/action_chunk', t_on)]
        gaps = _prefix_gaps(chunks[1:])  # the first may have started before the report
        assert max(gaps) < 0.1, gaps
        response = ros.call(probe.enable, SetBool.Request(data=False))
        assert response.success, response.message
        t_off = time.monotonic() + 1.0  # a chunk in flight may still have had its prefix
        wait_until(lambda: len(probe.messages('/pi05_moe/action_chunk', t_off)) >= 3, 60,
                   'three action chunks after disabling the executor')
        after = [m for _, m in probe.messages('/pi05_moe/action_chunk', t_off)]
        gaps = _prefix_gaps(after)
        assert min(gaps) > 0.1, gaps
        assert_graph_alive(graph)
    finally:
        ros.remove(probe.node)
        assert graph.stop() == 0


def _inference_children(pid_file_pattern: str = 'pi05_moe_policy.inference_process'):
    """PIDs of running inference child processes (their command line names the module)."""
    pids = []
    for cmdline in Path('/proc').glob('[0-9]*/cmdline'):
        try:
            if pid_file_pattern in cmdline.read_bytes().decode(errors='replace'):
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue
    return pids


@pytest.mark.timeout(120)
def test_inference_process_serves_chunks_and_ends_with_the_node(ros, spawn, tmp_path,
                                                                wait_until):
    """policy_node inference_process:=true: the model runs in a child process; chunks and
    routing come out as in-process, and Ctrl-C ends node and child (exit code 0)."""
    before = set(_inference_children())
    probe = Probe(ros)
    graph = start_graph(spawn, tmp_path, policy={'inference_process': True})
    try:
        wait_until(lambda: len(probe.messages('/pi05_moe/action_chunk')) >= 3, 60,
                   'three action chunks')
        children = set(_inference_children()) - before
        assert len(children) == 1, children
        chunk = probe.messages('/pi05_moe/action_chunk')[-1][1]
        assert (chunk.horizon, chunk.action_dim) == (50, len(JOINTS))
        assert np.isfinite(chunk.actions).all()
        assert (chunk.header.stamp.sec, chunk.header.stamp.nanosec) in probe.sent_stamps
        assert probe.messages('/pi05_moe/routing')
        assert_graph_alive(graph)
    finally:
        ros.remove(probe.node)
        start = time.monotonic()
        assert graph.stop() == 0
    assert time.monotonic() - start < 10.0
    wait_until(lambda: not (set(_inference_children()) & children), 5,
               'the inference child to end')
