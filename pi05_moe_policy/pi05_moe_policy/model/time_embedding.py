"""Sin-cos embedding of the flow-matching time (periods 4e-3..4, computed in float64)."""

from __future__ import annotations

import math

import torch


def sincos_time_embedding(t: torch.Tensor, dim: int, min_period: float, max_period: float
                          ) -> torch.Tensor:
    """t: (B,) in [0, 1] -> (B, dim) = [sin, cos] over periods min_period..max_period.

    Computed in float64 (float32 where the device lacks it, e.g. MPS) and returned as float32.
    """
    if t.ndim != 1:
        raise ValueError(f'time must have shape (B,), got {tuple(t.shape)}')
    if dim % 2:
        raise ValueError(f'time embedding dim must be even, got {dim}')
    f64 = torch.float32 if t.device.type == 'mps' else torch.float64
    fraction = torch.linspace(0.0, 1.0, dim // 2, dtype=f64, device=t.device)  # (dim/2,)
    period = min_period * (max_period / min_period) ** fraction
    angle = t.to(f64)[:, None] * (2.0 * math.pi / period)[None, :]  # (B, dim/2)
    return torch.cat([angle.sin(), angle.cos()], dim=-1).float()  # (B, dim)
