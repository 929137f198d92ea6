"""Focal routing loss (seed 000): ``-alpha * (1 - p_t)^gamma * log(p_t)``."""

from __future__ import annotations

import torch


def labels_from_active(active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-expert "active" flags (B, N) -> target index (B,) and a labelled mask (B,).

    As in seed 000: the first active expert is the target, and 0 when none is active.  Rows
    holding NaN are unlabelled and masked out of the loss.
    """
    if active.ndim != 2:
        raise ValueError(f'camera_active must be (B, N), got shape {tuple(active.shape)}')
    labelled = ~torch.isnan(active).any(dim=-1)  # (B,)
    on = torch.nan_to_num(active, nan=0.0) > 0.5  # (B, N)
    first = on.float().argmax(dim=-1)  # (B,) first True, 0 when none
    return first, labelled


def focal_loss(probs: torch.Tensor, target: torch.Tensor, alpha: float = 0.25,
               gamma: float = 2.0, mask: torch.Tensor | None = None) -> torch.Tensor:
    """probs: (B, N) routing probabilities, target: (B,) int.  Mean over (masked) rows.

    ``gamma = 0`` gives ``alpha * cross_entropy``.
    """
    p_t = probs.gather(1, target.long()[:, None]).squeeze(1)  # (B,)
    p_t = p_t.clamp(1e-10, 1.0 - 1e-10)
    loss = -alpha * (1.0 - p_t).pow(gamma) * p_t.log()  # (B,)
    if mask is None:
        return loss.mean()
    m = mask.to(loss.dtype)
    return (loss * m).sum() / m.sum().clamp_min(1.0)
