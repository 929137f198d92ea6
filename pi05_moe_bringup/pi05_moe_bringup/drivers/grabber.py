"""Threaded frame capture with reconnect and exponential backoff. Pure Python: no rclpy.

A camera driver node never touches the device itself. A :class:`FrameGrabber` thread opens a
:class:`Source`, reads frames as fast as the device delivers them and keeps only the newest one in
a :class:`LatestSlot` (bounded, drop-oldest), then calls ``on_frame`` so that the node's executor
wakes up and publishes. When opening or reading fails (no device, unplugged, wrong pixel format,
end of a file), the grabber logs one clear line, closes the source, waits (0.5 s, 1 s, 2 s, ...
up to a cap) and opens it again; it never gives up and never raises into the node.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pi05_moe_policy.params import check, param


class SourceError(RuntimeError):
    """A recoverable capture failure (no device, device lost, bad frame): reconnect and retry."""


class Source(Protocol):
    """An open capture device. ``read`` blocks for at most about one frame period."""

    description: str  # e.g. '/dev/video0 640x480 MJPG @ 30 fps (V4L2)', for log lines

    def read(self) -> Any:
        """The next frame's payload; raises :class:`SourceError` when there is none."""

    def close(self) -> None:
        """Release the device; must not raise."""


class Logger(Protocol):
    """What the grabber logs through: an rclpy logger or a ``logging.Logger``."""

    def info(self, msg: str) -> Any: ...
    def warning(self, msg: str) -> Any: ...


@dataclass
class ReconnectConfig:
    """Retry timing after a failed open or read: initial_s, then doubling up to max_s."""

    initial_s: float = param(0.5, 'first wait (s) before reopening a failed camera')
    max_s: float = param(5.0, 'longest wait (s) between reopen attempts')

    def __post_init__(self):
        check(self.initial_s > 0, self, 'initial_s', 'a positive number of seconds')
        check(self.max_s >= self.initial_s, self, 'max_s', f'>= initial_s ({self.initial_s})')


class Backoff:
    """Exponential backoff: ``next_delay()`` gives initial, 2x, 4x, ... capped at max."""

    def __init__(self, cfg: ReconnectConfig):
        self.cfg = cfg
        self._next = cfg.initial_s

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2.0, self.cfg.max_s)
        return delay

    def reset(self) -> None:
        self._next = self.cfg.initial_s


@dataclass(frozen=True)
class Frame:
    """One captured frame: the source's payload and when ``read`` returned it."""

    data: Any
    t_mono: float  # time.monotonic() right after the read
    seq: int  # counts frames over the grabber's life (across reconnects)


class LatestSlot:
    """A thread-safe slot that holds only the newest item (a drop-oldest queue of size 1)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._item: Any = None
        self.dropped = 0  # items replaced before anyone took them

    def put(self, item: Any) -> None:
        with self._lock:
            if self._item is not None:
                self.dropped += 1
            self._item = item

    def take(self) -> Any:
        """The newest item, or None if nothing arrived since the last take."""
        with self._lock:
            item, self._item = self._item, None
            return item


class FrameGrabber:
    """Runs ``open_source()`` and ``read()`` in a daemon thread, reconnecting with backoff.

    ``open_source`` raises :class:`SourceError` when the device cannot be opened; any other
    exception from it or from ``read`` is treated the same way (logged with its type), so that a
    driver bug shows up in the log instead of killing the capture thread silently.
    """

    def __init__(self, name: str, open_source: Callable[[], Source], log: Logger,
                 reconnect: ReconnectConfig | None = None,
                 on_frame: Callable[[], None] | None = None):
        self.name = name
        self._open_source = open_source
        self._log = log
        self._backoff = Backoff(reconnect or ReconnectConfig())
        self._on_frame = on_frame
        self._slot = LatestSlot()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f'grabber-{name}', daemon=True)
        self.frames = 0  # frames read over the grabber's life
        self.failures = 0  # failed opens + lost connections
        self.connected = False
        self._retry_delay = 0.0

    def start(self) -> FrameGrabber:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 2.0) -> None:
        """Ask the thread to stop and wait for it (a read blocked in a driver may outlast this)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def take(self) -> Frame | None:
        """The newest frame not yet taken, or None."""
        return self._slot.take()

    @property
    def dropped(self) -> int:
        return self._slot.dropped

    def _run(self) -> None:
        while not self._stop.is_set():
            source = self._open()
            if source is not None:
                self._stream(source)
                source.close()
                self.connected = False
            if not self._stop.is_set():
                self._stop.wait(self._retry_delay)

    def _open(self) -> Source | None:
        try:
            source = self._open_source()
        except Exception as exc:  # noqa: BLE001 - any failure to open is retried
            self._fail(f'cannot open the camera: {_describe(exc)}')
            return None
        self.connected = True
        self._log.info(f'{self.name}: streaming from {source.description}')
        return source

    def _stream(self, source: Source) -> None:
        first = True
        while not self._stop.is_set():
            try:
                data = source.read()
            except Exception as exc:  # noqa: BLE001 - a lost device is retried
                self._fail(f'lost {source.description}: {_describe(exc)}')
                return
            self._slot.put(Frame(data, time.monotonic(), self.frames))
            self.frames += 1
            if first:  # the device works again: the next failure starts the backoff afresh
                self._backoff.reset()
                first = False
            if self._on_frame is not None:
                self._on_frame()

    def _fail(self, what: str) -> None:
        self.failures += 1
        self._retry_delay = self._backoff.next_delay()
        self._log.warning(f'{self.name}: {what}; retrying in {self._retry_delay:.2f} s '
                          f'(failure {self.failures})')


def _describe(exc: Exception) -> str:
    text = str(exc).strip() or '(no message)'
    return text if isinstance(exc, SourceError) else f'{type(exc).__name__}: {text}'
