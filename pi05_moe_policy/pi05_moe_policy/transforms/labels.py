"""Camera-routing labels: the training target of the focal routing loss."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch


def camera_labels(camera_active: Any, experts: Sequence[str]) -> torch.Tensor:
    """{expert: 0/1} or (N,) flags -> (N,) float32 in expert order."""
    if isinstance(camera_active, Mapping):
        missing = [n for n in experts if n not in camera_active]
        extra = [n for n in camera_active if n not in experts]
        if missing or extra:
            raise ValueError(f'camera_active must give a flag for each expert camera '
                             f'{list(experts)}; missing {missing}, unknown {extra}')
        vals = [float(camera_active[n]) for n in experts]
    else:
        vals = np.asarray(camera_active, dtype=np.float32).reshape(-1).tolist()
        if len(vals) != len(experts):
            raise ValueError(f'camera_active must have {len(experts)} flags (experts '
                             f'{list(experts)}), got {len(vals)}')
    return torch.tensor(vals, dtype=torch.float32)


class CameraLabels:
    """Step (training): ``camera_active`` -> (N,) float32 flags; dropped when None."""

    def __init__(self, expert_cameras: Sequence[str]):
        self.experts = tuple(expert_cameras)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        if sample.get('camera_active') is None:
            return {k: v for k, v in sample.items() if k != 'camera_active'}
        return {**sample, 'camera_active': camera_labels(sample['camera_active'], self.experts)}
