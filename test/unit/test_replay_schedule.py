"""The replay's parts that need no running ROS: the timing core (order, /clock, rate, offset,
filter, remaps, loops, restamping) and the topic planning (types, QoS, remap syntax)."""

import itertools

import numpy as np
import pytest
from rosbags.interfaces import Connection, ConnectionExtRosbag2, MessageDefinition
from rosbags.interfaces import MessageDefinitionFormat as Fmt
from rosbags.typesys import Stores, get_typestore

from pi05_moe_training.bags.writer import make_qos
from pi05_moe_training.replay.player import parse_remaps, plan_topics, qos_for
from pi05_moe_training.replay.schedule import (
    ReplayConfig,
    schedule,
    shift_header_stamp,
)

TS = get_typestore(Stores.ROS2_KILTED)
S = 1_000_000_000
T0 = 1_700_000_000 * S  # bag start, like a real recording


def image_cdr(stamp_ns: int, little_endian: bool = True) -> bytes:
    """A serialized sensor_msgs/Image (its first field is a std_msgs/Header)."""
    Header, Time = TS.types['std_msgs/msg/Header'], TS.types['builtin_interfaces/msg/Time']
    msg = TS.types['sensor_msgs/msg/Image'](
        Header(Time(stamp_ns // S, stamp_ns % S), 'cam'), 2, 2, 'mono8', 0, 2,
        np.arange(4, dtype=np.uint8))
    return bytes(TS.serialize_cdr(msg, 'sensor_msgs/msg/Image', little_endian=little_endian))


def string_cdr(text: str) -> bytes:
    return bytes(TS.serialize_cdr(TS.types['std_msgs/msg/String'](text), 'std_msgs/msg/String'))


def stamp_of(raw: bytes) -> int:
    stamp = TS.deserialize_cdr(raw, 'sensor_msgs/msg/Image').header.stamp
    return stamp.sec * S + stamp.nanosec


# A 1 s bag: the prompt first, images at 10 Hz, joint states (strings stand in) at 20 Hz, and a
# recorded /clock that replay must not forward while it publishes its own.
BAG = sorted(
    [('/pi05_moe/prompt', T0, string_cdr('lift the hot cube'))]
    + [('/cam', T0 + i * S // 10, image_cdr(T0 + i * S // 10)) for i in range(10)]
    + [('/joints', T0 + i * S // 20 + 1, string_cdr(f'j{i}')) for i in range(20)]
    + [('/clock', T0 + i * S // 4, b'recorded clock') for i in range(4)],
    key=lambda m: m[1],
)
END = T0 + S


def events(cfg, bag=BAG, limit=None, **kwargs):
    stream = schedule(lambda: iter(bag), T0, END, cfg, **kwargs)
    return list(itertools.islice(stream, limit) if limit else stream)


def assert_clock_monotonic(evs):
    clocks = [e.clock_ns for e in evs]
    assert all(b >= a for a, b in zip(clocks, clocks[1:])), clocks
    walls = [e.wall_s for e in evs]
    assert all(b >= a for a, b in zip(walls, walls[1:])), walls


def test_every_message_in_stamp_order_with_clock_ticks_between():
    evs = events(ReplayConfig(clock_hz=100.0))
    msgs = [e for e in evs if e.topic is not None]
    expected = [m for m in BAG if m[0] != '/clock']
    assert [(e.topic, e.clock_ns, e.raw) for e in msgs] == expected
    assert_clock_monotonic(evs)
    ticks = [e.clock_ns for e in evs if e.topic is None]
    assert ticks[0] == T0
    assert np.all(np.diff(ticks) == S // 100)  # 100 Hz of wall time at rate 1
    assert ticks[-1] >= expected[-1][1] - S // 100  # ticks run up to the last message
    for e in evs:
        assert e.wall_s == pytest.approx((e.clock_ns - T0) / S)


def test_rate_scales_wall_time_and_keeps_clock_in_bag_time():
    evs = events(ReplayConfig(rate=2.0, clock_hz=50.0))
    last = [e for e in evs if e.topic == '/joints'][-1]
    assert last.clock_ns == T0 + 19 * S // 20 + 1
    assert last.wall_s == pytest.approx(0.475, abs=1e-6)
    ticks = [e.clock_ns for e in evs if e.topic is None]
    assert np.all(np.diff(ticks) == 2 * S // 50)  # 50 wall Hz at 2x = every 40 ms of bag time


def test_start_offset_skips_but_replays_the_last_latched_message_first():
    evs = events(ReplayConfig(start_offset=0.5), latched=frozenset({'/pi05_moe/prompt'}))
    msgs = [e for e in evs if e.topic is not None]
    assert msgs[0].topic == '/pi05_moe/prompt' and msgs[0].clock_ns == T0 + S // 2
    assert msgs[0].wall_s == 0.0
    assert all(e.clock_ns >= T0 + S // 2 for e in evs)
    assert [e.clock_ns for e in msgs if e.topic == '/cam'] == [T0 + i * S // 10
                                                             for i in range(5, 10)]
    without_latch = events(ReplayConfig(start_offset=0.5))
    assert '/pi05_moe/prompt' not in {e.topic for e in without_latch}


def test_topic_filter_and_remaps_and_recorded_clock():
    cfg = ReplayConfig(topics=['/cam', '/clock'], remaps={'/cam': '/wrist/image_raw'})
    assert {e.topic for e in events(cfg)} == {None, '/wrist/image_raw'}  # own /clock wins
    assert {e.bag_topic for e in events(cfg) if e.topic} == {'/cam'}
    passthrough = events(ReplayConfig(topics=['/clock'], clock_hz=0.0))
    assert [e.raw for e in passthrough] == [b'recorded clock'] * 4


def test_loop_keeps_clock_rising_and_restamps_only_later_loops():
    cfg = ReplayConfig(loop=True, clock_hz=10.0)
    evs = events(cfg, limit=300, header_first=frozenset({'/cam'}))
    assert_clock_monotonic(evs)
    loops = {e.loop for e in evs}
    assert loops >= {0, 1, 2}
    span = (END - T0) + S // 10  # bag length + one clock tick
    recorded = {(m[0], m[1]): m[2] for m in BAG}
    for e in (e for e in evs if e.bag_topic == '/cam'):
        bag_raw = recorded[('/cam', e.clock_ns - e.loop * span)]
        assert (e.raw == bag_raw) == (e.loop == 0)  # the first pass is byte-identical
        assert stamp_of(e.raw) == e.clock_ns  # header stamps follow /clock on every loop
    joints = [e for e in evs if e.bag_topic == '/joints']
    assert all(e.raw == recorded[('/joints', e.clock_ns - e.loop * span)] for e in joints)
    prompts = [e for e in evs if e.topic == '/pi05_moe/prompt']
    assert len({p.raw for p in prompts}) == 1 and len(prompts) == len(loops)


def test_truncated_input_yields_what_was_read_then_raises():
    def read():
        yield from BAG[:7]
        raise OSError('bag ends in the middle of a chunk')

    stream = schedule(read, T0, END, ReplayConfig())
    seen = []
    with pytest.raises(OSError, match='middle of a chunk'):
        for e in stream:
            seen.append(e)
    assert [e.raw for e in seen if e.topic] == [m[2] for m in BAG[:7] if m[0] != '/clock']


def test_out_of_order_stamp_does_not_move_clock_back():
    bag = [('/a', T0 + 5, b'x'), ('/a', T0 + 3, b'y'), ('/a', T0 + 9, b'z')]
    evs = events(ReplayConfig(clock_hz=0.0), bag=bag)
    assert [(e.raw, e.clock_ns) for e in evs] == [(b'x', T0 + 5), (b'y', T0 + 5), (b'z', T0 + 9)]


@pytest.mark.parametrize('little_endian', [True, False])
def test_shift_header_stamp_carries_nanoseconds(little_endian):
    raw = image_cdr(T0 + 999_999_999, little_endian)
    shifted = shift_header_stamp(raw, 2)
    assert stamp_of(shifted) == T0 + 1_000_000_001
    assert len(shifted) == len(raw) and shifted[12:] == raw[12:]
    with pytest.raises(ValueError, match='encapsulation'):
        shift_header_stamp(b'\x00\x07\x00\x00' + raw[4:], 1)


@pytest.mark.parametrize('field, value, quoted', [
    ('rate', 0.0, 'rate=0.0'),
    ('start_offset', -1.0, 'start_offset=-1.0'),
    ('clock_hz', float('nan'), 'clock_hz=nan'),
    ('topics', ['cam'], "topics=['cam']"),
    ('remaps', {'/cam': '/clock'}, "remaps={'/cam': '/clock'}"),
])
def test_config_errors_quote_the_bad_value(field, value, quoted):
    with pytest.raises(ValueError, match=quoted.replace('[', r'\[').replace(']', r'\]')):
        ReplayConfig(**{field: value})


def connection(topic, msgtype, offered=(), cid=1):
    return Connection(cid, topic, msgtype, MessageDefinition(Fmt.NONE, ''), '', 3,
                      ConnectionExtRosbag2('cdr', list(offered)), None)


def test_qos_follows_the_recorded_offers_else_the_named_profiles():
    from pi05_moe_policy.nodes import qos
    recorded = qos_for('/x', 'std_msgs/msg/String',
                       [make_qos('best_effort', 'transient_local', depth=3)])
    assert (recorded.reliability.name, recorded.durability.name, recorded.depth) == \
        ('BEST_EFFORT', 'TRANSIENT_LOCAL', 3)
    assert qos_for('/wrist/image_raw', 'sensor_msgs/msg/Image', []) == qos.SENSOR
    assert qos_for('/pi05_moe/prompt', 'std_msgs/msg/String', []) == qos.PROMPT
    assert qos_for('/pi05_moe/action_chunk', 'pi05_moe_msgs/msg/ActionChunk', []) == qos.COMMAND
    # Publishers that disagreed, or a history rosbag2 could not read: the named profile decides.
    mixed = qos_for('/joint_states', 'sensor_msgs/msg/JointState',
                    [make_qos('reliable'), make_qos('best_effort', depth=0, history='unknown')])
    assert (mixed.reliability, mixed.depth) == (qos.SENSOR.reliability, 10)
    unknown_depth = qos_for('/x', 'std_msgs/msg/String', [make_qos(depth=0, history='unknown')])
    assert unknown_depth.depth == qos.COMMAND.depth


def test_plan_skips_uninstalled_types_and_reports_unknown_filter_topics():
    conns = [connection('/cam', 'sensor_msgs/msg/Image', [make_qos('reliable')]),
             connection('/w', 'acme_msgs/msg/Widget', cid=2),
             connection('/s', 'std_msgs/msg/String', cid=3)]
    plans, warnings = plan_topics(conns, ReplayConfig(topics=['/cam', '/w', '/nope']))
    assert [(p.topic, p.cls.__name__) for p in plans] == [('/cam', 'Image')]
    assert plans[0].qos.reliability.name == 'RELIABLE'
    assert any(w.startswith('/nope: not in the bag') for w in warnings)
    assert any(w.startswith('/w: skipped, message type acme_msgs/msg/Widget is not installed')
               for w in warnings)


def test_remap_syntax():
    assert parse_remaps(['/a:=/b', '/c:=/d']) == {'/a': '/b', '/c': '/d'}
    with pytest.raises(ValueError, match="'/a=/b': expected FROM:=TO"):
        parse_remaps(['/a=/b'])
