"""Episode sessions: one bag per episode, started and stopped on demand. Pure (no rclpy).

The recorder node, the ``pi05-moe record`` keyboard and the simulator's demonstration loop all
drive an :class:`EpisodeRecorder`: topics are declared once (as they are discovered), messages
are offered continuously and land in the current bag only while an episode is running.
Transient-local ("latched") topics such as ``/pi05_moe/prompt`` are published once, long before
an episode starts, so their last message is kept and written at the start of every episode.
Every other stream is watched for loss upstream of the recorder (:mod:`.stream_loss`): the
episode summary and the bag's ``metadata.yaml`` (custom_data ``pi05_moe_recorder.streams``)
report per topic what was received, what was expected and the gaps in its header stamps.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rosbags.interfaces import Qos
from rosbags.typesys.store import Typestore

from pi05_moe_policy import topics
from pi05_moe_policy.params import check, param
from pi05_moe_training.bags.episode_meta import (
    DEFAULT_BASE_CAMERA,
    DEFAULT_CAMERAS,
    DEFAULT_EXPERT_CAMERAS,
    EpisodeMeta,
)
from pi05_moe_training.bags.writer import (
    COMPRESSIONS,
    STORAGES,
    BagSummary,
    BagWriter,
    BagWriterError,
    make_qos,
)
from pi05_moe_training.record.stream_loss import StreamMonitor, header_stamp_ns, parse_expected_hz

STREAMS_KEY = 'pi05_moe_recorder.streams'  # custom_data key of the per-topic loss report (JSON)
HEADER_TYPE = 'std_msgs/msg/Header'

# What an episode bag holds by default (the same list as config/record_topics.txt, which
# `ros2 bag record` uses on a robot; a test keeps the two equal).
DEFAULT_TOPICS = [
    topics.L515_COLOR,
    topics.L515_DEPTH,
    topics.WRIST_IMAGE,
    topics.THERMAL_IMAGE,
    topics.JOINT_STATES,
    topics.PROMPT,
    topics.COMMANDS,
    topics.JOINT_TRAJECTORY,
    topics.COMMAND_PREVIEW,
    topics.ACTION_CHUNK,
    topics.ROUTING,
]


@dataclass
class RecorderConfig:
    """The episode recorder (``recorder_node`` parameters and ``pi05-moe record`` options)."""

    out_dir: str = param('bags', 'directory the episode bags are written into')
    prefix: str = param('episode', 'bag directory prefix: <prefix>_<date>_<time>_<n>')
    storage: str = param('mcap', "rosbag2 storage plugin: 'mcap' or 'sqlite3'")
    compression: str = param('none', "'zstd': compress MCAP chunks (about 2.5x smaller sim "
                             "bags for a little CPU, see the README); 'none'")
    topics: list[str] = param(list(DEFAULT_TOPICS),
                              'topics to record; each is subscribed once a publisher appears')
    auto_start: bool = param(False, 'start an episode as soon as the node is up')
    discovery_period_s: float = param(0.5, 'how often to look for the topics not yet found (s)')
    queue_depth: int = param(1000, 'subscription history depth (KEEP_LAST) per topic: absorbs '
                             'executor hiccups without losing messages')
    max_queue_mb: int = param(1024, 'messages waiting for the disk beyond this are dropped (MiB)')
    status_period_s: float = param(0.5, 'period of ~/status while running (s)')
    expected_hz: list[str] = param([], "expected rates, '/topic=Hz' each; other topics learn "
                                   'their period from header stamps (loss detection)')
    loss_warn_period_s: float = param(5.0, 'at most one warning about lost messages per period '
                                      '(s)')
    prompt: str = param('', 'episode metadata: the language instruction')
    task: str = param('', 'episode metadata: task id')
    robot: str = param('', 'episode metadata: robot name')
    operator: str = param('', "episode metadata: operator ('scripted_expert' for sim demos)")
    base_camera: str = param(DEFAULT_BASE_CAMERA, 'camera role: always-on base camera')
    expert_cameras: list[str] = param(list(DEFAULT_EXPERT_CAMERAS),
                                      'camera roles: the gated expert cameras')
    cameras: dict[str, str] = param(dict(DEFAULT_CAMERAS), 'camera name -> image topic')

    def __post_init__(self):
        check(bool(self.out_dir), self, 'out_dir', 'a directory')
        check(self.storage in STORAGES, self, 'storage', f'one of {sorted(STORAGES)}')
        check(self.compression in COMPRESSIONS, self, 'compression', f'one of {COMPRESSIONS}')
        check(self.compression == 'none' or self.storage == 'mcap', self, 'compression',
              "'none' with storage 'sqlite3' (zstd compresses MCAP chunks)")
        check(bool(self.topics) and all(t.startswith('/') for t in self.topics), self, 'topics',
              'a non-empty list of absolute topic names')
        check(len(set(self.topics)) == len(self.topics), self, 'topics', 'no duplicates')
        check(self.discovery_period_s > 0, self, 'discovery_period_s', '> 0')
        check(self.queue_depth >= 1, self, 'queue_depth', '>= 1')
        check(self.max_queue_mb >= 1, self, 'max_queue_mb', '>= 1')
        check(self.status_period_s > 0, self, 'status_period_s', '> 0')
        check(self.loss_warn_period_s > 0, self, 'loss_warn_period_s', '> 0')
        try:
            parse_expected_hz(self.expected_hz)
        except ValueError as exc:
            check(False, self, 'expected_hz', str(exc))
        self.episode_meta()  # validates the camera roles

    def episode_meta(self) -> EpisodeMeta:
        """The metadata the episodes start with."""
        return EpisodeMeta(prompt=self.prompt, task=self.task, robot=self.robot,
                           operator=self.operator, base_camera=self.base_camera,
                           expert_cameras=list(self.expert_cameras), cameras=dict(self.cameras))


@dataclass(frozen=True)
class TopicInfo:
    """A topic as the session records it."""

    msgtype: str
    offered_qos: tuple[Qos, ...] = ()
    latched: bool = False  # keep the last message and write it at each episode start
    stamped: bool = False  # the type starts with a std_msgs/Header (stamp gaps are detected)


def subscription_qos(publishers: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """The (reliability, durability) a recorder should subscribe with, as ``ros2 bag record`` does.

    ``publishers`` are the offered (reliability, durability) pairs, lower-case rosbag2 names. The
    subscription is reliable only if every publisher is (a reliable subscription does not match
    a best-effort publisher, while best effort matches both), and transient-local only if every
    publisher is (same rule for durability). With no publishers: reliable, volatile.
    """
    if not publishers:
        return 'reliable', 'volatile'
    reliable = all(r == 'reliable' for r, _ in publishers)
    latched = all(d == 'transient_local' for _, d in publishers)
    return ('reliable' if reliable else 'best_effort',
            'transient_local' if latched else 'volatile')


def _stamp(data: Any) -> int | None:
    """The header stamp (ns) of CDR bytes or of a rosbags message object with a header."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return header_stamp_ns(data)
    stamp = data.header.stamp
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def episode_dir_name(prefix: str, index: int, when: float | None = None) -> str:
    """``<prefix>_<YYYYmmdd_HHMMSS>_<index:03d>``: sorts by time, unique within a session."""
    stamp = time.strftime('%Y%m%d_%H%M%S', time.localtime(time.time() if when is None else when))
    return f'{prefix}_{stamp}_{index:03d}'


class EpisodeRecorder:
    """Thread-safe episode session writing bags under ``out_dir``.

    Args:
        out_dir: directory for the bags (created).
        meta: metadata for the episodes; :meth:`update_meta` changes it for the current and
            later episodes.
        typestore: knows every recorded type.
        storage: 'mcap' or 'sqlite3'.
        compression: 'none' or 'zstd' (MCAP chunks).
        prefix: bag directory prefix.
        max_queue_bytes: per bag, see :class:`BagWriter`.
        expected_hz: topic -> expected rate; other topics learn theirs from header stamps.
        loss_warn_period_s: :meth:`loss_alert` speaks at most once per this period.
    """

    def __init__(self, out_dir: str | Path, meta: EpisodeMeta, typestore: Typestore, *,
                 storage: str = 'mcap', prefix: str = 'episode', max_queue_bytes: int = 1 << 30,
                 expected_hz: dict[str, float] | None = None, loss_warn_period_s: float = 5.0,
                 compression: str = 'none'):
        self.out_dir = Path(out_dir)
        self._compression = compression
        self.meta = meta
        self._store = typestore
        self._storage = storage
        self._prefix = prefix
        self._max_queue_bytes = max_queue_bytes
        self._lock = threading.RLock()
        self._topics: dict[str, TopicInfo] = {}
        self._latched: dict[str, tuple[int, Any]] = {}  # topic -> (stamp, data)
        self._bag: BagWriter | None = None
        self._episode_index = 0
        self._expected_hz = dict(expected_hz or {})
        self._monitors: dict[str, StreamMonitor] = {}  # this episode's, by topic
        self._loss_warn_period_s = loss_warn_period_s
        self._last_alert = -float('inf')  # time.monotonic() of the last loss_alert
        self.summaries: list[BagSummary] = []

    @property
    def recording(self) -> bool:
        return self._bag is not None

    @property
    def current_path(self) -> Path | None:
        bag = self._bag
        return bag.path if bag is not None else None

    @property
    def topics(self) -> dict[str, TopicInfo]:
        with self._lock:
            return dict(self._topics)

    def add_topic(self, topic: str, msgtype: str, offered_qos: Sequence[Qos] = (), *,
                  latched: bool = False) -> None:
        """Record ``topic`` from now on (in the current episode too, if one is running)."""
        with self._lock:
            if topic in self._topics:
                return
            if msgtype not in self._store.fielddefs:
                raise BagWriterError(f'{topic}: message type {msgtype!r} is unknown to the '
                                     'typestore; it cannot be recorded')
            fields = self._store.fielddefs[msgtype][1]
            stamped = bool(fields) and fields[0][1][1] == HEADER_TYPE
            info = TopicInfo(msgtype, tuple(offered_qos) or (make_qos(),), latched, stamped)
            self._topics[topic] = info
            if self._bag is not None:
                self._bag.add_topic(topic, msgtype, info.offered_qos)

    def write(self, topic: str, timestamp_ns: int, data: Any, *, block: bool = False) -> bool:
        """Offer one message (CDR bytes or a rosbags message object).

        Returns True if it was queued for the current bag; False when no episode is running
        (it is then only remembered if the topic is latched) or the bag's queue is full.
        ``block=True`` waits for room instead (offline producers); it holds the session lock
        meanwhile, so it is for single-threaded producers such as the simulator loop.
        """
        with self._lock:  # held while queueing, so stop() never closes a bag mid-write
            info = self._topics.get(topic)
            if info is None:
                raise BagWriterError(f'{topic}: write before add_topic')
            if info.latched:
                self._latched[topic] = (timestamp_ns, data)
            if self._bag is None:
                return False
            if not info.latched:
                self._monitor(topic).add(timestamp_ns, _stamp(data) if info.stamped else None)
            return self._bag.write(topic, timestamp_ns, data, block=block)

    def _monitor(self, topic: str) -> StreamMonitor:
        monitor = self._monitors.get(topic)
        if monitor is None:
            monitor = self._monitors[topic] = StreamMonitor(self._expected_hz.get(topic))
        return monitor

    def loss_report(self) -> dict[str, dict[str, Any]]:
        """Per topic of the current (or last) episode: received, expected, missing, gaps."""
        with self._lock:
            return {t: m.report() for t, m in sorted(self._monitors.items())}

    def loss_alert(self) -> str | None:
        """A warning about messages lost upstream since the last one, at most once per
        ``loss_warn_period_s``; None when there is nothing new (or it is too soon)."""
        with self._lock:
            if time.monotonic() - self._last_alert < self._loss_warn_period_s:
                return None
            lost = {t: n for t, m in sorted(self._monitors.items()) if (n := m.take_unreported())}
            if not lost:
                return None
            self._last_alert = time.monotonic()
        return ('messages lost before the recorder (gaps in header stamps; DDS or driver, see '
                f'docs/recording.md): {lost}')

    def update_meta(self, **changes: Any) -> EpisodeMeta:
        """Change the metadata of the current and later episodes (validated)."""
        with self._lock:
            self.meta = self.meta.updated(**changes)
            if self._bag is not None:
                self._bag.set_metadata(self.meta)
            return self.meta

    def start(self, timestamp_ns: int, **meta_changes: Any) -> Path:
        """Open a new bag and start recording into it; raises if an episode is running."""
        with self._lock:
            if self._bag is not None:
                raise BagWriterError(f'an episode is already being recorded into {self._bag.path}')
            if meta_changes:
                self.meta = self.meta.updated(**meta_changes)
            try:
                self.out_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:  # read-only file system, no permission, full disk
                where = exc.filename or self.out_dir
                raise BagWriterError(f'cannot create the bag directory {where}: '
                                     f'{exc.strerror or exc}') from None
            path = self._next_path()
            bag = BagWriter(path, self._store, storage=self._storage,
                            max_queue_bytes=self._max_queue_bytes,
                            compression=self._compression)
            for topic, info in self._topics.items():
                bag.add_topic(topic, info.msgtype, info.offered_qos)
            for topic, (_, data) in self._latched.items():
                bag.write(topic, timestamp_ns, data)
            bag.set_metadata(self.meta)
            self._bag = bag
            self._monitors = {}
            return path

    def stop(self, *, success: bool | None = None, discard: bool = False) -> BagSummary | None:
        """Close the current bag (None if none was open); ``discard`` deletes it instead."""
        with self._lock:
            bag, self._bag = self._bag, None
            if bag is None:
                return None
            if success is not None:
                self.meta = self.meta.updated(success=success)
            meta = self.meta
            # The next episode's verdict is unknown again.
            self.meta = self.meta.updated(success=None)
        if discard:
            bag.discard()
            return None
        bag.set_metadata(meta)
        streams = self.loss_report()
        bag.set_custom_data(STREAMS_KEY, json.dumps(streams, sort_keys=True))
        summary = bag.close()
        summary.streams = streams
        with self._lock:
            self.summaries.append(summary)
        return summary

    def status(self) -> dict[str, Any]:
        """A JSON-able snapshot for status topics and keyboard feedback."""
        with self._lock:
            bag = self._bag
            return {
                'recording': bag is not None,
                'bag': str(bag.path) if bag is not None else '',
                'episodes_done': len(self.summaries),
                'queued_mb': round(bag.queued_bytes / 2**20, 2) if bag is not None else 0.0,
                'dropped': bag.dropped if bag is not None else 0,
                'counts': bag.counts if bag is not None else {},
                'missing': {t: n for t, m in sorted(self._monitors.items())
                            if bag is not None and (n := m.report()['missing'])},
                'error': str(bag.error) if bag is not None and bag.error else '',
                'topics': sorted(self._topics),
                'prompt': self.meta.prompt,
            }

    def _next_path(self) -> Path:
        while True:
            self._episode_index += 1
            path = self.out_dir / episode_dir_name(self._prefix, self._episode_index)
            if not path.exists():
                return path
