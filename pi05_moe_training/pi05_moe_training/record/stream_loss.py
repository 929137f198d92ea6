"""Loss that happens before the recorder sees a message (in DDS, in the driver). Pure.

A recorder that drops nothing itself can still receive far fewer frames than were published: a
reliable publisher with a bounded history overwrites samples that a starved subscriber has not
acknowledged, and best-effort samples vanish on a busy network. Nothing in the recorder fails
then, so each stream is watched from what it receives:

- **Header-stamp gaps.** For message types that start with a ``std_msgs/Header`` the stamp is
  read straight from the CDR bytes (:func:`header_stamp_ns`, nothing deserialised). The stream's
  period is the configured one (``expected_hz``) or is learned as the median of its first
  ``LEARN`` stamp intervals; an interval of ``k`` periods (``k >= 2``, rounded) is one gap of
  ``k - 1`` missing messages.
- **Rate.** ``received`` is how many arrived; ``expected`` is, at a configured rate, how many the
  stamp span (the receive span for streams without stamps) holds, and with a learned period the
  received plus the missing ones (the rate is then measured over the whole span).
"""

from __future__ import annotations

import statistics
import struct
from dataclasses import dataclass, field
from typing import Any

LEARN = 10  # stamp intervals whose median is taken as a stream's period
_CDR_BYTE_ORDER = {b'\x00\x00': '>', b'\x00\x01': '<'}  # encapsulation id -> struct byte order


def header_stamp_ns(raw: bytes | memoryview) -> int | None:
    """The ``header.stamp`` (ns) of a CDR message whose first field is a std_msgs/Header; None
    if the bytes are not plain CDR."""
    order = _CDR_BYTE_ORDER.get(bytes(raw[:2]))
    if order is None or len(raw) < 12:
        return None
    sec, nanosec = struct.unpack_from(order + 'iI', raw, 4)
    return sec * 1_000_000_000 + nanosec


def parse_expected_hz(items: list[str]) -> dict[str, float]:
    """``['/joint_states=100', ...]`` -> ``{'/joint_states': 100.0}`` (ValueError quoting the
    bad item)."""
    out = {}
    for item in items:
        topic, sep, hz = item.rpartition('=')
        try:
            rate = float(hz)
        except ValueError:
            rate = 0.0
        if not sep or not topic.startswith('/') or not rate > 0:
            raise ValueError(f'expected_hz item {item!r}: expected "/topic=<Hz > 0>"')
        out[topic] = rate
    return out


@dataclass
class StreamMonitor:
    """Counts what one stream received during one episode, and what it should have."""

    expected_hz: float | None = None  # configured; None: learned from the header stamps
    received: int = 0
    gaps: int = 0
    missing: int = 0  # messages missing inside the gaps
    unreported: int = 0  # missing since the last :meth:`take_unreported`
    first_stamp: int | None = None
    last_stamp: int | None = None
    first_receive: int | None = None
    last_receive: int | None = None
    _learning: list[int] = field(default_factory=list)  # first stamp intervals (ns)
    _period: float | None = None  # ns

    def __post_init__(self):
        if self.expected_hz is not None:
            self._period = 1e9 / self.expected_hz

    @property
    def period_ns(self) -> float | None:
        return self._period

    def add(self, receive_ns: int, stamp_ns: int | None) -> None:
        """One received message (``stamp_ns`` None or 0: the stream carries no stamps)."""
        self.received += 1
        self.first_receive = receive_ns if self.first_receive is None else self.first_receive
        self.last_receive = receive_ns
        if not stamp_ns:
            return
        if self.last_stamp is None:
            self.first_stamp = self.last_stamp = stamp_ns
            return
        interval = stamp_ns - self.last_stamp
        if interval <= 0:
            return  # a repeated or out-of-order stamp: neither a gap nor progress
        self.last_stamp = stamp_ns
        if self._period is None:
            self._learning.append(interval)
            if len(self._learning) < LEARN:
                return
            self._period = float(statistics.median(self._learning))
            for learned in self._learning:  # gaps while learning count too
                self._count(learned)
            return
        self._count(interval)

    def _count(self, interval: int) -> None:
        lost = round(interval / self._period) - 1
        if lost >= 1:
            self.gaps += 1
            self.missing += lost
            self.unreported += lost

    def take_unreported(self) -> int:
        n, self.unreported = self.unreported, 0
        return n

    def report(self) -> dict[str, Any]:
        """JSON-able: received, expected, missing, gaps, the rates and where the period came
        from ('configured', 'stamps', or 'unknown' with too few stamps)."""
        source = ('configured' if self.expected_hz is not None
                  else 'stamps' if self._period is not None else 'unknown')
        stamped = self.first_stamp is not None and self.last_stamp != self.first_stamp
        span_ns = (self.last_stamp - self.first_stamp if stamped else
                   (self.last_receive or 0) - (self.first_receive or 0))
        expected, missing, hz = None, self.missing, None
        if stamped and self.expected_hz is None:  # learned: the gaps are what is missing
            expected = self.received + self.missing if self._period is not None else None
            hz = (self.received + self.missing - 1) / (span_ns * 1e-9) if expected else None
        elif self.expected_hz is not None:  # configured: the span says how many to expect
            expected = round(span_ns / self._period) + 1 if self.received else 0
            missing = self.missing if stamped else max(0, expected - self.received)
            hz = self.expected_hz
        return {
            'received': self.received,
            'expected': expected,
            'missing': missing,
            'gaps': self.gaps,
            'expected_hz': round(hz, 3) if hz else None,
            'received_hz': (round((self.received - 1) / (span_ns * 1e-9), 3)
                            if span_ns > 0 and self.received > 1 else None),
            'period_source': source,
            'stamped': stamped,
        }
