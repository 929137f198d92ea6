"""Publish a bag's topics with their recorded timing, plus /clock, so that a node graph started
with use_sim_time:=true runs on the bag exactly as it would on the robot.

Reads rosbag2 bags in MCAP and sqlite3 storage (written by `pi05-moe record` or by
`ros2 bag record`) through the `rosbags` library, so it needs no rosbag2 install. Messages are
published as the serialized bytes the bag holds (no deserialisation); a topic whose message type
is not installed here is skipped with a warning and the rest is replayed.

Timing and options:
  --rate R          play R times as fast (0.5 = half speed). /clock stays in bag time.
  --start-offset S  skip the first S seconds of the bag. The last message of a transient-local
                    topic before that point (e.g. the prompt) is still published at the start.
  --loop            replay until Ctrl-C. /clock keeps rising: each loop is shifted by the bag's
                    length, and so is the header.stamp of every message type that starts with a
                    std_msgs/Header (the first pass is byte-identical to the bag; stamps nested
                    deeper are not rewritten), so stamp-age checks keep working across loops.
  --topics T [T..]  replay only these bag topics.
  --remap A:=B      publish bag topic A as B (repeatable).
  --clock HZ        /clock rate in wall Hz (default 100), also published with every message; 0
                    publishes no clock (a /clock recorded in the bag is then replayed as is).
  --wait-for T [T..]  hold until each of these published topics (/clock included) has a
                    subscriber, e.g. the policy node's camera topic while it loads its model.
  --delay S         then hold S more wall seconds before the first message, so subscribers
                    finish discovery (default 1). /clock shows the start time meanwhile.
At the end, replay waits up to 2 s for reliable subscribers to acknowledge the last messages.
Each topic is offered with the QoS recorded in the bag (reliability, durability, depth), else with
pi05_moe's named profiles (sensor data for images and joint states, transient-local for the
prompt, reliable otherwise).

Where rosbag2 is installed, the equivalent is
  ros2 bag play <bag> --clock 100 [--rate R] [--start-offset S] [--loop] [--topics ...]
                [--remap A:=B] [--delay S]
(ros2 bag play does not restamp headers on loops and its /clock jumps back at each loop).

Exit status: 0 when the whole bag was replayed; 1 when the bag is truncated or corrupt (what could
be read was replayed, and the summary says how much was not); 2 for bad options or an unreadable
bag; 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from pi05_moe_policy import topics
from pi05_moe_training.replay.schedule import CLOCK_TOPIC, Event, ReplayConfig, schedule

# Message types offered with the SENSOR profile when the bag recorded no QoS.
SENSOR_TYPES = frozenset({
    'sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage', 'sensor_msgs/msg/CameraInfo',
    'sensor_msgs/msg/JointState', 'sensor_msgs/msg/PointCloud2', 'sensor_msgs/msg/Imu',
})
PROMPT_TOPIC = topics.PROMPT
_MAX_SLEEP_S = 0.05  # sleep in slices so Ctrl-C (rclpy's handler) is noticed promptly


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('bag', type=Path, help='rosbag2 bag directory (MCAP or sqlite3)')
    parser.add_argument('-r', '--rate', type=float, default=1.0, help='playback speed factor')
    parser.add_argument('-s', '--start-offset', type=float, default=0.0, metavar='SECONDS',
                        help='seconds of bag time to skip at the start')
    parser.add_argument('-l', '--loop', action='store_true', help='replay until Ctrl-C')
    parser.add_argument('--topics', nargs='+', default=[], metavar='TOPIC',
                        help='bag topics to replay (default: all)')
    parser.add_argument('--remap', action='append', default=[], metavar='FROM:=TO',
                        help='publish bag topic FROM as TO (repeatable)')
    parser.add_argument('--clock', type=float, default=100.0, metavar='HZ',
                        help='/clock rate in wall Hz; 0 = no /clock (default 100)')
    parser.add_argument('--wait-for', nargs='+', default=[], metavar='TOPIC',
                        help='hold until each of these published topics (/clock included) has '
                             'a subscriber')
    parser.add_argument('--delay', type=float, default=1.0, metavar='SECONDS',
                        help='then hold this long before the first message (default 1)')


def parse_remaps(items: list[str]) -> dict[str, str]:
    """``['/a:=/b', ...]`` -> ``{'/a': '/b'}``; raises ValueError naming a malformed item."""
    remaps = {}
    for item in items:
        src, sep, dst = item.partition(':=')
        if not sep or not src or not dst:
            raise ValueError(f'--remap {item!r}: expected FROM:=TO, e.g. /cam:=/wrist/image_raw')
        remaps[src] = dst
    return remaps


def message_class(msgtype: str) -> type:
    """The installed rclpy class for a bag type name such as ``sensor_msgs/msg/Image``."""
    package, _, name = msgtype.rpartition('/')
    package = package.split('/')[0]
    try:
        return getattr(importlib.import_module(f'{package}.msg'), name)
    except (ImportError, AttributeError):
        raise ImportError(f'message type {msgtype} is not installed here (no Python module '
                          f'{package}.msg with {name})') from None


def starts_with_header(cls: type) -> bool:
    """Whether the message's first field is a ``std_msgs/Header`` (restampable on loops)."""
    fields = cls.get_fields_and_field_types()
    return next(iter(fields.values()), None) == 'std_msgs/Header'


def qos_for(topic: str, msgtype: str, offered: list) -> object:
    """The QoS to publish ``topic`` with: as recorded where the bag has it, else a named one.

    Reliability and durability are taken from the recorded offers when every recorded publisher
    agreed on them, the depth from the largest keep-last depth recorded; the named profile (by
    topic and type) fills in the rest. Deadline, lifespan and liveliness are not replayed.
    """
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    from pi05_moe_policy.nodes import qos
    if topic == PROMPT_TOPIC:
        base = qos.PROMPT
    elif msgtype in SENSOR_TYPES:
        base = qos.SENSOR
    else:
        base = qos.COMMAND
    reliabilities = {o.reliability.name for o in offered}
    durabilities = {o.durability.name for o in offered}
    depths = [o.depth for o in offered if o.history.name == 'KEEP_LAST' and o.depth > 0]
    reliability, durability = base.reliability, base.durability
    if len(reliabilities) == 1 and reliabilities <= {'RELIABLE', 'BEST_EFFORT'}:
        reliability = ReliabilityPolicy[reliabilities.pop()]
    if len(durabilities) == 1 and durabilities <= {'VOLATILE', 'TRANSIENT_LOCAL'}:
        durability = DurabilityPolicy[durabilities.pop()]
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=max(depths, default=base.depth),
                      reliability=reliability, durability=durability)


@dataclass
class TopicPlan:
    """One bag topic as it will be replayed."""

    topic: str
    msgtype: str
    cls: type
    qos: object  # rclpy QoSProfile


@dataclass
class ReplayStats:
    """What a replay did, for the closing summary."""

    published: Counter = field(default_factory=Counter)  # bag topic -> messages published
    clock_ns: int | None = None  # last /clock value published
    played_ns: int | None = None  # bag time (loop-shifted) of the last event, /clock or not
    max_late_s: float = 0.0  # worst lateness behind the recorded timing
    loops: int = 0

    def summary(self, start_ns: int, wall_s: float) -> str:
        bag_s = 0.0 if self.played_ns is None else (self.played_ns - start_ns) * 1e-9
        topics = ', '.join(f'{t} {n}' for t, n in sorted(self.published.items()))
        return (f'replayed {sum(self.published.values())} messages ({topics or "none"}), '
                f'{bag_s:.3f} s of bag time in {wall_s:.3f} s wall, {self.loops} loop(s), '
                f'worst lateness {self.max_late_s * 1e3:.1f} ms')


def plan_topics(connections, cfg: ReplayConfig) -> tuple[list[TopicPlan], list[str]]:
    """Per replayed topic its class and QoS, and the warnings for topics that are left out."""
    warnings = []
    by_topic: dict[str, list] = {}
    for c in connections:
        by_topic.setdefault(c.topic, []).append(c)
    for missing in sorted(set(cfg.topics) - set(by_topic)):
        warnings.append(f'{missing}: not in the bag (its topics: {", ".join(sorted(by_topic))})')
    plans = []
    for topic, conns in sorted(by_topic.items()):
        if not cfg.selects(topic):
            continue
        types = sorted({c.msgtype for c in conns})
        if len(types) > 1:
            warnings.append(f'{topic}: skipped, recorded with several types {types}')
            continue
        try:
            cls = message_class(types[0])
        except ImportError as exc:
            warnings.append(f'{topic}: skipped, {exc}')
            continue
        offered = [q for c in conns for q in getattr(c.ext, 'offered_qos_profiles', [])]
        plans.append(TopicPlan(topic, types[0], cls, qos_for(topic, types[0], offered)))
    return plans, warnings


@dataclass
class BagSource:
    """A bag as replay reads it."""

    connections: list  # rosbags Connections (topic, msgtype, msgcount, offered QoS)
    start_ns: int
    end_ns: int
    read: Callable[[list[str]], Iterable[tuple[str, int, bytes]]]  # topics -> messages
    listed: dict[str, int] | None  # messages per topic that the bag's metadata lists
    damage: str | None = None  # known before playing: why only part of the bag is readable


def open_bag(path: Path, stack: ExitStack) -> BagSource:
    """Open ``path`` with the shared :class:`BagReader`; when it refuses an MCAP bag (cut short,
    never closed), fall back to reading what is left of the MCAP data directly."""
    from pi05_moe_training.bags.reader import BagError, BagReader

    try:
        reader = stack.enter_context(BagReader(path))
    except BagError as error:
        return _salvage(path, error)
    info = reader.info
    return BagSource(reader.reader.connections, info.start_ns, info.end_ns, reader.raw_messages,
                     dict(info.counts))


def _salvage(path: Path, error: Exception) -> BagSource:
    from pi05_moe_training.bags.mcap_salvage import SalvagedMcap, SalvageError

    try:
        salvaged = SalvagedMcap(path)
    except (SalvageError, OSError):
        raise error from None
    if not salvaged.message_count:
        raise error
    print(f'pi05-moe replay: warning: {error}\npi05-moe replay: reading the MCAP data directly: '
          f'{salvaged.message_count} messages readable', file=sys.stderr)
    return BagSource(salvaged.connections, salvaged.start_ns, salvaged.end_ns,
                     lambda topics: salvaged.messages(set(topics)), _listed_counts(path),
                     salvaged.stopped)


def _listed_counts(path: Path) -> dict[str, int] | None:
    """Messages per topic that ``metadata.yaml`` lists, None without a readable one."""
    import yaml

    try:
        info = yaml.safe_load((path / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
        return {t['topic_metadata']['name']: int(t['message_count'])
                for t in info['topics_with_message_count']}
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return None


class Player:
    """Publishes a schedule's events on time: the thin ROS side of the replay."""

    def __init__(self, node, plans: list[TopicPlan], cfg: ReplayConfig):
        from rosgraph_msgs.msg import Clock

        from pi05_moe_policy.nodes import qos
        self._node = node
        self._clock_msg = Clock()
        self._clock_pub = (node.create_publisher(Clock, CLOCK_TOPIC, qos.CLOCK)
                           if cfg.clock_hz > 0 else None)
        self._pubs = {p.topic: node.create_publisher(p.cls, cfg.output_topic(p.topic), p.qos)
                      for p in plans}  # by bag topic
        self._pubs_out = {pub.topic_name: pub for pub in self._pubs.values()}
        self.stats = ReplayStats()

    def publish_clock(self, clock_ns: int) -> None:
        if self._clock_pub is None or (self.stats.clock_ns or -1) >= clock_ns:
            return
        self._clock_msg.clock.sec, self._clock_msg.clock.nanosec = divmod(clock_ns, 1_000_000_000)
        self._clock_pub.publish(self._clock_msg)
        self.stats.clock_ns = clock_ns

    def publisher(self, topic: str):
        """The publisher of output topic ``topic`` (``/clock`` included), or None."""
        if topic == CLOCK_TOPIC:
            return self._clock_pub
        return self._pubs_out.get(topic)

    def hold(self, clock_ns: int, seconds: float, wait_for: list[str]) -> bool:
        """Publish ``clock_ns`` until every topic in ``wait_for`` has a subscriber, then for
        ``seconds`` more of wall time (so the subscribers' side of discovery completes too).
        False when ROS shut down (Ctrl-C) meanwhile."""
        self._clock_msg.clock.sec, self._clock_msg.clock.nanosec = divmod(clock_ns, 1_000_000_000)
        deadline, told = None, False
        while deadline is None or time.monotonic() < deadline:
            if self._clock_pub is not None:
                self._clock_pub.publish(self._clock_msg)
            if deadline is None:
                waiting = [t for t in wait_for if self.publisher(t).get_subscription_count() == 0]
                if not waiting:
                    deadline = time.monotonic() + seconds
                elif not told:
                    print(f'pi05-moe replay: waiting for subscribers on {", ".join(waiting)}',
                          file=sys.stderr)
                    told = True
            if not self._sleep_until(time.monotonic() + 0.1):
                return False
        return True

    def flush(self, timeout_s: float) -> None:
        """Wait (bounded) until reliable subscribers acknowledged everything published."""
        from rclpy.duration import Duration

        deadline = time.monotonic() + timeout_s
        unacked = [pub.topic_name for pub in self._pubs.values() if not pub.wait_for_all_acked(
            Duration(seconds=max(deadline - time.monotonic(), 0.0)))]
        if unacked:
            print(f'pi05-moe replay: warning: after {timeout_s:g} s, subscribers of '
                  f'{", ".join(unacked)} had not acknowledged every message', file=sys.stderr)

    def play(self, events, progress) -> bool:
        """Publish every event on time; False when ROS shut down (Ctrl-C) before the end."""
        t0 = time.monotonic()
        for event in events:
            if not self._sleep_until(t0 + event.wall_s):
                return False
            self.stats.max_late_s = max(self.stats.max_late_s,
                                        time.monotonic() - t0 - event.wall_s)
            self._emit(event)
            progress(event)
        return True

    def _emit(self, event: Event) -> None:
        self.publish_clock(event.clock_ns)
        self.stats.played_ns = max(self.stats.played_ns or event.clock_ns, event.clock_ns)
        if event.topic is not None:
            self._pubs[event.bag_topic].publish(event.raw)
            self.stats.published[event.bag_topic] += 1
        self.stats.loops = max(self.stats.loops, event.loop + 1)

    def _sleep_until(self, deadline: float) -> bool:
        ctx = self._node.context
        while ctx.ok():
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(left, _MAX_SLEEP_S))
        return False


def _progress_bar(play_start: int, end_ns: int):
    """A tqdm bar over the bag's seconds (restarted per loop) and the callback that advances it."""
    from pi05_moe_training.progress import progress as tqdm

    total = round(max(end_ns - play_start, 0) * 1e-9, 3)
    bar = tqdm(total=total, unit='s', desc='replay', dynamic_ncols=True, mininterval=0.2,
               disable=None,  # not on a terminal (a log file, a launcher): only the summary
               bar_format='{desc}: {percentage:3.0f}%|{bar}| {n:.2f}/{total:.2f} s of bag '
                          '[{elapsed}<{remaining}]')
    loop = [0]

    def advance(event: Event) -> None:
        if event.loop != loop[0]:
            loop[0] = event.loop
            bar.reset(total=total)
            bar.set_description(f'replay (loop {event.loop + 1})')
        position = min(total, round((event.bag_ns - play_start) * 1e-9, 3))
        if position > bar.n:
            bar.update(position - bar.n)

    return bar, advance


def main(args: argparse.Namespace) -> int:
    try:
        cfg = ReplayConfig(rate=args.rate, start_offset=args.start_offset, loop=args.loop,
                           topics=list(args.topics), remaps=parse_remaps(args.remap),
                           clock_hz=args.clock)
        if not args.delay >= 0:
            raise ValueError(f'--delay {args.delay!r}: expected seconds >= 0')
    except ValueError as exc:
        print(f'pi05-moe replay: {exc}', file=sys.stderr)
        return 2
    with ExitStack() as stack:
        try:
            source = open_bag(args.bag, stack)
        except Exception as exc:  # noqa: BLE001 - any unreadable bag is reported the same way
            print(f'pi05-moe replay: cannot read bag: {exc}', file=sys.stderr)
            return 2
        return _replay(source, cfg, args.delay, list(args.wait_for))


def _replay(source: BagSource, cfg: ReplayConfig, delay: float, wait_for: list[str]) -> int:
    """Plan the topics, then publish the schedule; returns the exit status."""
    import rclpy

    plans, warnings = plan_topics(source.connections, cfg)
    for w in warnings:
        print(f'pi05-moe replay: warning: {w}', file=sys.stderr)
    if not plans:
        print('pi05-moe replay: nothing to replay', file=sys.stderr)
        return 2
    by_topic = {p.topic: p for p in plans}
    play_start = source.start_ns + round(cfg.start_offset * 1e9)
    if play_start >= source.end_ns:
        print(f'pi05-moe replay: --start-offset {cfg.start_offset:g} s is past the end of the bag '
              f'({(source.end_ns - source.start_ns) * 1e-9:.3f} s long)', file=sys.stderr)
        return 2
    events = schedule(
        lambda: source.read(list(by_topic)), source.start_ns, source.end_ns, cfg,
        latched=frozenset(t for t, p in by_topic.items()
                          if p.qos.durability.name == 'TRANSIENT_LOCAL'),
        header_first=frozenset(t for t, p in by_topic.items() if starts_with_header(p.cls)))

    rclpy.init()
    node = rclpy.create_node('pi05_moe_replay')
    player = Player(node, plans, cfg)
    unknown = [t for t in wait_for if player.publisher(t) is None]
    if unknown:
        node.destroy_node()
        rclpy.try_shutdown()
        print(f'pi05-moe replay: --wait-for {" ".join(unknown)}: not published by this replay',
              file=sys.stderr)
        return 2
    bar, advance = _progress_bar(play_start, source.end_ns)
    wall0 = time.monotonic()
    interrupted, failure = False, None
    try:
        interrupted = not (player.hold(play_start, delay, wait_for)
                           and player.play(events, advance))
    except KeyboardInterrupt:
        interrupted = True
    except Exception as exc:  # noqa: BLE001 - a bag that breaks while read: keep what played
        failure = f'bag read failed: {exc}'
    try:
        if not interrupted:
            failure = failure or source.damage
            player.flush(2.0)
    finally:
        bar.close()
        node.destroy_node()
        rclpy.try_shutdown()
    summary = player.stats.summary(source.start_ns, time.monotonic() - wall0)
    if interrupted:
        print(f'pi05-moe replay: {summary} (interrupted)', file=sys.stderr)
        return 130
    if failure is not None:
        print(f'pi05-moe replay: {failure}\npi05-moe replay: INCOMPLETE: {summary}; '
              f'{_not_replayed(source.listed, by_topic, player.stats)}', file=sys.stderr)
        return 1
    print(f'pi05-moe replay: {summary}', file=sys.stderr)
    return 0


def _not_replayed(listed: dict[str, int] | None, topics, stats: ReplayStats) -> str:
    """How much of the selected topics the bag's metadata lists but was not published."""
    if listed is None:
        return 'the bag has no readable metadata.yaml, so how much is missing is unknown'
    total = sum(listed.get(t, 0) for t in topics)
    missing = sum(max(listed.get(t, 0) - stats.published[t], 0) for t in topics)
    return f'{missing} of the {total} messages its metadata lists were not replayed'
