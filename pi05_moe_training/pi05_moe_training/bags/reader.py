"""Read rosbag2 bags (MCAP or sqlite3, ours or ``ros2 bag record``'s) without ROS. Pure.

:class:`BagReader` wraps ``rosbags``' reader with what the converter needs:
- every failure (a missing or unreadable ``metadata.yaml``, a truncated or corrupt storage file,
  undecodable messages, fewer messages than the metadata promises) becomes a :class:`BagError`
  whose text is the reason, so a bad bag is skipped and reported, never half-converted silently;
- message types are deserialised with our typestore (:mod:`.typestore`) plus the types the bag
  embeds;
- the episode metadata is found in the ``/episode/metadata`` message or in ``custom_data``
  (:mod:`.episode_meta`); bags from plain ``ros2 bag record`` have none (``meta`` is None);
- ``salvage=True``: an MCAP bag left without ``metadata.yaml`` (a recording killed by ``kill -9``,
  a full disk or Ctrl-C) is read through :mod:`.mcap_salvage`, which keeps every message up to
  the first cut record; :attr:`BagReader.salvaged` then says how much was kept and why.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rosbags.rosbag2 import Reader

from pi05_moe_training.bags import episode_meta
from pi05_moe_training.bags.episode_meta import METADATA_TOPIC, EpisodeMeta
from pi05_moe_training.bags.mcap_salvage import SalvagedMcap, SalvageError
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

    def __init__(self, path: str | Path, *, salvage: bool = False):
        self.path = Path(path)
        self._reader: Reader | None = None
        self._salvage = salvage
        self._salvaged: SalvagedMcap | None = None
        self.salvaged: str | None = None  # what a salvaged bag kept (None: read normally)
        self.typestore = make_typestore()

    def __enter__(self) -> BagReader:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        if self.path.is_dir() and not (self.path / 'metadata.yaml').is_file():
            why = (f'{self.path}: no metadata.yaml: the recording was not closed (crash, kill -9, '
                   'full disk)')
            if self._salvage:
                return self._open_salvaged(why)
            raise BagError(f'{why}; `ros2 bag reindex {self.path}` can rebuild it, or convert '
                           'salvages what the MCAP file holds')
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

    def _open_salvaged(self, why: str) -> None:
        try:
            salvaged = SalvagedMcap(self.path)
        except (SalvageError, OSError) as exc:
            raise BagError(f'{why}, and nothing can be salvaged: {exc}') from None
        if not salvaged.message_count:
            raise BagError(f'{why}, and its MCAP data holds no complete message '
                           f'({salvaged.stopped})')
        register_bag_types(self.typestore, salvaged.connections)
        missing = sorted({c.msgtype for c in salvaged.connections
                          if c.msgtype not in self.typestore.fielddefs})
        if missing:
            raise BagError(f'{self.path}: message types without a definition: {missing}')
        self._salvaged = salvaged
        span = (salvaged.end_ns - salvaged.start_ns) * 1e-9
        self.salvaged = (f'salvaged {salvaged.message_count} messages ({span:.3f} s) from an '
                         f'unclosed recording; the data ends there: '
                         f'{salvaged.stopped or "every file ended cleanly"}')

    def close(self) -> None:
        self._salvaged = None
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
    def connections(self) -> list:
        """The rosbags ``Connection`` s (topic, msgtype, msgcount, offered QoS)."""
        if self._salvaged is not None:
            return list(self._salvaged.connections)
        return list(self.reader.connections)

    @property
    def info(self) -> BagInfo:
        if self._salvaged is not None:
            s = self._salvaged
            topics, counts = {}, {}
            for c in s.connections:
                topics[c.topic] = c.msgtype
                counts[c.topic] = counts.get(c.topic, 0) + c.msgcount
            return BagInfo(self.path, 'mcap', topics, counts, s.start_ns, s.end_ns, {})
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
        wanted = None if topics is None else set(topics)
        if self._salvaged is not None:  # what is left, with nothing listed to check against
            yield from self._salvaged.messages(wanted)
            return
        r = self.reader
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
