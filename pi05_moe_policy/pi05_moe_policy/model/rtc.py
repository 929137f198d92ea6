"""Real-time chunking (RTC) pieces of the sampler and the loss. Pure torch.

RTC (Black, Galliker, Levine 2025) makes a chunk inferred while the robot still executes the
previous one agree with the actions that will run before it lands. Two variants:

- **guidance** (test time, any checkpoint): each Euler step inpaints the first rows of the new
  chunk against the committed ones. The step's clean estimate ``a_hat = x_t - t * v`` is pulled
  toward the committed actions ``Y`` with row weights ``W`` (1 on the ``d`` rows the executor
  runs while the policy thinks, decaying over the rest of the committed rows, 0 beyond): the
  velocity becomes ``v - c(t) * J^T (W * (Y - a_hat))`` with ``J = d a_hat / d x_t`` (one
  vector-Jacobian product) and ``c(t)`` the paper's weight, clipped at ``max_guidance_weight``.
- **training** (training time, ``train --rtc-max-delay D``): the first ``d ~ U{0..D}`` actions
  of each training chunk are given clean (per-token flow time 0) and kept out of the loss; at
  inference the committed rows are fed clean the same way, so no gradient is needed.

Times follow this model's convention: ``t = 1`` is noise, ``t = 0`` the clean chunk
(``x_t = t * noise + (1 - t) * a``), so the paper's ``tau`` is ``1 - t``.
"""

from __future__ import annotations

import math

import torch

from pi05_moe_policy.model.config import RTC_MODES, RTC_SCHEDULES

SCHEDULES = RTC_SCHEDULES
__all__ = ['RTC_MODES', 'SCHEDULES', 'guidance_weight', 'prefix_weights', 'sample_delays',
           'token_times']


def prefix_weights(horizon: int, delay: int, committed: int, schedule: str = 'exp',
                   device: torch.device | None = None) -> torch.Tensor:
    """(H,) guidance weight per chunk row: 1 on rows ``< delay`` (executed before the chunk
    lands), decaying on rows ``delay .. committed - 1`` (committed but replaceable), 0 on rows
    ``>= committed`` (free).  ``schedule``: ``exp`` (the paper's ``c (e^c - 1) / (e - 1)``),
    ``linear`` (``c``), ``ones`` (1 on every committed row) or ``zeros`` (only the delay rows)
    with ``c = (committed - i) / (committed - delay + 1)``."""
    if schedule not in SCHEDULES:
        raise ValueError(f'RTC schedule must be one of {SCHEDULES}, got {schedule!r}')
    committed = max(0, min(int(committed), horizon))
    delay = max(0, min(int(delay), committed))
    i = torch.arange(horizon, dtype=torch.float32, device=device)  # (H,)
    c = ((committed - i) / (committed - delay + 1)).clamp(0.0, 1.0)  # (H,)
    if schedule == 'exp':
        decay = c * torch.expm1(c) / math.expm1(1.0)
    elif schedule == 'linear':
        decay = c
    else:
        decay = torch.full_like(c, 1.0 if schedule == 'ones' else 0.0)
    w = torch.where(i < committed, decay, torch.zeros_like(c))
    return torch.where(i < delay, torch.ones_like(c), w)  # (H,)


def guidance_weight(t: float, max_weight: float) -> float:
    """The paper's ``min(beta, (1 - tau) / (tau * r^2))``, ``r^2 = (1-tau)^2 / (tau^2 +
    (1-tau)^2)``, at ``tau = 1 - t``; infinite at both ends, so clipped to ``max_weight``."""
    tau = 1.0 - float(t)
    if tau <= 0.0 or tau >= 1.0:
        return float(max_weight)
    r2 = (1.0 - tau) ** 2 / (tau ** 2 + (1.0 - tau) ** 2)
    return float(min(max_weight, (1.0 - tau) / (tau * r2)))


def sample_delays(b: int, max_delay: int, device: torch.device,
                  generator: torch.Generator | None = None,
                  zero_prob: float = 0.0) -> torch.Tensor:
    """(B,) long: training-time RTC delays drawn uniformly from ``0 .. max_delay``; with
    probability ``zero_prob`` a sample's delay is 0 instead (no prefix: the model keeps its
    skill where no committed chunk exists, e.g. the first chunk or with ``rtc`` off)."""
    if not 0.0 <= float(zero_prob) <= 1.0:
        raise ValueError(f'zero_prob must lie in [0, 1], got {zero_prob!r}')
    delay = torch.randint(0, int(max_delay) + 1, (b,), device=device, generator=generator)
    if zero_prob > 0:
        keep = torch.rand(b, device=device, generator=generator) >= float(zero_prob)  # (B,)
        delay = delay * keep.long()
    return delay


def token_times(time: torch.Tensor, delay: torch.Tensor, horizon: int) -> torch.Tensor:
    """time (B,), delay (B,) -> (B, H) per-token flow time: 0 (clean) on the first ``delay``
    rows of each chunk, ``time`` on the others."""
    rows = torch.arange(horizon, device=time.device)[None, :]  # (1, H)
    is_prefix = rows < delay.to(time.device)[:, None]  # (B, H)
    return torch.where(is_prefix, torch.zeros_like(time)[:, None], time[:, None])  # (B, H)
