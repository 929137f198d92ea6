"""Loss pieces both networks share (PI0.5's flow matching, RT-1's bins): which action entries
count, and the camera router's focal loss with its accuracy. Pure torch."""

from __future__ import annotations

from typing import Any

import torch

from pi05_moe_policy.model.focal_loss import focal_loss, labels_from_active


def check_actions(batch: dict[str, torch.Tensor], horizon: int, action_dim: int
                  ) -> torch.Tensor:
    """batch['actions'] as float (B, H, A); ValueError when it is not (B, horizon, action_dim)."""
    actions = batch['actions'].float()  # (B, H, A)
    if tuple(actions.shape[1:]) != (horizon, action_dim):
        raise ValueError(f'batch["actions"] must be (B, {horizon}, {action_dim}), got '
                         f'{tuple(actions.shape)}')
    return actions


def action_mask(batch: dict[str, torch.Tensor], shape: tuple[int, int, int],
                device: torch.device) -> torch.Tensor:
    """(B, H, A) bool: the real action dims (``action_dim_mask``; every dim when absent) of the
    steps that are not padding past the episode end (``action_is_pad``)."""
    b, h, a = shape
    dims = batch.get('action_dim_mask')
    if dims is None:
        dims = torch.ones(b, a, dtype=torch.bool, device=device)  # (B, A)
    m = dims.bool()[:, None, :].expand(b, h, a)
    if batch.get('action_is_pad') is not None:
        m = m & ~batch['action_is_pad'].bool()[:, :, None]
    return m


def routing_terms(probs: torch.Tensor, weights: torch.Tensor, active: torch.Tensor | None,
                  alpha: float, gamma: float) -> tuple[torch.Tensor, dict[str, Any]]:
    """The router's focal loss against the "active" camera labels (B, N) (None: unlabelled,
    loss 0) -> (loss, info: routing_weights, routing_probs and, with labels,
    routing_accuracy; all detached). probs, weights: (B, N)."""
    info: dict[str, Any] = {'routing_weights': weights.detach(),
                            'routing_probs': probs.detach()}
    if active is None:
        return torch.zeros((), device=probs.device), info
    target, labelled = labels_from_active(active.float())
    loss = focal_loss(probs, target, alpha, gamma, labelled)
    hit = (probs.argmax(-1) == target).float()
    lf = labelled.float()
    info['routing_accuracy'] = ((hit * lf).sum() / lf.sum().clamp_min(1.0)).detach()
    return loss, info


def add_routing_loss(action_loss: torch.Tensor, info: dict[str, Any],
                     route: tuple[torch.Tensor, torch.Tensor] | None, active: torch.Tensor | None,
                     weight: float, alpha: float, gamma: float) -> torch.Tensor:
    """The training loss: action_loss + weight * the router's focal loss (``routing_terms``;
    0 without a router, ``route`` None, or labels). ``route`` is (probs, weights), each (B, N).
    Fills ``info`` with the routing terms, routing_loss, routing_loss_weight and loss
    (detached), the names both networks' ``compute_loss`` report."""
    loss = action_loss
    routing_loss = torch.zeros((), device=action_loss.device)
    weight = float(weight)
    if route is not None:
        routing_loss, routing_info = routing_terms(route[0], route[1], active, alpha, gamma)
        info.update(routing_info)
        loss = loss + weight * routing_loss
    info['routing_loss'] = routing_loss.detach()
    info['routing_loss_weight'] = weight
    info['loss'] = loss.detach()
    return loss
