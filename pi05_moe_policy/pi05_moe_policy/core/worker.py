"""A worker thread that does the slow work of a node outside its callbacks. Pure: no rclpy.

Callbacks store the latest input and :meth:`Worker.wake` it; the worker runs ``step()`` at most
once per ``min_interval_s`` (wall clock), and at least every ``idle_s`` even without news, so
that the step can notice streams going stale. An exception in one step goes to ``on_error``; the
loop runs on unless ``on_error`` returns False (the node is shutting down).

A step cannot be interrupted from outside, and one inference of a big model can outlast the 2 s
a node has to exit on Ctrl-C (launch escalates to SIGTERM at 5 s). :meth:`Worker.abort_modules`
makes a torch model's step abortable: every module's forward first checks the stop flag, so a
running inference raises :class:`AbortedError` at its next layer once :meth:`Worker.stop` runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class AbortedError(RuntimeError):
    """Raised inside a step (by a module's forward pre-hook) once the worker is stopping."""


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
        self._hooks: list[Any] = []

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def abort_modules(self, model: Any) -> None:
        """Make the steps' calls of ``model`` (a ``torch.nn.Module``) abort once stopping: a
        forward pre-hook on each of its modules raises :class:`AbortedError` (an Event check per
        module call, a negligible cost against the module's own work)."""
        def check(module: Any, args: Any) -> None:
            if self.stopping.is_set():
                raise AbortedError(f'{self._thread.name} is stopping')
        self._hooks += [m.register_forward_pre_hook(check) for m in model.modules()]

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the loop to end and wait (at most ``timeout`` s) for the running step."""
        self.stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)
        if self._thread.is_alive():
            return  # the hooks stay: the running step still aborts at its next module
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

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
