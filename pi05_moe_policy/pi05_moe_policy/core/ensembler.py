"""Temporal ensembling of overlapping action chunks on an absolute time axis. Pure: numpy only.

A chunk inferred from the observation at time ``stamp`` holds H rows; row i is the target for
the slot ``[stamp + i * period, stamp + (i + 1) * period)``. At a control tick at time ``now``
each chunk that covers ``now`` contributes the row of the slot that contains ``now``:

- ``ensemble`` (ACT, Zhao et al. 2023): the weighted average of those rows, with weights
  ``exp(-k * i)`` where i = 0 is the *oldest* covering chunk (k > 0 favours older chunks, i.e.
  smooth motion; k < 0 favours newer ones).
- ``latest``: the row of the newest chunk only (a hold when the newest does not cover now).
- ``rtc`` (real-time chunking, Black et al. 2025): no averaging; the executor switches to the
  newest chunk that covers now, at its first row that is not yet past, since that chunk was
  made to agree with the rows of the previous one that ran while it was inferred
  (``Policy.infer(obs, prefix=...)``). An older chunk still runs on when the newest does not
  cover now (e.g. a shorter one that has ended).

Rows whose slot has already ended when a chunk arrives are never executed: the chunk's rows are
placed on the clock, not replayed from the start, so inference latency is absorbed: a chunk that
arrived late but still covers now is executed from its current row. Chunks are ordered by stamp,
so a late-arriving old chunk counts as old. ``action_at(now, min_stamp)`` leaves out the chunks
whose observation is older than ``min_stamp`` (the executor's absolute age limit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pi05_moe_policy.params import check, param

MODES = ('ensemble', 'latest', 'rtc')
_EPS = 1e-9  # slots are half-open; keep a tick that lands exactly on a boundary in the new slot


@dataclass
class EnsemblerConfig:
    """How overlapping chunks become one action per control tick."""

    mode: str = param('ensemble', 'ensemble: ACT-style weighted average of every chunk that '
                      'covers now; latest: the newest chunk only; rtc: the newest chunk that '
                      'covers now, from its current row, no averaging (real-time chunking: '
                      'pair with policy_node rtc:=true).')
    ensemble_k: float = param(0.01, 'ACT weight exponent: chunk i (0 = oldest) weighs '
                              'exp(-ensemble_k * i). 0 = plain average.')

    def __post_init__(self) -> None:
        check(self.mode in MODES, self, 'mode', f'one of {MODES}')
        check(math.isfinite(self.ensemble_k), self, 'ensemble_k', 'a finite number')


@dataclass
class _Chunk:
    stamp: float  # observation time (s) = start of row 0's slot
    period: float  # slot length (s)
    actions: np.ndarray  # (H, A)
    first_row: int  # rows before this had ended when the chunk arrived

    @property
    def end(self) -> float:
        return self.stamp + len(self.actions) * self.period

    def row_at(self, now: float) -> int | None:
        i = math.floor((now - self.stamp) / self.period + _EPS)
        return i if self.first_row <= i < len(self.actions) else None


class TemporalEnsembler:
    """Holds the chunks that still cover the future and answers "the action for now"."""

    def __init__(self, cfg: EnsemblerConfig) -> None:
        self.cfg = cfg
        self._chunks: list[_Chunk] = []  # sorted by stamp, oldest first

    def reset(self) -> None:
        """Forget every chunk."""
        self._chunks.clear()

    @property
    def num_chunks(self) -> int:
        return len(self._chunks)

    def add(self, stamp: float, period: float, actions: np.ndarray, now: float) -> int:
        """Place a chunk (H, A) received at ``now``; return how many of its rows had passed.

        A chunk whose every row had passed is not kept (returns H). Raises ``ValueError`` for a
        malformed chunk: not 2-D, empty, non-finite, a bad period, or an action width different
        from the chunks already held.
        """
        a = np.array(actions, dtype=np.float64)  # (H, A), a copy: the caller keeps its array
        if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
            raise ValueError(f'chunk actions must be (horizon, dim) with both > 0, got {a.shape}')
        if not np.isfinite(a).all():
            raise ValueError('chunk actions contain NaN or infinite values')
        if not (math.isfinite(period) and period > 0):
            raise ValueError(f'chunk period must be a number of seconds > 0, got {period!r}')
        if self._chunks and self._chunks[0].actions.shape[1] != a.shape[1]:
            raise ValueError(f'chunk action dim {a.shape[1]} differs from the chunks held '
                             f'({self._chunks[0].actions.shape[1]})')
        passed = max(0, math.floor((now - stamp) / period + _EPS))  # slots ended by now
        if passed >= len(a):
            return len(a)
        chunk = _Chunk(float(stamp), float(period), a, passed)
        index = len(self._chunks)
        while index > 0 and self._chunks[index - 1].stamp > chunk.stamp:
            index -= 1
        self._chunks.insert(index, chunk)
        return passed

    def newest_covering(self, now: float) -> float | None:
        """The stamp of the newest chunk whose rows cover ``now`` (in ``latest`` mode: of the
        newest chunk, if it covers now), whatever its age; None when nothing covers now."""
        chunks = self._chunks[-1:] if self.cfg.mode == 'latest' else self._chunks
        stamps = [c.stamp for c in chunks if c.end > now + _EPS and c.row_at(now) is not None]
        return max(stamps) if stamps else None

    def action_at(self, now: float, min_stamp: float = -math.inf) -> np.ndarray | None:
        """The action (A,) for time ``now``, or None when no chunk covers it.

        Only chunks stamped at or after ``min_stamp`` contribute (older ones are kept, for
        :meth:`newest_covering`, but never used). Chunks that ended before ``now`` are dropped,
        so call with a non-decreasing ``now`` (call :meth:`reset` after the clock jumps back).
        """
        self._chunks = [c for c in self._chunks if c.end > now + _EPS]
        if not self._chunks:
            return None
        if self.cfg.mode == 'latest':
            newest = self._chunks[-1]
            row = newest.row_at(now)
            if row is None or newest.stamp < min_stamp:
                return None
            return newest.actions[row].copy()
        rows = [c.actions[r] for c in self._chunks
                if c.stamp >= min_stamp and (r := c.row_at(now)) is not None]
        if not rows:
            return None
        if self.cfg.mode == 'rtc':  # the newest covering chunk alone (sorted oldest first)
            return rows[-1].copy()
        weights = np.exp(-self.cfg.ensemble_k * np.arange(len(rows)))  # (n,), oldest first
        return weights @ np.stack(rows) / weights.sum()  # (A,)
