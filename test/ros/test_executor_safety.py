"""executor_node against hostile chunks, over DDS (issue #17 items 1-4, its fuzz test; #15's
watchdog rule).

Each test starts the real ``executor_node`` console script with a params file, and a probe node
in the test process publishes joint states and ActionChunks and records every command. The
commands are checked where a robot would feel them: within the joint limits, within the
velocity limit from one tick to the next (preview and controller topics are one stream), and
held once nothing valid covers now.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, Header
from std_srvs.srv import SetBool, Trigger

from pi05_moe_msgs.msg import ActionChunk
from pi05_moe_policy.nodes import qos
from pi05_moe_policy.nodes.config import ExecutorNodeConfig
from pi05_moe_policy.nodes.msg_convert import make_action_chunk, sec_to_stamp

JOINTS = ['waist', 'shoulder', 'elbow', 'forearm_roll', 'wrist_pitch', 'wrist_roll', 'gripper']
D = len(JOINTS)
LIMIT, VMAX, STALE, HZ = 1.0, 1.5, 0.5, 50.0
DT = 1.0 / HZ
EXECUTOR = dict(control_hz=HZ, mode='ensemble', ensemble_k=1.0, joint_names=JOINTS,
                lower_limits=[-LIMIT], upper_limits=[LIMIT], max_velocity=[VMAX],
                stale_timeout=STALE, warn_period=1.0, diagnostics_period=0.5, enabled=True)
DEEP = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
COMMANDS, PREVIEW = '/arm_controller/commands', '/pi05_moe/command_preview'


class Probe:
    """Joint states at 20 Hz (``measured``, while ``joints_on``); chunks; every command with its
    arrival time on the (wall) ROS clock, preview and controller topics in one list."""

    def __init__(self, ros):
        self.node = node = ros.node('executor_probe')
        self.measured, self.joints_on = np.zeros(D), True
        self._lock = threading.Lock()
        self.commands: list[tuple[float, str, np.ndarray]] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.joint_pub = node.create_publisher(JointState, '/joint_states', qos.SENSOR)
        self.chunk_pub = node.create_publisher(ActionChunk, '/pi05_moe/action_chunk',
                                               qos.COMMAND)
        for topic in (COMMANDS, PREVIEW):
            node.create_subscription(Float64MultiArray, topic, self._recorder(topic), DEEP)
        node.create_subscription(DiagnosticArray, '/diagnostics', self.diagnostics.append,
                                 qos.STATUS)
        self.enable = node.create_client(SetBool, '/executor_node/enable')
        self.reset = node.create_client(Trigger, '/executor_node/reset')
        node.create_timer(0.05, self._publish_joints)

    def _recorder(self, topic):
        def record(msg):
            with self._lock:
                self.commands.append((self.now(), topic, np.array(msg.data)))
        return record

    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _publish_joints(self):
        if self.joints_on:
            self.joint_pub.publish(JointState(header=Header(stamp=sec_to_stamp(self.now())),
                                              name=JOINTS, position=list(self.measured)))

    def chunk(self, actions, stamp=None, names=JOINTS, period=DT, chunk_id=1):
        """Publish a chunk of ``actions`` (H, len(names)) stamped ``stamp`` (default: now)."""
        stamp = self.now() if stamp is None else stamp
        self.chunk_pub.publish(make_action_chunk(sec_to_stamp(stamp), chunk_id, names,
                                                 np.asarray(actions), period, 0.0, 'test', {}))
        return stamp

    def since(self, t: float, topic: str | None = None) -> list[tuple[float, np.ndarray]]:
        with self._lock:
            return [(a, c) for a, tp, c in self.commands if a > t and topic in (None, tp)]

    def last_command(self) -> np.ndarray:
        with self._lock:
            return self.commands[-1][2]


def start_executor(spawn, ros, tmp_path, wait_until, **overrides):
    params = dict(EXECUTOR, **overrides)
    ExecutorNodeConfig(**params)  # a misspelt parameter fails here, not silently in ROS
    path = tmp_path / 'executor.yaml'
    path.write_text(yaml.safe_dump({'executor_node': {'ros__parameters': params}}))
    probe = Probe(ros)
    proc = spawn(['executor_node', '--ros-args', '--params-file', str(path)])
    proc.wait_for(r'\[executor_node\]: 50 Hz, mode', timeout=20)
    wait_until(lambda: probe.chunk_pub.get_subscription_count() > 0, 10, 'the subscription')
    wait_until(lambda: len(probe.since(0.0)) > 5, 10, 'commands', process=proc)
    time.sleep(0.3)  # discovery on both sides: a volatile message is not resent
    return proc, probe


@pytest.fixture
def executor(spawn_each, ros, tmp_path, wait_until):
    made = []

    def make(**overrides):
        proc, probe = start_executor(spawn_each, ros, tmp_path, wait_until, **overrides)
        made.append((proc, probe))
        return proc, probe

    yield make
    for proc, probe in made:
        ros.remove(probe.node)
        code = proc.stop()
        print('\n'.join(proc.lines))  # shown by pytest when the test failed
        assert code == 0


def assert_safe(commands, dt=DT):
    """Finite, within the limits, and never more than the velocity limit from tick to tick."""
    c = np.stack([x for _, x in commands])  # (N, D)
    assert np.isfinite(c).all()
    assert np.all(np.abs(c) <= LIMIT + 1e-12), np.abs(c).max()
    steps = np.abs(np.diff(c, axis=0)).max(initial=0.0)
    assert steps <= VMAX * dt + 1e-9, f'a step of {steps:.4f} > {VMAX * dt:.4f}'


def assert_held_after(probe, t_end, wait_until):
    """Every command later than one control period (+ 50 ms delivery) after ``t_end`` is the
    same held command."""
    wait_until(lambda: probe.now() > t_end + 0.8, 5, 'time to pass')
    held = [c for _, c in probe.since(t_end + DT + 0.05)]
    assert len(held) >= 10 and all(np.array_equal(c, held[0]) for c in held), (
        np.ptp(np.stack(held), axis=0))


@pytest.mark.timeout(60)
def test_refuses_to_start_without_joint_names_for_a_nameless_output(spawn_each, tmp_path):
    path = tmp_path / 'executor.yaml'
    path.write_text(yaml.safe_dump({'executor_node': {'ros__parameters': {'output':
                                                                          'commands'}}}))
    proc = spawn_each(['executor_node', '--ros-args', '--params-file', str(path)])
    proc.wait_for(r'\[FATAL\].*joint_names=\[\]: expected the controller\'s joint order',
                  timeout=20)
    assert proc.proc.wait(timeout=10) == 1


@pytest.mark.timeout(60)
def test_a_future_stamped_chunk_is_rejected_and_the_watchdog_still_holds(executor, wait_until):
    proc, probe = executor()
    mark = proc.mark()
    probe.chunk(np.full((50, D), 0.9), stamp=probe.now() + 8.0, chunk_id=7)  # issue #17, item 1
    proc.wait_for(r'\[WARN\].*rejecting chunk 7: .*stamped \+[78]\.\d+ s from now', timeout=5,
                  since=mark)
    rows = 0.1 + 0.005 * np.arange(50)[:, None].repeat(D, axis=1)  # (50, D): still moving
    for _ in range(5):  # then normal chunks, then silence
        last = probe.chunk(rows)
        time.sleep(0.1)
    assert_held_after(probe, last + STALE, wait_until)  # stale_timeout < 50 x 0.02 s
    time.sleep(1.0)
    assert_safe(probe.since(0.0))
    assert np.abs(probe.last_command()).max() < 0.4  # never went to 0.9
    ages = [float(kv.value) for m in probe.diagnostics for s in m.status for kv in s.values
            if kv.key == 'chunk_age_s' and kv.value != 'none']
    assert ages and min(ages) >= 0.0


@pytest.mark.timeout(60)
def test_joint_order_comes_from_the_config(executor, wait_until):
    proc, probe = executor(max_velocity=[100.0])
    mark = proc.mark()
    target = np.linspace(-0.6, 0.6, D)  # (D,) in JOINTS order
    probe.chunk(np.tile(target[::-1], (200, 1)), names=JOINTS[::-1])  # reversed: reordered
    wait_until(lambda: np.allclose(probe.last_command(), target), 5, 'the reordered target')
    probe.chunk(np.zeros((200, D)), names=['mystery', *JOINTS[1:]], chunk_id=8)
    proc.wait_for(r'\[WARN\].*rejecting chunk 8: .*unknown \[.mystery.\], missing \[.waist.\]',
                  timeout=5, since=mark)
    time.sleep(1.1)  # warn_period: the same problem is not logged twice within it
    probe.chunk(np.zeros((200, D - 1)), names=JOINTS[1:], chunk_id=9)
    proc.wait_for(r'rejecting chunk 9: .*missing \[.waist.\]', timeout=5, since=mark)
    time.sleep(0.3)
    assert np.allclose(probe.last_command(), target)  # neither was used ...
    probe.chunk(np.full((200, D), 0.2))  # ... nor locked the executor
    wait_until(lambda: np.allclose(probe.last_command(), 0.2), 5, 'a good chunk after them')


@pytest.mark.timeout(60)
def test_a_chunk_with_a_huge_period_cannot_take_over(executor, wait_until):
    proc, probe = executor(max_velocity=[100.0])
    mark = proc.mark()
    probe.chunk(np.full((2, D), 0.38), period=1e6, chunk_id=5)  # issue #17, item 3
    proc.wait_for(r'rejecting chunk 5: .*period 1000000\.0 s outside', timeout=5, since=mark)
    t0 = probe.now()
    for _ in range(5):
        probe.chunk(np.zeros((50, D)))
        time.sleep(0.1)
    window = probe.since(t0 + 0.1)
    assert window and all(np.abs(c).max() < 1e-9 for _, c in window)


@pytest.mark.timeout(90)
def test_enable_and_reset_ramp_and_enable_needs_fresh_joint_states(executor, ros, wait_until):
    proc, probe = executor(enabled=False, stale_timeout=5.0)
    probe.chunk(np.full((500, D), 0.997))  # 10 s of 0.997 rad
    wait_until(lambda: np.allclose(probe.last_command(), 0.997), 5, 'the preview to get there')
    # Stale joint states: enabling is refused (issue #17, item 4).
    probe.joints_on = False
    time.sleep(0.8)
    response = ros.call(probe.enable, SetBool.Request(data=True))
    assert not response.success and 'refusing to enable' in response.message
    assert 's old (joint_state_max_age 0.5 s)' in response.message
    time.sleep(0.2)
    assert not probe.since(0.0, COMMANDS)
    # Fresh joint states somewhere else (0 rad): enabled, and the commands start there (the
    # previews reached no controller), then move toward the chunk within the velocity limit.
    probe.joints_on = True
    time.sleep(0.3)
    t_enable = probe.now()
    assert ros.call(probe.enable, SetBool.Request(data=True)).success
    wait_until(lambda: len(probe.since(t_enable, COMMANDS)) >= 5, 5, 'enabled commands')
    first = probe.since(t_enable, COMMANDS)[0][1]
    assert np.abs(first).max() <= VMAX * DT + 1e-9, first  # from the measured 0 rad
    t_reset = probe.now()
    assert ros.call(probe.reset, Trigger.Request()).success  # chunks dropped: back to 0
    wait_until(lambda: np.allclose(probe.last_command(), 0.0), 5, 'the ramp to the measured')
    assert probe.since(t_reset, COMMANDS)
    assert_safe(probe.since(t_enable, COMMANDS))


@pytest.mark.timeout(120)
def test_fuzzed_chunks_never_make_unsafe_commands(executor, wait_until):
    """Random well-typed chunks for 15 s (fixed seed), interleaved with valid ones."""
    proc, probe = executor()
    rng = np.random.default_rng(17)
    unknown = ['mystery', *JOINTS[1:]]
    end_of_cover = 0.0  # latest time any chunk sent could still be commanded from (bound)
    t_stop, n = time.monotonic() + 15.0, 0
    while time.monotonic() < t_stop:
        now, kind = probe.now(), rng.integers(9)
        names, period, h = JOINTS, DT, int(rng.integers(1, 80))
        stamp = now - rng.uniform(0.0, 0.4)
        actions = rng.uniform(-3.0, 3.0, (h, D))  # beyond the limits: clamped
        if kind == 1:
            stamp = now + rng.choice([0.2, 8.0, 3e5, 2e9 - now])  # future, up to 2033
        elif kind == 2:
            stamp = rng.choice([0.0, now - 1e6, now - 3.0])
        elif kind == 3:
            actions[rng.integers(h), rng.integers(D)] = rng.choice([np.nan, np.inf, -np.inf])
        elif kind == 4:
            period = float(rng.choice([1e6, 1e-9, -0.02, np.nan, np.inf, 0.0, 0.3]))
        elif kind == 5:
            names = [JOINTS[::-1], unknown, JOINTS[:-1], [*JOINTS, 'extra']][rng.integers(4)]
            actions = rng.uniform(-3.0, 3.0, (h, len(names)))
        msg = make_action_chunk(sec_to_stamp(max(stamp, 0.0)), n, names, actions, period, 0.0,
                                'fuzz', {})
        if kind == 6:  # sizes that do not add up, or nothing at all
            msg.horizon, msg.action_dim = [(h + 1, D), (0, 0), (h, D + 1)][rng.integers(3)]
            if msg.horizon == 0:
                msg.actions = []
        probe.chunk_pub.publish(msg)
        if np.isfinite(period) and period > 0 and np.isfinite(stamp):
            end_of_cover = max(end_of_cover, min(stamp, now + 0.1) + min(h * period, STALE))
        n += 1
        time.sleep(0.02)
    assert proc.alive
    assert_held_after(probe, end_of_cover, wait_until)  # the watchdog fires
    assert_safe(probe.since(0.0))
    t_resume = probe.now()
    probe.chunk(np.full((100, D), 0.05))  # commands resume after the fuzz
    wait_until(lambda: any(np.allclose(c, 0.05) for _, c in probe.since(t_resume)), 5,
               'commands from a valid chunk after the fuzz', process=proc)
    assert_safe(probe.since(0.0))
    assert proc.alive and not proc.matching(r'Traceback|\[ERROR\]')
