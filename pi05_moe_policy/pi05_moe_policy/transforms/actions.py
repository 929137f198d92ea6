"""Action-space steps (openpi's DeltaActions / AbsoluteActions / PadStatesAndActions).

``DeltaActions`` runs on raw robot units before normalisation, ``AbsoluteActions`` after
unnormalisation; both need the observation's raw ``state``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pi05_moe_policy.transforms.normalize import pad_to


def delta_dims(mask: Sequence[bool], robot_action_dim: int) -> np.ndarray:
    """(A,) bool: the action dims that are relative to the state (a short mask is padded with
    False: those dims are absolute)."""
    dims = np.zeros(robot_action_dim, bool)
    dims[:len(mask)] = mask
    return dims


def state_offset(state: np.ndarray, dims: np.ndarray) -> np.ndarray:
    """(..., D) state -> (..., 1, A): the state on the delta dims, 0 on the others."""
    s = np.asarray(state, np.float32)[..., None, :dims.size]  # (..., 1, A)
    return np.where(dims, s, 0.0).astype(np.float32)


class DeltaActions:
    """Step: ``actions`` (..., H, A) absolute -> relative to ``state`` on the masked dims."""

    def __init__(self, mask: Sequence[bool], robot_action_dim: int):
        self.dims = delta_dims(mask, robot_action_dim)  # (A,)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        if sample.get('actions') is None or not self.dims.any():
            return sample
        a = np.array(sample['actions'], dtype=np.float32)  # (..., H, A)
        return {**sample, 'actions': a - state_offset(sample['state'], self.dims)}


class AbsoluteActions:
    """Step (output): ``actions`` (..., H, A) relative on the masked dims -> absolute, by
    adding back the observation's ``state`` (..., D) in robot units."""

    def __init__(self, mask: Sequence[bool], robot_action_dim: int):
        self.dims = delta_dims(mask, robot_action_dim)  # (A,)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        if not self.dims.any():
            return sample
        if sample.get('state') is None:
            raise ValueError('this policy predicts actions relative to the state '
                             '(delta_action_mask); unnormalize_actions needs the state')
        return {**sample, 'actions': sample['actions'] + state_offset(sample['state'],
                                                                      self.dims)}


class PadStatesAndActions:
    """Step: zero-pad ``state`` (D,) to the model's ``max_state_dim`` and ``actions`` (H, A) to
    its ``action_dim``; with actions, ``action_dim_mask`` (action_dim,) marks the real dims
    (the loss ignores the padded ones)."""

    def __init__(self, max_state_dim: int, action_dim: int):
        self.max_state_dim = max_state_dim
        self.action_dim = action_dim

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        out = {**sample, 'state': pad_to(sample['state'], self.max_state_dim)}  # (32,)
        if sample.get('actions') is not None:
            real = sample['actions'].shape[-1]
            out['actions'] = pad_to(sample['actions'], self.action_dim)  # (H, 32)
            out['action_dim_mask'] = np.arange(self.action_dim) < real  # (32,)
        return out


class TruncateActions:
    """Step (output): the model's padded ``actions`` (..., H, action_dim) -> the robot's
    (..., H, robot_action_dim)."""

    def __init__(self, robot_action_dim: int):
        self.robot_action_dim = robot_action_dim

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        return {**sample, 'actions': sample['actions'][..., :self.robot_action_dim]}
