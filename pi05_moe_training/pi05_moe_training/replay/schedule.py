"""When to publish what during a bag replay: the pure timing core of ``pi05-moe replay``.

No rclpy and no deserialisation: messages stay the serialized CDR bytes the bag holds. Given the
bag's messages in stamp order and a :class:`ReplayConfig`, :func:`schedule` yields
:class:`Event` s, each saying *when* (wall seconds after playback started), *what time it is*
(the ``/clock`` value, in bag time) and *what to publish* (output topic and bytes, or nothing for a
clock-only tick). The player (``replay/player.py``) only sleeps until each event and publishes it.

Time model:
- ``play_start = bag_start + start_offset``; an event at bag time ``t`` is due at wall
  ``(t - play_start) / rate``.
- ``/clock`` ticks every ``1 / clock_hz`` wall seconds, and each message also carries its own
  clock value, so the clock never lags a published message. The clock never goes backwards,
  even if the bag holds out-of-order timestamps.
- Loop ``k`` is shifted by ``k * span`` with ``span = (bag_end - play_start) + one clock tick``:
  ``/clock`` keeps rising across loops. Messages whose first field is a ``std_msgs/Header`` get
  the same shift written into ``header.stamp`` (:func:`shift_header_stamp`) so stamps stay
  consistent with ``/clock`` (age checks such as policy_node's keep working). Loop 0 is
  byte-identical to the bag; stamps nested deeper than the first field are never rewritten.
- Latched topics (transient-local, e.g. the prompt): when ``start_offset`` skips their last
  message, that message is published at the start anyway, as the bag's state at that point.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass

from pi05_moe_policy import topics
from pi05_moe_policy.params import check, param

CLOCK_TOPIC = topics.CLOCK

# (bag topic, recorded timestamp ns, serialized CDR bytes)
BagMessage = tuple[str, int, bytes]

# CDR encapsulation identifiers (first 2 bytes of a serialized message) -> struct byte order.
_CDR_BYTE_ORDER = {b'\x00\x00': '>', b'\x00\x01': '<'}


@dataclass
class ReplayConfig:
    """How to replay a bag. Mirrors ``ros2 bag play`` options where they exist."""

    rate: float = param(1.0, 'playback speed factor: 2.0 plays twice as fast; > 0')
    start_offset: float = param(0.0, 'seconds of bag time skipped at the start; >= 0')
    loop: bool = param(False, 'replay forever; /clock and header stamps keep rising per loop')
    topics: list[str] = param([], 'bag topics to replay (names before remapping); [] = all')
    remaps: dict[str, str] = param({}, 'bag topic -> published topic')
    clock_hz: float = param(100.0, '/clock rate in wall Hz; 0 = no /clock (a recorded /clock '
                                   'is then replayed like any topic)')

    def __post_init__(self):
        check(math.isfinite(self.rate) and self.rate > 0, self, 'rate', 'a finite factor > 0')
        check(math.isfinite(self.start_offset) and self.start_offset >= 0, self, 'start_offset',
              'seconds >= 0')
        check(math.isfinite(self.clock_hz) and self.clock_hz >= 0, self, 'clock_hz',
              'a rate >= 0 Hz (0 disables /clock)')
        check(all(t.startswith('/') for t in self.topics), self, 'topics',
              'absolute topic names starting with "/"')
        check(all(t.startswith('/') for t in [*self.remaps, *self.remaps.values()]), self,
              'remaps', 'absolute topic names starting with "/" on both sides')
        check(not (self.clock_hz > 0 and CLOCK_TOPIC in self.remaps.values()), self, 'remaps',
              f'no topic remapped onto {CLOCK_TOPIC} while replay publishes its own clock')

    def selects(self, topic: str) -> bool:
        """Whether bag topic ``topic`` is replayed."""
        if self.clock_hz > 0 and topic == CLOCK_TOPIC:
            return False  # ours replaces the recorded one
        return not self.topics or topic in self.topics

    def output_topic(self, topic: str) -> str:
        """The name bag topic ``topic`` is published under."""
        return self.remaps.get(topic, topic)


@dataclass(frozen=True)
class Event:
    """One step of the replay: at ``wall_s``, set ``/clock`` to ``clock_ns``, publish ``raw``."""

    wall_s: float  # seconds after playback start at which the event is due
    clock_ns: int  # bag time (loop-shifted) for /clock; never decreases from event to event
    topic: str | None  # output topic (after remapping); None for a clock-only tick
    raw: bytes | None  # serialized message; None for a clock-only tick
    loop: int  # 0 for the first pass through the bag
    bag_ns: int  # the same instant in the bag's own time (clock_ns without the loop shift)
    bag_topic: str | None = None  # topic as recorded (filter/stats key); None for a clock tick


def shift_header_stamp(raw: bytes, shift_ns: int) -> bytes:
    """``raw`` (CDR) with its leading ``std_msgs/Header.stamp`` moved by ``shift_ns``.

    Only valid for message types whose first field is a ``std_msgs/Header``: the stamp
    (int32 sec, uint32 nanosec) then sits right after the 4-byte encapsulation header.
    """
    order = _CDR_BYTE_ORDER.get(bytes(raw[:2]))
    if order is None or len(raw) < 12:
        raise ValueError(f'not a plain CDR message with a leading header: encapsulation '
                         f'{bytes(raw[:4]).hex()}, {len(raw)} bytes')
    sec, nanosec = struct.unpack_from(order + 'iI', raw, 4)
    total = sec * 1_000_000_000 + nanosec + shift_ns
    out = bytearray(raw)
    struct.pack_into(order + 'iI', out, 4, total // 1_000_000_000, total % 1_000_000_000)
    return bytes(out)


def schedule(
    read: Callable[[], Iterable[BagMessage]],
    start_ns: int,
    end_ns: int,
    cfg: ReplayConfig,
    latched: frozenset[str] = frozenset(),
    header_first: frozenset[str] = frozenset(),
) -> Iterator[Event]:
    """The replay as a stream of events (endless with ``cfg.loop``).

    Args:
        read: returns a fresh iterator over the bag's messages in stamp order (called once per
            loop). An exception it raises (a truncated bag) propagates after every event before
            it has been yielded.
        start_ns, end_ns: the bag's first message time and the time just after its last one.
        cfg: the replay options.
        latched: bag topics that are transient-local (the last skipped one is replayed).
        header_first: bag topics whose type starts with a ``std_msgs/Header`` (restamped on
            loops > 0).
    """
    play_start = start_ns + round(cfg.start_offset * 1e9)
    tick_ns = round(cfg.rate * 1e9 / cfg.clock_hz) if cfg.clock_hz > 0 else 0
    # Shifting each loop by more than the bag's length keeps /clock rising across loops.
    span = max(end_ns - play_start, 0) + max(tick_ns, 1)
    loop = 0
    while True:
        played = yield from _one_pass(read(), cfg, play_start, tick_ns, loop, loop * span,
                                      latched, header_first)
        if not cfg.loop or not played:
            return
        loop += 1


def _one_pass(
    messages: Iterable[BagMessage],
    cfg: ReplayConfig,
    play_start: int,
    tick_ns: int,
    loop: int,
    shift: int,
    latched: frozenset[str],
    header_first: frozenset[str],
) -> Generator[Event, None, bool]:
    """One pass through the bag, every time shifted by ``shift``; returns whether it published."""

    def event(t: int, topic: str | None = None, raw: bytes | None = None) -> Event:
        wall = (t - play_start) / cfg.rate / 1e9
        if topic is None:
            return Event(wall, t, None, None, loop, t - shift)
        if shift and topic in header_first:
            raw = shift_header_stamp(raw, shift)
        return Event(wall, t, cfg.output_topic(topic), raw, loop, t - shift, topic)

    clock = play_start + shift  # the last clock value handed out
    next_tick = clock
    skipped_latched: dict[str, bytes] = {}  # latched topic -> last message before play_start
    started = False
    for topic, t, raw in messages:
        if not cfg.selects(topic):
            continue
        if t < play_start:
            if topic in latched:
                skipped_latched.pop(topic, None)  # keep recorded order in the dict
                skipped_latched[topic] = raw
            continue
        if not started:
            started = True
            for latched_topic, latched_raw in skipped_latched.items():
                yield event(clock, latched_topic, latched_raw)
        while tick_ns and next_tick < t + shift:
            if next_tick >= clock:
                clock = next_tick
                yield event(clock)
            next_tick += tick_ns
        clock = max(clock, t + shift)  # an out-of-order stamp does not move the clock back
        yield event(clock, topic, raw)
    return started
