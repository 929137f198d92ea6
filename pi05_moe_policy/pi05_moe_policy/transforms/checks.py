"""Input checks, the first transform steps: raw observations and labels are validated here, so
every later step can trust their types and shapes.  Errors name the key and quote the value.

Sample dicts (raw): ``images`` {camera: array}, ``state`` (robot_state_dim,), ``prompt`` str,
and for training ``actions`` (H, robot_action_dim), ``action_is_pad`` (H,), ``camera_active``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from pi05_moe_policy.transforms.data_config import DataConfig


def as_array(x: Any, what: str) -> np.ndarray:
    """A numpy view of ``x`` (a torch tensor is copied to the CPU); anything else is a
    TypeError naming ``what``."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f'{what} must be a numpy array, got {type(x).__name__}')
    return x


def check_images(images: Any, data: DataConfig) -> dict[str, np.ndarray]:
    """{camera: raw array} -> the present cameras, thermal (H, W) uint16 or (H, W, 3) uint8."""
    if not isinstance(images, Mapping):
        raise TypeError(f'obs["images"] must be a dict camera_name -> array, got '
                        f'{type(images).__name__}')
    known = data.camera_names
    unknown = [n for n in images if n not in known]
    if unknown:
        raise ValueError(f'unknown camera(s) {unknown}; known cameras: {list(known)}')
    if images.get(data.base_camera) is None:
        raise ValueError(f'base camera {data.base_camera!r} is missing from obs["images"] '
                         f'(got {sorted(images)}); only expert cameras '
                         f'{list(data.expert_cameras)} may be missing')
    out = {}
    for name, img in images.items():
        if img is None:
            continue
        out[name] = _check_image(as_array(img, f'image {name!r}'), name,
                                 name in data.thermal_cameras)
    return out


def _check_image(img: np.ndarray, name: str, thermal: bool) -> np.ndarray:
    if img.size == 0:
        raise ValueError(f'image {name!r} is empty, shape {img.shape}')
    if thermal and img.dtype == np.uint16:
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[:, :, 0]
        if img.ndim != 2:
            raise ValueError(f'thermal image {name!r} must be HxW uint16 centi-Kelvin, '
                             f'got shape {img.shape}')
        return img
    expected = ('HxW uint16 (centi-Kelvin) or HxWx3 uint8 RGB' if thermal
                else 'HxWx3 uint8 RGB')
    if img.dtype != np.uint8:
        raise TypeError(f'image {name!r} has dtype {img.dtype}; expected {expected}')
    if img.ndim != 3:
        raise ValueError(f'image {name!r} has ndim {img.ndim} (shape {img.shape}); '
                         f'expected {expected}')
    if img.shape[2] != 3:
        raise ValueError(f'image {name!r} has {img.shape[2]} channels (shape '
                         f'{img.shape}); expected {expected}')
    return img


def check_state(state: Any, dim: int) -> np.ndarray:
    """-> (dim,) float32, finite."""
    if isinstance(state, torch.Tensor):
        state = state.detach().cpu().numpy()
    try:
        s = np.asarray(state, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise TypeError(f'obs["state"] must be {dim} floats, got {type(state).__name__}'
                        ) from e
    if s.ndim != 1 or s.shape[0] != dim:
        raise ValueError(f'obs["state"] must have shape ({dim},) (robot_state_dim), got '
                         f'{s.shape}')
    if not np.all(np.isfinite(s)):
        raise ValueError(f'obs["state"] has NaN/inf at dims '
                         f'{np.nonzero(~np.isfinite(s))[0].tolist()}')
    return s


def check_prompt(prompt: Any, require_prompt: bool) -> str:
    if prompt is None:
        prompt = ''
    if not isinstance(prompt, str):
        raise TypeError(f'obs["prompt"] must be a str, got {type(prompt).__name__}')
    if require_prompt and not prompt.strip():
        raise ValueError('obs["prompt"] is empty but this policy requires a prompt '
                         '(DataConfig.require_prompt=True)')
    return prompt


class CheckObservation:
    """Step: validate ``images``, ``state`` and ``prompt`` against the data config."""

    def __init__(self, data: DataConfig):
        self.data = data

    def check_obs(self, obs: Any) -> dict[str, Any]:
        """A robot's observation dict (keys images/state/prompt) -> a checked sample dict."""
        if not isinstance(obs, Mapping):
            raise TypeError(f'obs must be a dict with keys images/state/prompt, got '
                            f'{type(obs).__name__}')
        for key in ('images', 'state'):
            if key not in obs:
                raise ValueError(f'obs is missing key "{key}" (has {sorted(obs)})')
        if 'prompt' not in obs and self.data.require_prompt:
            raise ValueError(f'obs is missing key "prompt" (has {sorted(obs)})')
        return self({'images': obs['images'], 'state': obs['state'],
                     'prompt': obs.get('prompt', '')})

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        return {**sample, 'images': check_images(sample['images'], self.data),
                'state': check_state(sample['state'], self.data.robot_state_dim),
                'prompt': check_prompt(sample.get('prompt', ''), self.data.require_prompt)}


class CheckActions:
    """Step (training): ``actions`` (H, robot_action_dim) finite, ``action_is_pad`` (H,) bool
    (all False when absent).  Samples without actions pass unchanged."""

    def __init__(self, action_horizon: int, robot_action_dim: int):
        self.horizon = action_horizon
        self.action_dim = robot_action_dim

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        if sample.get('actions') is None:
            return {k: v for k, v in sample.items() if k not in ('actions', 'action_is_pad')}
        a = np.asarray(sample['actions'], dtype=np.float32)  # (H, A)
        want = (self.horizon, self.action_dim)
        if a.shape != want:
            raise ValueError(f'actions must have shape {want} (action_horizon, '
                             f'robot_action_dim), got {a.shape}')
        if not np.all(np.isfinite(a)):
            raise ValueError('actions contain NaN/inf')
        flags = sample.get('action_is_pad')
        pad = np.zeros(self.horizon, bool) if flags is None \
            else np.asarray(flags, bool).reshape(-1)  # (H,)
        if pad.shape != (self.horizon,):
            raise ValueError(f'action_is_pad must have {self.horizon} flags, got {pad.shape}')
        return {**sample, 'actions': a, 'action_is_pad': pad}
