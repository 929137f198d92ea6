"""A worker thread that does the slow work of a node outside its callbacks. Pure: no rclpy.

Callbacks store the latest input and :meth:`Worker.wake` it; the worker runs ``step()`` at most
once per ``min_interval_s`` (wall clock), and at least every ``idle_s`` even without news, so
that the step can notice streams going stale. An exception in one step goes to ``on_error``; the
loop runs on unless ``on_error`` returns False (the node is shutting down).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Worker:
    def __init__(self, step: Callable[[], None], min_interval_s: float,
                 on_error: Callable[[Exception], bool], idle_s: float = 0.25,
                 name: str = 'worker') -> None:
        if min_interval_s < 0 or idle_s <= 0:
            raise ValueError(f'Worker: min_interval_s={min_interval_s!r} must be >= 0 and '
                             f'idle_s={idle_s!r} > 0')
        self._step, self._on_error = step, on_error
        self._min_interval, self._idle = float(min_interval_s), float(idle_s)
        self._wake = threading.Event()
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the loop to end and wait (at most ``timeout`` s) for the running step."""
        self.stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)

    def _run(self) -> None:
        next_start = 0.0
        while not self.stopping.is_set():
            # Throttle, then wait for news (or time out to notice streams going stale).
            self.stopping.wait(max(0.0, next_start - time.monotonic()))
            self._wake.wait(timeout=self._idle)
            self._wake.clear()
            if self.stopping.is_set():
                break
            next_start = time.monotonic() + self._min_interval
            try:
                self._step()
            except Exception as exc:  # noqa: BLE001 - the worker must outlive one bad step
                if self.stopping.is_set() or not self._on_error(exc):
                    break
