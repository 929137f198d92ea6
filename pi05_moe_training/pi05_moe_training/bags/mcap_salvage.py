"""Read what is left of a truncated MCAP bag (a recording killed, a copy cut short). Pure.

``rosbags`` opens an MCAP file through its footer and summary, which a truncated file lacks, so it
refuses the whole file. :class:`SalvagedMcap` instead walks the data section record by record
(chunks included, decompressed with ``rosbags``' own helpers) and stops at the first record that
is cut or corrupt, keeping everything before it. Messages come in file order, each chunk's sorted
by log time, as rosbag2 writes them in arrival order.
"""

from __future__ import annotations

import struct
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

from rosbags.interfaces import Connection, ConnectionExtRosbag2
from rosbags.rosbag2.storage_mcap import (
    Schema,
    decompress,
    get_msgdef,
    get_qos,
    read_bytes,
    read_string,
)

MAGIC = b'\x89MCAP0\r\n'
_FOOTER, _SCHEMA, _CHANNEL, _MESSAGE, _CHUNK, _DATA_END = 0x02, 0x03, 0x04, 0x05, 0x06, 0x0F
_RECORD_HEAD = struct.Struct('<BQ')  # opcode, content length
_MESSAGE_HEAD = struct.Struct('<HIQQ')  # channel id, sequence, log time, publish time
_CHUNK_HEAD = struct.Struct('<QQQI')  # start time, end time, uncompressed size, crc


class SalvageError(Exception):
    """Not an MCAP file at all (nothing to salvage)."""


@dataclass
class SalvagedMcap:
    """The readable part of the MCAP files of one bag (``.mcap`` files in name order).

    After construction (one scan), ``connections`` carry the message counts found,
    ``start_ns``/``end_ns`` the time range and ``stopped`` why the scan ended early (None when
    every file ended cleanly). :meth:`messages` scans again and yields the same messages.
    """

    path: Path
    files: list[Path] = field(init=False)
    connections: list[Connection] = field(init=False, default_factory=list)
    start_ns: int = field(init=False, default=0)
    end_ns: int = field(init=False, default=0)
    stopped: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.files = ([self.path] if self.path.is_file()
                      else sorted(self.path.glob('*.mcap'), key=_natural))
        if not self.files:
            raise SalvageError(f'{self.path}: no .mcap file')
        counts: dict[int, int] = {}
        times: list[int] = []
        for connection, t, _ in self._scan():
            counts[connection.id] = counts.get(connection.id, 0) + 1
            times.append(t)
        self.connections = [c._replace(msgcount=counts.get(c.id, 0)) for c in self.connections]
        if times:
            self.start_ns, self.end_ns = min(times), max(times) + 1

    @property
    def message_count(self) -> int:
        return sum(c.msgcount for c in self.connections)

    def messages(self, topics: set[str] | None = None) -> Iterator[tuple[str, int, bytes]]:
        """``(topic, log_time_ns, cdr)`` of every salvaged message (of ``topics``)."""
        for connection, t, raw in self._scan():
            if topics is None or connection.topic in topics:
                yield connection.topic, t, raw

    def _scan(self) -> Iterator[tuple[Connection, int, bytes]]:
        """Messages up to the first cut or corrupt record; sets ``connections``, ``stopped``."""
        by_key = {(c.topic, c.msgtype): c for c in self.connections}
        self.stopped = None
        for path in self.files:
            schemas: dict[int, Schema] = {}
            channels: dict[int, Connection] = {}  # this file's channel id -> connection
            with path.open('rb') as f:
                if f.read(8) != MAGIC:
                    raise SalvageError(f'{path}: not an MCAP file (bad magic)')
                records = _records(f, path.name, path.stat().st_size)
                while True:
                    try:
                        op, content = next(records)
                    except StopIteration as end:
                        self.stopped = end.value
                        break
                    if op == _SCHEMA:
                        schema = _parse_schema(content)
                        schemas[schema.id] = schema
                    elif op == _CHANNEL:
                        cid, connection = _parse_channel(content, schemas, len(by_key) + 1)
                        channels[cid] = by_key.setdefault((connection.topic, connection.msgtype),
                                                          connection)
                        self.connections = list(by_key.values())
                    elif op == _MESSAGE:
                        cid, _, log_time, _ = _MESSAGE_HEAD.unpack_from(content)
                        if cid in channels:
                            yield channels[cid], log_time, content[_MESSAGE_HEAD.size:]
            if self.stopped:
                return


def _records(f, name: str, size: int) -> Generator[tuple[int, bytes], None, str | None]:
    """(opcode, content) of each complete data-section record, chunks unpacked; returns why the
    file ended early, or None at its data-end or footer record."""
    while True:
        offset = f.tell()
        head = f.read(_RECORD_HEAD.size)
        if not head:
            return f'{name} ends at byte {offset} without a footer'
        if len(head) < _RECORD_HEAD.size:
            return f'{name} is cut inside a record header at byte {offset}'
        op, length = _RECORD_HEAD.unpack(head)
        if length > size - f.tell():
            return (f'{name} is cut at byte {size}, inside a record starting at byte {offset} '
                    f'that needs {length} bytes')
        content = f.read(length)
        if op in (_FOOTER, _DATA_END):
            return None
        if op != _CHUNK:
            yield op, content
            continue
        try:
            records = list(_chunk_records(content))
        except Exception as exc:  # noqa: BLE001 - any decode failure means a corrupt chunk
            return f'{name}: corrupt chunk at byte {offset}: {exc}'
        yield from records


def _natural(path: Path) -> tuple:
    """Sort key putting bag_2.mcap before bag_10.mcap."""
    stem = path.stem
    digits = len(stem) - len(stem.rstrip('0123456789'))
    return (stem[:len(stem) - digits], int(stem[len(stem) - digits:] or 0))


def _chunk_records(content: bytes) -> Iterator[tuple[int, bytes]]:
    """The records inside a chunk, messages sorted by log time (stable)."""
    _, _, uncompressed_size, crc = _CHUNK_HEAD.unpack_from(content)
    bio = BytesIO(content)
    bio.seek(_CHUNK_HEAD.size)
    compression = read_string(bio)
    (compressed_size,) = struct.unpack('<Q', bio.read(8))
    data = decompress(bio.read(compressed_size), compression, uncompressed_size, crc)
    records, pos = [], 0
    while pos < len(data):
        op, length = _RECORD_HEAD.unpack_from(data, pos)
        pos += _RECORD_HEAD.size
        records.append((op, data[pos:pos + length]))
        pos += length
    messages = sorted((r for r in records if r[0] == _MESSAGE),
                      key=lambda r: _MESSAGE_HEAD.unpack_from(r[1])[2])
    yield from (r for r in records if r[0] != _MESSAGE)
    yield from messages


def _parse_schema(content: bytes) -> Schema:
    bio = BytesIO(content)
    (sid,) = struct.unpack('<H', bio.read(2))
    return Schema(sid, read_string(bio), read_string(bio), read_bytes(bio).decode())


def _parse_channel(content: bytes, schemas: dict[int, Schema],
                   next_id: int) -> tuple[int, Connection]:
    bio = BytesIO(content)
    cid, schema_id = struct.unpack('<HH', bio.read(4))
    topic, encoding = read_string(bio), read_string(bio)
    metadata = read_bytes(bio)
    schema = schemas.get(schema_id)
    return cid, Connection(
        id=next_id, topic=topic, msgtype=schema.name if schema else '', msgdef=get_msgdef(schema),
        digest='', msgcount=0, ext=ConnectionExtRosbag2(encoding, get_qos(metadata)), owner=None)
