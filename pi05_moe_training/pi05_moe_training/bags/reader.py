"""Read rosbag2 bags (MCAP or sqlite3, ours or ``ros2 bag record``'s) without ROS. Pure.

:class:`BagReader` wraps ``rosbags``' reader with what the converter needs:
- every failure (a missing or unreadable ``metadata.yaml``, a truncated or corrupt storage file,
  undecodable messages, fewer messages than the metadata promises) becomes a :class:`BagError`
  whose text is the reason, so a bad bag is skipped and reported, never half-converted silently;
- message types are deserialised with our typestore (:mod:`.typestore`) plus the types the bag
  embeds;
- the episode metadata is found in the ``/episode/metadata`` message or in ``custom_data``
  (:mod:`.episode_meta`); bags from plain ``ros2 bag record`` have none (``meta`` is None).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rosbags.rosbag2 import Reader

from pi05_moe_training.bags import episode_meta
from pi05_moe_training.bags.episode_meta import METADATA_TOPIC, EpisodeMeta
from pi05_moe_training.bags.typestore import make_typestore, register_bag_types

STORAGE_SUFFIXES = ('.mcap', '.db3')


class BagError(Exception):
    """A bag that cannot be used; ``str(error)`` is the reason, naming the bag."""


@dataclass
class BagInfo:
    """What a bag holds, from its metadata."""

    path: Path
    storage: str  # 'mcap' | 'sqlite3'
    topics: dict[str, str] = field(default_factory=dict)  # topic -> msgtype
    counts: dict[str, int] = field(default_factory=dict)  # topic -> message count
    start_ns: int = 0
    end_ns: int = 0
    custom_data: dict[str, str] = field(default_factory=dict)


def find_bags(paths: Iterable[str | Path]) -> list[Path]:
    """Expand the given paths into bags, in argument order (sorted within a directory).

    A bag is a directory holding ``metadata.yaml`` or a storage file, or a bare ``.mcap`` /
    ``.db3`` file; any other directory is searched recursively. Paths that do not exist raise
    ``FileNotFoundError``.
    """
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(f'{path}: no such bag or directory')
        out.extend(_walk(path))
    return out


def _walk(path: Path) -> Iterator[Path]:
    if _is_bag(path):
        yield path
    elif path.is_dir():
        for child in sorted(path.iterdir()):
            if child.is_dir():
                yield from _walk(child)


def _is_bag(path: Path) -> bool:
    if path.is_file():
        return path.suffix in STORAGE_SUFFIXES
    return (path / 'metadata.yaml').is_file() or any(
        p.suffix in STORAGE_SUFFIXES for p in path.iterdir() if p.is_file())


class BagReader:
    """Opens one bag; use as a context manager. Raises :class:`BagError` on any failure."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._reader: Reader | None = None
        self.typestore = make_typestore()

    def __enter__(self) -> BagReader:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        if self.path.is_dir() and not (self.path / 'metadata.yaml').is_file():
            raise BagError(
                f'{self.path}: no metadata.yaml: the recording was not closed (crash or kill '
                f'-9); `ros2 bag reindex {self.path}` can rebuild it')
        try:
            self._reader = Reader(self.path)
            self._reader.open()
            register_bag_types(self.typestore, self._reader.connections)
        except BagError:
            raise
        except Exception as exc:  # noqa: BLE001 - rosbags raises many kinds; all mean "bad bag"
            self._reader = None
            raise BagError(f'{self.path}: unreadable bag: {_why(exc)}') from None
        missing = sorted({c.msgtype for c in self._reader.connections
                          if c.msgtype not in self.typestore.fielddefs})
        if missing:
            raise BagError(f'{self.path}: message types without a definition: {missing}')

    def close(self) -> None:
        if self._reader is not None:
            try:
                self._reader.close()
            finally:
                self._reader = None

    @property
    def reader(self) -> Reader:
        if self._reader is None:
            raise BagError(f'{self.path}: bag is not open')
        return self._reader

    @property
    def info(self) -> BagInfo:
        r = self.reader
        topics, counts = {}, {}
        for c in r.connections:
            topics[c.topic] = c.msgtype
            counts[c.topic] = counts.get(c.topic, 0) + c.msgcount
        storage = 'sqlite3' if any(p.suffix == '.db3' for p in self._storage_files()) else 'mcap'
        custom = getattr(r.storage, 'metadata', None)
        return BagInfo(self.path, storage, topics, counts,
                       r.start_time if r.message_count else 0,
                       r.end_time if r.message_count else 0,
                       dict(getattr(custom, 'custom', None) or {}))

    def _storage_files(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        return [p for p in self.path.iterdir() if p.suffix in STORAGE_SUFFIXES]

    def raw_messages(self, topics: Iterable[str] | None = None
                     ) -> Iterator[tuple[str, int, bytes]]:
        """Yield ``(topic, receive_time_ns, cdr_bytes)`` in time order.

        ``topics=None`` reads all. At the end the number read per topic is checked against the
        metadata: a shortfall (truncated storage) raises :class:`BagError`.
        """
        r = self.reader
        wanted = None if topics is None else set(topics)
        connections = [c for c in r.connections if wanted is None or c.topic in wanted]
        if not connections:
            return
        expected: dict[str, int] = {}
        for c in connections:
            expected[c.topic] = expected.get(c.topic, 0) + c.msgcount
        seen = dict.fromkeys(expected, 0)
        try:
            for connection, stamp, data in r.messages(connections=connections):
                seen[connection.topic] += 1
                yield connection.topic, stamp, data
        except BagError:
            raise
        except Exception as exc:  # noqa: BLE001 - a corrupt storage file
            raise BagError(f'{self.path}: corrupt after {sum(seen.values())} messages: '
                           f'{_why(exc)}') from None
        short = {t: f'{seen[t]}/{n}' for t, n in expected.items() if n and seen[t] < n}
        if short:
            raise BagError(f'{self.path}: truncated or corrupt: read fewer messages than its '
                           f'metadata lists (read/listed): {short}')

    def messages(self, topics: Iterable[str] | None = None) -> Iterator[tuple[str, int, Any]]:
        """Like :meth:`raw_messages` but deserialised into rosbags message objects."""
        types = self.info.topics
        for topic, stamp, data in self.raw_messages(topics):
            try:
                msg = self.typestore.deserialize_cdr(data, types[topic])
            except Exception as exc:  # noqa: BLE001 - a corrupt message
                raise BagError(f'{self.path}: {topic}: undecodable {types[topic]} message at '
                               f'{stamp} ns: {_why(exc)}') from None
            yield topic, stamp, msg

    def episode_meta(self) -> EpisodeMeta | None:
        """The episode metadata: the last /episode/metadata message, else custom_data."""
        meta = None
        if METADATA_TOPIC in self.info.topics:
            for _, _, msg in self.messages([METADATA_TOPIC]):
                meta = msg.data
        try:
            if meta is not None:
                return episode_meta.from_json(meta)
            return episode_meta.from_custom_data(self.info.custom_data)
        except ValueError as exc:
            raise BagError(f'{self.path}: bad episode metadata: {exc}') from None


def _why(exc: BaseException) -> str:
    text = str(exc).strip()
    return f'{type(exc).__name__}: {text}' if text else type(exc).__name__
