"""Ctrl-C (SIGINT) or SIGTERM during training: finish the step in flight, write a checkpoint,
stop. A second signal interrupts at once (``KeyboardInterrupt``), as without this.

The handlers are installed only in the main thread of the main interpreter (Python's rule);
elsewhere the request never fires and training behaves as before. DataLoader workers ignore
SIGINT (:func:`ignore_sigint`, their ``worker_init_fn``) so that a Ctrl-C in a terminal, which
reaches the whole process group, does not kill them under the step the main process finishes.
Under DDP the ranks agree on a stop at the next ``--log-every`` step (one collective there, not
one a step), so every rank saves the same step.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def ignore_sigint(_worker_id: int) -> None:
    """``worker_init_fn`` of the training DataLoader: the main process handles Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class StopRequest:
    """``with StopRequest() as stop: ... if stop.requested: save and return``."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ''
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.requested:  # the second one: stop now, whatever is in flight
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = signal.Signals(signum).name

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *_exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
