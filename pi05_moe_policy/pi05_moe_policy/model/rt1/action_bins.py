"""RT-1's action tokenizer: each action dim's normalised value <-> one of ``num_bins`` uniform
bins over ``[low, high]`` (seed 003's ActionTokenizer).

Training turns the target into bin indices for a cross-entropy; inference turns the argmax bin
back into the bin's centre.  A value inside the range comes back within half a bin width; one
outside is clipped to the edge bin first (quantile-normalised actions mostly lie in [-1, 1]).
"""

from __future__ import annotations

import torch


class ActionBins:
    """Uniform bins over [low, high]; ``width = (high - low) / num_bins``."""

    def __init__(self, num_bins: int = 256, low: float = -1.0, high: float = 1.0):
        if num_bins < 2 or not low < high:
            raise ValueError(f'ActionBins needs num_bins >= 2 and low < high, got '
                             f'num_bins={num_bins!r}, low={low!r}, high={high!r}')
        self.num_bins = int(num_bins)
        self.low = float(low)
        self.high = float(high)
        self.width = (self.high - self.low) / self.num_bins

    def discretise(self, actions: torch.Tensor) -> torch.Tensor:
        """actions (...) float -> bin indices (...) long in [0, num_bins)."""
        idx = torch.floor((actions.float() - self.low) / self.width)
        return idx.clamp(0, self.num_bins - 1).long()

    def undiscretise(self, bins: torch.Tensor) -> torch.Tensor:
        """bin indices (...) -> the bins' centres (...) float32."""
        return self.low + (bins.float() + 0.5) * self.width
