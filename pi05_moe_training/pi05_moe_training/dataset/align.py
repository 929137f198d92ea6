"""As-of alignment of time-stamped streams onto a control-rate grid. Pure numpy.

"As of t" means the newest sample stamped at or before t (never a future one: the policy could
not have seen it). Streams are stamped with their header stamps; streams without one (e.g.
``Float64MultiArray`` commands) use their bag receive time shifted onto the header clock by
:func:`clock_offset`, which is how a wall-clock recorder and a sim-time publisher still line up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def control_grid(start_s: float, end_s: float, fps: float) -> np.ndarray:
    """(T,) times ``start_s + k / fps`` for every k with time <= ``end_s`` (empty if none)."""
    if fps <= 0:
        raise ValueError(f'fps={fps!r}: expected > 0')
    if end_s < start_s:
        return np.zeros(0)
    count = int(np.floor((end_s - start_s) * fps + 1e-9)) + 1
    return start_s + np.arange(count) / fps  # (T,)


def asof_indices(times: np.ndarray, query: np.ndarray) -> np.ndarray:
    """(M,) index of the newest ``times`` entry <= each ``query`` time; -1 where there is none.

    ``times`` (N,) must be non-decreasing; ``query`` (M,) may be in any order.
    """
    times = np.asarray(times, dtype=np.float64)
    if times.size > 1 and np.any(np.diff(times) < 0):
        raise ValueError('asof_indices: times must be non-decreasing')
    return np.searchsorted(times, np.asarray(query, dtype=np.float64), side='right') - 1


@dataclass
class Aligned:
    """One stream aligned onto a grid."""

    index: np.ndarray  # (T,) int, source sample per grid time, -1 = none yet
    age_s: np.ndarray  # (T,) float, grid time - source stamp (inf where index == -1)

    def stale(self, max_age_s: float) -> np.ndarray:
        """(T,) bool: no sample yet, or the newest one is older than ``max_age_s``."""
        return (self.index < 0) | (self.age_s > max_age_s)


def align_asof(times: np.ndarray, grid: np.ndarray) -> Aligned:
    """Align a stream stamped ``times`` (N,) onto ``grid`` (T,)."""
    index = asof_indices(times, grid)
    times = np.asarray(times, dtype=np.float64)
    safe = np.clip(index, 0, None)
    age = np.where(index >= 0, grid - (times[safe] if times.size else 0.0), np.inf)
    return Aligned(index=index, age_s=age)


def clock_offset(receive_s: np.ndarray, header_s: np.ndarray) -> float:
    """Median of receive - header stamp over a stream that has both (0 when empty).

    Subtracting it from another stream's receive times puts them on the header clock. The median
    ignores the occasional late delivery.
    """
    receive_s, header_s = np.asarray(receive_s, float), np.asarray(header_s, float)
    if receive_s.size == 0:
        return 0.0
    return float(np.median(receive_s - header_s))


def sort_stream(times: np.ndarray) -> np.ndarray:
    """(N,) stable order that sorts ``times`` (bags are in receive order, stamps may not be)."""
    return np.argsort(np.asarray(times, dtype=np.float64), kind='stable')
