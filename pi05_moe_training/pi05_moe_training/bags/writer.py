"""One rosbag2 bag written by a background thread, so that no caller ever waits on the disk. Pure.

Producers (ROS callbacks, the simulator loop) call :meth:`BagWriter.write` with already
serialised CDR bytes (``rclpy.serialization.serialize_message`` or a raw subscription) or with a
``rosbags`` message object; the call only appends to a queue. A worker thread owns the ``rosbags``
``Writer`` (MCAP by default, sqlite3 on request), serialises message objects and writes. MCAP
chunks can be zstd-compressed (``compression='zstd'``: MCAP's own chunk compression, which
``ros2 bag``, Foxglove and the MCAP tools read; metadata.yaml keeps compression_mode empty, as
rosbag2's own MCAP storage compression does). The queue
is bounded in bytes: when the disk falls that far behind, new messages are dropped and counted
(never blocking the producer), and :attr:`BagWriter.dropped` reports them.

:meth:`BagWriter.close` drains the queue, writes the episode metadata (``custom_data`` and the
``/episode/metadata`` message, see :mod:`.episode_meta`) and finalises ``metadata.yaml``; a bag
that was closed is a complete rosbag2 bag that ``ros2 bag info/play`` and Foxglove open.
"""

from __future__ import annotations

import queue
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
from rosbags.typesys.store import Typestore

from pi05_moe_training.bags.episode_meta import METADATA_MSGTYPE, METADATA_TOPIC, EpisodeMeta

STORAGES = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
COMPRESSIONS = ('none', 'zstd')  # MCAP chunk compression
# metadata.yaml version 8 (custom_data, type hashes, offered QoS as a YAML string) is read by
# every rosbag2 from Humble to Kilted; version 9's QoS lists make Humble's parser fail
# ("yaml-cpp: bad conversion", rqt_bag issue #146), and the robot may run Humble.
BAG_VERSION = 8
_STOP = object()


def make_qos(reliability: str = 'reliable', durability: str = 'volatile', depth: int = 10,
             history: str = 'keep_last') -> Qos:
    """A rosbags ``Qos`` (the offered QoS recorded per topic) from rosbag2's lower-case names."""
    zero = QosTime(0, 0)
    return Qos(
        history=QosHistory[history.upper()],
        depth=int(depth),
        reliability=QosReliability[reliability.upper()],
        durability=QosDurability[durability.upper()],
        deadline=zero,
        lifespan=zero,
        liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=zero,
        avoid_ros_namespace_conventions=False,
    )


# How /episode/metadata is offered: a late joiner (ros2 bag play's subscribers) still gets it.
METADATA_QOS = make_qos('reliable', 'transient_local', depth=1)


@dataclass
class BagSummary:
    """What a closed bag holds."""

    path: Path
    counts: dict[str, int] = field(default_factory=dict)  # topic -> messages written
    dropped: int = 0  # messages refused because the queue was full
    start_ns: int = 0
    end_ns: int = 0
    streams: dict[str, dict] = field(default_factory=dict)  # topic -> loss report (recorder)

    @property
    def duration_s(self) -> float:
        return max(0, self.end_ns - self.start_ns) * 1e-9

    def to_json(self) -> dict:
        """The episode summary as ``~/stop`` replies it."""
        return {'bag': str(self.path), 'duration_s': round(self.duration_s, 3),
                'counts': self.counts, 'dropped': self.dropped, 'streams': self.streams}


def _object_bytes(msg: Any) -> int:
    """Rough size of a rosbags message object: its top-level arrays plus a fixed overhead."""
    return 256 + sum(getattr(getattr(msg, f, None), 'nbytes', 0)
                     for f in getattr(msg, '__dataclass_fields__', ()))


class BagWriterError(RuntimeError):
    """The bag could not be written (disk full, bad type, path exists); the text says why."""


class BagWriter:
    """Writes one bag at ``path`` (a new directory) from any thread, without blocking.

    Args:
        path: bag directory to create; must not exist.
        typestore: knows every message type that will be added (see :mod:`.typestore`).
        storage: 'mcap' (default) or 'sqlite3'.
        compression: 'none' (default) or 'zstd' (MCAP chunks; needs storage='mcap').
        max_queue_bytes: messages waiting for the disk beyond this are dropped and counted.
    """

    def __init__(self, path: str | Path, typestore: Typestore, *, storage: str = 'mcap',
                 max_queue_bytes: int = 1 << 30, compression: str = 'none'):
        if storage not in STORAGES:
            raise BagWriterError(f'storage={storage!r}: expected one of {sorted(STORAGES)}')
        if compression not in COMPRESSIONS:
            raise BagWriterError(f'compression={compression!r}: expected one of {COMPRESSIONS}')
        if compression != 'none' and storage != 'mcap':
            raise BagWriterError(f'compression={compression!r} compresses MCAP chunks: it needs '
                                 f"storage='mcap', not {storage!r}")
        self._compression = compression
        self.path = Path(path)
        self._store = typestore
        self._max_queue_bytes = int(max_queue_bytes)
        self._storage = STORAGES[storage]
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # signalled when queued bytes go down
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._queued_bytes = 0
        self._topics: dict[str, str] = {}  # topic -> msgtype, as accepted by add_topic
        self._counts: dict[str, int] = {}
        self._dropped = 0
        self._error: BaseException | None = None
        self._meta: EpisodeMeta | None = None
        self._custom: dict[str, str] = {}  # extra metadata.yaml custom_data entries
        self._closed = False
        self._summary: BagSummary | None = None
        # The worker owns the rosbags Writer from open to close (sqlite3 objects are bound to
        # the thread that created them).
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f'bag_writer:{self.path.name}',
                                        daemon=True)
        self._thread.start()
        self._opened.wait()
        if self._error is not None:
            self._thread.join()
            raise BagWriterError(f'cannot create bag {self.path}: {self._error}') from None

    # ------------------------------------------------------------------ producer side
    def add_topic(self, topic: str, msgtype: str, offered_qos: Sequence[Qos] = ()) -> None:
        """Declare a topic before writing to it (raises if the type is unknown)."""
        if msgtype not in self._store.fielddefs:
            raise BagWriterError(
                f'{topic}: message type {msgtype!r} is unknown to the typestore; it cannot be '
                'described in the bag')
        with self._lock:
            self._check_open()
            known = self._topics.get(topic)
            if known is not None:
                if known != msgtype:
                    raise BagWriterError(f'{topic}: already added as {known}, not {msgtype}')
                return
            self._topics[topic] = msgtype
            self._counts[topic] = 0
        self._queue.put(('topic', topic, msgtype, tuple(offered_qos)))

    def write(self, topic: str, timestamp_ns: int, data: bytes | memoryview | Any, *,
              block: bool = False) -> bool:
        """Queue one message; ``data`` is CDR bytes or a rosbags message object of the type.

        When the queue is full: with ``block=False`` (ROS callbacks) the message is dropped and
        counted and False is returned; with ``block=True`` (offline producers such as the
        simulator) the call waits for the disk. A message object must not be changed by the
        caller afterwards (it is serialised later, in the worker).
        """
        raw = isinstance(data, (bytes, bytearray, memoryview))
        size = len(data) if raw else _object_bytes(data)
        with self._room:
            self._check_open()
            if topic not in self._topics:
                raise BagWriterError(f'{topic}: write before add_topic')
            while self._queued_bytes + size > self._max_queue_bytes and self._queued_bytes:
                if not block:
                    self._dropped += 1
                    return False
                self._room.wait()
            self._queued_bytes += size
            self._counts[topic] += 1
        self._queue.put(('msg', topic, int(timestamp_ns), data, size, raw))
        return True

    def set_metadata(self, meta: EpisodeMeta) -> None:
        """The episode metadata to store at :meth:`close` (the latest call wins)."""
        with self._lock:
            self._meta = meta

    def set_custom_data(self, key: str, value: str) -> None:
        """One more ``metadata.yaml`` custom_data entry, written at :meth:`close`."""
        with self._lock:
            self._custom[str(key)] = str(value)

    @property
    def topics(self) -> dict[str, str]:
        with self._lock:
            return dict(self._topics)

    @property
    def counts(self) -> dict[str, int]:
        """Messages accepted so far per topic."""
        with self._lock:
            return dict(self._counts)

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    @property
    def error(self) -> BaseException | None:
        """The worker's failure, if any (then further writes are discarded)."""
        return self._error

    def close(self) -> BagSummary:
        """Drain the queue, store the metadata, finalise the bag (once)."""
        self._finish('close')
        if self._error is not None:
            raise BagWriterError(f'writing {self.path} failed: {self._error}') from self._error
        assert self._summary is not None
        return self._summary

    def discard(self) -> None:
        """Stop writing and delete the bag directory."""
        self._finish('discard')
        shutil.rmtree(self.path, ignore_errors=True)

    def _finish(self, how: str) -> None:
        with self._lock:
            if self._closed:
                raise BagWriterError(f'{self.path}: bag is already closed')
            self._closed = True
        self._queue.put((_STOP, how))
        self._thread.join()

    def _check_open(self) -> None:
        if self._closed:
            raise BagWriterError(f'{self.path}: bag is closed')

    # ------------------------------------------------------------------ worker side
    def _run(self) -> None:
        try:
            writer = Writer(self.path, version=BAG_VERSION,
                            storage_plugin=self._storage)
            if self._compression == 'zstd':
                writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
            writer.open()
        except Exception as exc:  # noqa: BLE001 - re-raised by __init__
            self._error = exc
            return
        finally:
            self._opened.set()
        connections = {}
        while True:
            item = self._queue.get()
            if item[0] is _STOP:
                break
            if self._error is not None:
                self._release(item)
                continue  # keep draining so blocked producers wake up
            try:
                if item[0] == 'topic':
                    _, topic, msgtype, qos = item
                    connections[topic] = writer.add_connection(
                        topic, msgtype, typestore=self._store, offered_qos_profiles=list(qos))
                else:
                    _, topic, stamp, data, _, raw = item
                    connection = connections[topic]
                    if not raw:
                        data = self._store.serialize_cdr(data, connection.msgtype)
                    writer.write(connection, stamp, data)
            except Exception as exc:  # noqa: BLE001 - reported by close() and .error
                self._error = exc
            self._release(item)
        if item[1] == 'close' and self._error is None:
            try:
                self._write_metadata(writer)
                self._summary = BagSummary(
                    self.path, dict(self._counts), self._dropped,
                    writer.min_timestamp if writer.max_timestamp else 0, writer.max_timestamp)
                writer.close()
                return
            except Exception as exc:  # noqa: BLE001 - reported by close()
                self._error = exc
        try:
            writer.abort()
        except Exception:  # noqa: BLE001 - best effort after a failure already reported
            pass

    def _release(self, item: tuple) -> None:
        if item[0] == 'msg':
            with self._room:
                self._queued_bytes -= item[4]
                self._room.notify_all()

    def _write_metadata(self, writer: Writer) -> None:
        for key, value in self._custom.items():
            writer.set_custom_data(key, value)
        meta = self._meta
        if meta is None:
            return
        for key, value in meta.to_custom_data().items():
            writer.set_custom_data(key, value)
        connection = writer.add_connection(
            METADATA_TOPIC, METADATA_MSGTYPE, typestore=self._store,
            offered_qos_profiles=[METADATA_QOS])
        msg = self._store.types[METADATA_MSGTYPE](data=meta.to_json())
        stamp = writer.min_timestamp if writer.max_timestamp else 0
        writer.write(connection, stamp, self._store.serialize_cdr(msg, METADATA_MSGTYPE))
        self._counts[METADATA_TOPIC] = 1
