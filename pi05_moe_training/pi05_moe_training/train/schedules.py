"""Pure step -> value schedules of the training loop (nanoGPT's ``get_lr(it)``).

They hold no state: the learning rate and the routing-loss weight at step ``s`` depend on ``s``
and the config only, so resuming at step ``s`` needs no scheduler state to restore.
"""

from __future__ import annotations

import math

from pi05_moe_training.train.config import TrainConfig


def warmup_ramp(step: int, weight: float, warmup_steps: int, ramp_steps: int) -> float:
    """Seed 001's routing-loss schedule: 0 for ``warmup_steps``, then a linear ramp to
    ``weight`` over ``ramp_steps`` (at once when 0), held there after."""
    if step < warmup_steps:
        return 0.0
    if ramp_steps <= 0:
        return float(weight)
    return float(weight) * min(1.0, (step - warmup_steps) / ramp_steps)


def get_lr(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up from ~0 to ``lr`` over ``warmup_steps``, then cosine decay to ``min_lr``
    at ``max_steps`` (held there after)."""
    if step < cfg.warmup_steps:
        # (step + 1): the very first step already learns a little.
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if step >= cfg.max_steps:
        return cfg.min_lr
    decay_steps = max(1, cfg.max_steps - cfg.warmup_steps)
    progress = (step - cfg.warmup_steps) / decay_steps  # in [0, 1)
    coeff = 0.5 * (1.0 + math.cos(math.pi * progress))  # 1 -> 0
    return cfg.min_lr + coeff * (cfg.lr - cfg.min_lr)


def routing_loss_weight(step: int, cfg: TrainConfig) -> float:
    """Seed 001's tips: no routing loss for ``routing_warmup_steps`` (the action expert learns
    to use the cameras first), then a linear ramp to ``routing_loss_weight`` over
    ``routing_ramp_steps``."""
    return warmup_ramp(step, cfg.routing_loss_weight, cfg.routing_warmup_steps,
                       cfg.routing_ramp_steps)
