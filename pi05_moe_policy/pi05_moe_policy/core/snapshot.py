"""The observation snapshot: the latest message per stream, checked for age and skew. Pure.

Subscription callbacks :meth:`SnapshotBuffer.put` each message with its *header* stamp (seconds
on the node's clock, so sim time under ``use_sim_time`` with bag replay or a simulator). The
inference worker calls :meth:`SnapshotBuffer.build` with the node's current time and gets either
a :class:`Snapshot` or a :class:`Skip` that says which topic is at fault and why:

- every *required* stream (the base camera, the joint states) must have a message, not from the
  future (beyond ``max_skew``), and no older than ``max_age``;
- the required stamps must lie within ``max_skew`` of each other;
- an *optional* stream (an expert camera) that is missing, stale or skewed is left out: the
  policy then runs without it (its features are zeroed and its mask is off).

The observation time is the newest required stamp; a build that would repeat the last
observation's time returns ``None`` (nothing new to infer from).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from pi05_moe_policy.params import check, param


@dataclass
class SnapshotConfig:
    """How fresh and how synchronised the inputs of one inference must be."""

    max_age: float = param(
        0.5, 'Largest age (s) of a stream at inference time: header stamp vs the node clock '
        '(sim time under use_sim_time). An older required stream skips the inference; an older '
        'optional camera is left out.')
    max_skew: float = param(
        0.25, 'Largest spread (s) between the header stamps of the streams in one observation; '
        'also how far a stamp may lie in the future of the node clock.')
    stream_max_age: dict[str, float] = param(
        {}, 'Per-stream overrides of max_age (s), keyed by camera name or "joint_states", '
        'e.g. {thermal: 0.5} for a 9 Hz thermal camera.')

    def __post_init__(self) -> None:
        check(self.max_age > 0, self, 'max_age', 'a number of seconds > 0')
        check(self.max_skew >= 0, self, 'max_skew', 'a number of seconds >= 0')
        check(all(v > 0 for v in self.stream_max_age.values()), self, 'stream_max_age',
              'ages in seconds > 0')


@dataclass(frozen=True)
class Snapshot:
    """One observation's worth of messages."""

    stamp: float  # observation time (s): the newest required stamp
    newest: str  # the required stream that stamp comes from
    values: dict[str, Any]  # stream name -> stored value, for every stream taken
    stamps: dict[str, float]  # stream name -> header stamp (s)
    left_out: dict[str, str]  # optional stream name -> why it was left out


@dataclass(frozen=True)
class Skip:
    """Why no observation could be built; ``text`` names the topic."""

    stream: str  # stream name at fault ('clock' for a clock jump)
    reason: str  # 'missing' | 'future' | 'stale' | 'skew' | 'clock_jump'
    text: str


class SnapshotBuffer:
    """Latest (stamp, value) per stream; thread-safe between callbacks and one worker.

    ``required`` and ``optional`` map stream names to the topics they come from (for messages).
    """

    def __init__(self, cfg: SnapshotConfig, required: dict[str, str],
                 optional: dict[str, str]) -> None:
        overlap = set(required) & set(optional)
        if overlap:
            raise ValueError(f'streams both required and optional: {sorted(overlap)}')
        unknown = set(cfg.stream_max_age) - set(required) - set(optional)
        if unknown:
            raise ValueError(f'stream_max_age names unknown streams {sorted(unknown)}; known: '
                             f'{sorted({**required, **optional})}')
        self.cfg = cfg
        self.required = dict(required)
        self.optional = dict(optional)
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[float, Any]] = {}
        self._last_stamp: float | None = None  # time of the last observation built
        self._last_now: float | None = None

    def topic(self, stream: str) -> str:
        return {**self.required, **self.optional}[stream]

    def put(self, stream: str, stamp: float, value: Any) -> None:
        """Store ``value`` as the latest of ``stream`` (arrival order wins)."""
        if stream not in self.required and stream not in self.optional:
            raise KeyError(f'unknown stream {stream!r}')
        with self._lock:
            self._latest[stream] = (float(stamp), value)

    def build(self, now: float) -> Snapshot | Skip | None:
        """The observation at time ``now``, a :class:`Skip`, or None when nothing is new."""
        with self._lock:
            if self._last_now is not None and now < self._last_now:
                before = self._last_now
                self._latest.clear()
                self._last_stamp = None
                self._last_now = None
                return Skip('clock', 'clock_jump',
                            f'node clock went back from {before:.3f} s to {now:.3f} s (bag or '
                            'simulator restarted?): stored messages dropped')
            self._last_now = now
            latest = dict(self._latest)
        stamps: dict[str, float] = {}
        for stream in self.required:
            if stream not in latest:
                return Skip(stream, 'missing', f'{self.topic(stream)}: no message received yet')
            problem = self._age_problem(stream, latest[stream][0], now)
            if problem:
                return Skip(stream, problem[0], problem[1])
            stamps[stream] = latest[stream][0]
        newest = max(stamps, key=stamps.get)
        oldest = min(stamps, key=stamps.get)
        stamp = stamps[newest]
        if stamp - stamps[oldest] > self.cfg.max_skew:
            return Skip(oldest, 'skew',
                        f'{self.topic(oldest)} is {stamp - stamps[oldest]:.3f} s older than '
                        f'{self.topic(newest)} (max_skew {self.cfg.max_skew:g} s)')
        if self._last_stamp is not None and stamp <= self._last_stamp:
            return None
        left_out: dict[str, str] = {}
        for stream in self.optional:
            if stream not in latest:
                left_out[stream] = f'{self.topic(stream)}: no message received yet'
                continue
            t = latest[stream][0]
            problem = self._age_problem(stream, t, now)
            if problem is None and abs(t - stamp) > self.cfg.max_skew:
                problem = ('skew', f'{self.topic(stream)} is {abs(t - stamp):.3f} s away from '
                           f'the observation time (max_skew {self.cfg.max_skew:g} s)')
            if problem:
                left_out[stream] = problem[1]
            else:
                stamps[stream] = t
        with self._lock:
            self._last_stamp = stamp
        return Snapshot(stamp, newest, {s: latest[s][1] for s in stamps}, stamps, left_out)

    def _age_problem(self, stream: str, t: float, now: float) -> tuple[str, str] | None:
        max_age = self.cfg.stream_max_age.get(stream, self.cfg.max_age)
        if t - now > self.cfg.max_skew:
            return ('future', f'{self.topic(stream)}: header stamp is {t - now:.3f} s ahead of '
                    'the node clock (a clock mismatch: use_sim_time without /clock, or a '
                    'driver stamping with another clock?)')
        if t == 0.0 and now > max_age:
            return ('stale', f'{self.topic(stream)}: header stamp is zero (the publisher does '
                    'not stamp its messages)')
        if now - t > max_age:
            return ('stale', f'{self.topic(stream)}: newest message is {now - t:.3f} s old '
                    f'(max_age {max_age:g} s)')
        return None
