"""Small running statistics for /diagnostics: message rates and latency percentiles. Pure."""

from __future__ import annotations

import threading
from collections import deque

import numpy as np


class RateMeter:
    """Counts events and turns them into a rate (events/s) once per reporting window."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._since: float | None = None

    def tick(self) -> None:
        with self._lock:
            self._count += 1

    def rate(self, now: float) -> float:
        """Events per second since the previous call (0.0 on the first call or a zero window)."""
        with self._lock:
            count, since = self._count, self._since
            self._count, self._since = 0, now
        if since is None or now <= since:
            return 0.0
        return count / (now - since)


class RunningStats:
    """The last ``window`` values of a quantity, summarised as mean / p50 / p99 / max."""

    def __init__(self, window: int = 200) -> None:
        self._lock = threading.Lock()
        self._values: deque[float] = deque(maxlen=window)

    def add(self, value: float) -> None:
        with self._lock:
            self._values.append(float(value))

    def summary(self) -> dict[str, float]:
        """``{'mean', 'p50', 'p99', 'max'}``; empty when nothing was added yet."""
        with self._lock:
            values = np.array(self._values)  # (n,)
        if values.size == 0:
            return {}
        return {'mean': float(values.mean()), 'p50': float(np.percentile(values, 50)),
                'p99': float(np.percentile(values, 99)), 'max': float(values.max())}
