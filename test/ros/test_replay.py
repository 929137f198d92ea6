"""`pi05-moe replay` in its own process, heard over DDS by real subscriptions in this one.

The test bags are real rosbag2 bags (MCAP and sqlite3) holding CDR from rclpy messages, written in
time order with the offered QoS that `ros2 bag record` stores.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import get_types_from_msg
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String

from pi05_moe_msgs.msg import ActionChunk, RoutingWeights
from pi05_moe_policy.core.image_codec import numpy_to_image
from pi05_moe_policy.nodes import qos
from pi05_moe_training.bags.mcap_salvage import SalvagedMcap
from pi05_moe_training.bags.typestore import make_typestore
from pi05_moe_training.bags.writer import make_qos

S = 1_000_000_000
T0 = 5_000 * S  # bag time: far from wall time, so a stamp shows which clock it came from
UNKNOWN_TYPE = 'acme_msgs/msg/Widget'  # in the bag, not installed here
JOINTS = ['waist', 'shoulder', 'elbow', 'forearm_roll', 'wrist_pitch', 'wrist_roll', 'gripper']


def stamped(msg, t: int):
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(t, S)
    return msg


def image(t: int, i: int, hw: tuple[int, int] = (4, 4), encoding: str = 'rgb8') -> Image:
    if encoding == 'rgb8':
        pixels = np.full((*hw, 3), i % 256, np.uint8)  # (H, W, 3)
    else:
        pixels = np.full(hw, 30000 + i, np.uint16)  # (H, W) centi-Kelvin
    return stamped(numpy_to_image(pixels, encoding, Image()), t)


def joints(t: int, i: int) -> JointState:
    return stamped(JointState(name=JOINTS, position=[0.01 * i] * len(JOINTS)), t)


def routing(t: int, i: int) -> RoutingWeights:
    w = 0.1 * (i % 10)
    return stamped(RoutingWeights(expert_names=['l515', 'thermal'], weights=[w, 1 - w],
                                  present=[1, 1], chunk_id=i), t)


@dataclass
class Stream:
    """One topic of a test bag: ``make(t_ns, i)`` builds message i, every ``period`` ns."""

    topic: str
    msgtype: str
    make: object
    period: int
    count: int
    offered: list = field(default_factory=lambda: [make_qos('reliable')])


STREAMS = [
    Stream('/wrist/image_raw', 'sensor_msgs/msg/Image', image, S // 20, 20),
    Stream('/joint_states', 'sensor_msgs/msg/JointState', joints, S // 50, 50),
    Stream('/pi05_moe/routing', 'pi05_moe_msgs/msg/RoutingWeights', routing, S // 5, 5),
]
LISTEN = {'/wrist/image_raw': Image, '/joint_states': JointState,
          '/pi05_moe/routing': RoutingWeights, '/pi05_moe/prompt': String}


def write_bag(path: Path, storage: StoragePlugin, streams: list[Stream]
              ) -> dict[str, list[tuple[int, bytes]]]:
    """A bag written in time order like a recording; returns topic -> [(t, cdr)] written.

    It also holds the prompt (offered transient-local) and a topic of a type not installed here.
    """
    store = make_typestore()
    store.register(get_types_from_msg('int32 size', UNKNOWN_TYPE))
    written: dict[str, list[tuple[int, bytes]]] = {}
    with Writer(path, version=9, storage_plugin=storage) as writer:
        prompt = writer.add_connection(
            '/pi05_moe/prompt', 'std_msgs/msg/String', typestore=store,
            offered_qos_profiles=[make_qos('reliable', 'transient_local', depth=1)])
        unknown = writer.add_connection('/acme/widget', UNKNOWN_TYPE, typestore=store)
        queue = [(T0, prompt, serialize_message(String(data='lift the hot cube'))),
                 (T0 + 1, unknown, bytes(store.serialize_cdr(store.types[UNKNOWN_TYPE](size=3),
                                                             UNKNOWN_TYPE)))]
        for s in streams:
            conn = writer.add_connection(s.topic, s.msgtype, typestore=store,
                                         offered_qos_profiles=s.offered)
            times = [T0 + 2 + i * s.period for i in range(s.count)]
            queue += [(t, conn, serialize_message(s.make(t, i))) for i, t in enumerate(times)]
        for t, conn, raw in sorted(queue, key=lambda item: item[0]):
            writer.write(conn, t, raw)
            if conn is not unknown:
                written.setdefault(conn.topic, []).append((t, raw))
    return written


def padded(cdr: bytes) -> bytes:
    """``cdr`` as a subscriber receives it: DDS pads serialized data to 4 bytes."""
    return cdr + bytes(-len(cdr) % 4)


@dataclass
class Heard:
    """What a listening node received: raw messages per topic with arrival times, and /clock."""

    got: dict[str, list[tuple[float, bytes]]]
    clock: list[int]


@pytest.fixture
def listen(ros):
    """``listen(topics)``: raw subscriptions (reliable; the prompt transient-local) + /clock."""
    nodes = []

    def make(topics: dict[str, type]) -> Heard:
        node = ros.node(f'replay_listener_{len(nodes)}')
        nodes.append(node)
        heard = Heard({t: [] for t in topics}, [])
        reliable = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        for topic, cls in topics.items():
            node.create_subscription(
                cls, topic, lambda raw, t=topic: heard.got[t].append((time.monotonic(), raw)),
                qos.PROMPT if topic == '/pi05_moe/prompt' else reliable, raw=True)
        node.create_subscription(
            Clock, '/clock', lambda m: heard.clock.append(m.clock.sec * S + m.clock.nanosec),
            QoSProfile(depth=200, reliability=ReliabilityPolicy.BEST_EFFORT))
        return heard

    yield make
    for node in nodes:
        ros.remove(node)


def replay(spawn, *args: str):
    return spawn(['pi05-moe', 'replay', *args])


def finish(child, heard: Heard, wait_until, timeout: float = 60.0) -> tuple[int, str]:
    """Wait for a replay to exit, then until ``heard`` has every message that its summary line
    says it published on the heard topics; returns its exit code and output."""
    code = child.proc.wait(timeout=timeout)
    out = '\n'.join(child.lines)
    summary = re.search(r'replayed \d+ messages \(([^)]*)\)', out)
    published = dict(item.rsplit(' ', 1) for item in summary.group(1).split(', ')) if summary \
        else {}
    expected = {t: int(published.get(t, 0)) for t in heard.got}
    wait_until(lambda: all(len(heard.got[t]) >= n for t, n in expected.items()), 10,
               f'the messages the replay published: {expected}')
    return code, out


def assert_monotonic(values, strict: bool = False):
    assert values and all((b > a) if strict else (b >= a) for a, b in zip(values, values[1:]))


@pytest.mark.parametrize('storage', [StoragePlugin.MCAP, StoragePlugin.SQLITE3])
def test_every_message_is_published_in_order_with_a_monotonic_clock(tmp_path, spawn, listen,
                                                                     wait_until, storage):
    written = write_bag(tmp_path / 'bag', storage, STREAMS)
    heard = listen(LISTEN)
    code, out = finish(replay(spawn, str(tmp_path / 'bag'), '--rate', '2', '--delay', '0.5',
                              '--wait-for', '/clock', *LISTEN), heard, wait_until)
    assert code == 0, out
    assert f'/acme/widget: skipped, message type {UNKNOWN_TYPE} is not installed' in out
    for topic, messages in written.items():
        # Byte for byte, none lost, none twice, in the order of their stamps.
        assert [raw for _, raw in heard.got[topic]] == [padded(raw) for _, raw in messages], \
            topic
    assert_monotonic(heard.clock)
    assert heard.clock[0] == T0 and heard.clock[-1] >= written['/joint_states'][-1][0]
    assert len(set(heard.clock)) > 30  # clock ticks, not only one value per message
    # The recorded timing at 2x: 19 image periods of 50 ms take ~0.475 s of wall time.
    arrivals = [t for t, _ in heard.got['/wrist/image_raw']]
    assert arrivals[-1] - arrivals[0] == pytest.approx(0.475, abs=0.15)


def test_ctrl_c_stops_a_looping_replay_cleanly(tmp_path, spawn, listen, wait_until):
    write_bag(tmp_path / 'bag', StoragePlugin.MCAP, STREAMS)
    heard = listen({'/replayed/wrist': Image})
    got = heard.got['/replayed/wrist']
    child = replay(spawn, str(tmp_path / 'bag'), '--loop', '--rate', '4', '--delay', '0.5',
                   '--wait-for', '/clock', '/replayed/wrist',
                   '--topics', '/wrist/image_raw', '/pi05_moe/prompt',
                   '--remap', '/wrist/image_raw:=/replayed/wrist')
    wait_until(lambda: len(got) >= 45, 30, 'more than two loops of 20 images')
    code = child.stop()
    out = '\n'.join(child.lines)
    assert code == 130, out
    assert 'Traceback' not in out and out.rstrip().endswith('(interrupted)'), out
    assert_monotonic(heard.clock)  # across loops too
    stamps = [stamp.sec * S + stamp.nanosec
              for stamp in (deserialize_message(raw, Image).header.stamp for _, raw in got)]
    assert_monotonic(stamps, strict=True)  # restamped per loop, never repeated
    assert stamps[-1] <= heard.clock[-1]


def test_a_truncated_mcap_bag_replays_what_is_left_and_reports_the_rest(tmp_path, spawn,
                                                                        listen, wait_until):
    big = [Stream('/wrist/image_raw', 'sensor_msgs/msg/Image',
                  lambda t, i: image(t, i, (240, 320)), S // 20, 20), *STREAMS[1:]]
    written = write_bag(tmp_path / 'bag', StoragePlugin.MCAP, big)  # ~4.6 MB: 4 chunks + rest
    mcap = tmp_path / 'bag' / 'bag.mcap'
    mcap.write_bytes(mcap.read_bytes()[:mcap.stat().st_size // 2])  # metadata.yaml stays
    heard = listen(LISTEN)
    code, out = finish(replay(spawn, str(tmp_path / 'bag'), '--rate', '4', '--delay', '0.5',
                              '--wait-for', '/clock', *LISTEN), heard, wait_until)
    assert code == 1, out
    assert 'File end magic is invalid' in out and 'is cut at byte' in out
    received = {t: [raw for _, raw in got] for t, got in heard.got.items()}
    for topic, messages in written.items():  # what was replayed is the start of each topic
        assert received[topic] == [padded(raw) for _, raw in messages[:len(received[topic])]]
    assert 0 < len(received['/wrist/image_raw']) < 20
    total = sum(len(v) for v in received.values())
    assert out.rstrip().endswith(f'{76 - total} of the 76 messages its metadata lists were not '
                                 'replayed'), out


def test_a_salvaged_bag_reports_its_bag_time_with_or_without_clock(tmp_path, spawn,
                                                                   wait_until):
    """A bag left without metadata.yaml and cut mid-record (a killed recording): the summary
    gives the bag time replayed, also with --clock 0 (it said "0.000 s of bag time")."""
    big = [Stream('/wrist/image_raw', 'sensor_msgs/msg/Image',
                  lambda t, i: image(t, i, (240, 320)), S // 20, 20), *STREAMS[1:]]
    write_bag(tmp_path / 'bag', StoragePlugin.MCAP, big)
    (tmp_path / 'bag' / 'metadata.yaml').unlink()
    mcap = tmp_path / 'bag' / 'bag.mcap'
    mcap.write_bytes(mcap.read_bytes()[:mcap.stat().st_size // 2])
    salvaged = SalvagedMcap(tmp_path / 'bag')
    span = (salvaged.end_ns - salvaged.start_ns) * 1e-9  # up to the last message before the cut
    assert 0.1 < span < 0.95
    for clock in ('100', '0'):
        code, out = finish(replay(spawn, str(tmp_path / 'bag'), '--rate', '4', '--delay', '0',
                                  '--clock', clock), Heard({}, []), wait_until)
        assert code == 1, out
        assert 'no metadata.yaml' in out and 'reading the MCAP data directly' in out
        bag_s = float(re.search(r'([\d.]+) s of bag time', out).group(1))
        assert bag_s == pytest.approx(span, abs=0.01), out


def test_policy_node_chunks_are_stamped_in_bag_time(tmp_path, spawn, listen, wait_until):
    cameras = [
        Stream('/wrist/image_raw', 'sensor_msgs/msg/Image',
               lambda t, i: image(t, i, (64, 64)), S // 20, 60),
        Stream('/l515/color/image_raw', 'sensor_msgs/msg/Image',
               lambda t, i: image(t, i, (64, 64)), S // 20, 60),
        Stream('/thermal/image_raw', 'sensor_msgs/msg/Image',
               lambda t, i: image(t, i, (60, 80), 'mono16'), S // 9, 27),
        Stream('/joint_states', 'sensor_msgs/msg/JointState', joints, S // 50, 150),
    ]
    written = write_bag(tmp_path / 'robot', StoragePlugin.MCAP, cameras)
    recorded = {t for topic in ('/wrist/image_raw', '/joint_states') for t, _ in written[topic]}
    policy = spawn(['policy_node', '--ros-args', '-p', 'checkpoint:=preset:tiny',
                    '-p', 'use_sim_time:=true', '-p', 'num_threads:=1',
                    '-p', f'joint_names:=[{",".join(JOINTS)}]'])
    heard = listen({'/pi05_moe/action_chunk': ActionChunk, '/pi05_moe/routing': RoutingWeights})
    code, out = finish(replay(spawn, str(tmp_path / 'robot'), '--delay', '1', '--wait-for',
                              '/clock', *(s.topic for s in cameras)), heard, wait_until,
                       timeout=120)
    assert code == 0, out
    policy.stop()
    chunks = [deserialize_message(raw, ActionChunk) for _, raw in heard.got[
        '/pi05_moe/action_chunk']]
    assert len(chunks) >= 2, '\n'.join(policy.lines[-30:])
    stamps = [c.header.stamp.sec * S + c.header.stamp.nanosec for c in chunks]
    # Each chunk carries the bag time of the observation it came from: a recorded header stamp.
    assert set(stamps) <= recorded, (sorted(stamps), T0)
    assert_monotonic(stamps, strict=True)
    assert all(c.prompt == 'lift the hot cube' for c in chunks)  # the replayed, latched prompt
    routed = [deserialize_message(raw, RoutingWeights) for _, raw in heard.got[
        '/pi05_moe/routing']]
    assert {r.header.stamp.sec * S + r.header.stamp.nanosec for r in routed} <= set(stamps)
