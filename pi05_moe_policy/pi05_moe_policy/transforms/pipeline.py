"""The one transform pipeline shared by ``Policy.infer`` and training.

``Transform.sample(images, state, prompt, actions=None, camera_active=None)`` validates raw
inputs and returns one sample's tensors; ``Transform.collate(samples)`` stacks them into the
batch that ``Pi05Model.compute_loss`` / ``sample_actions`` take (keys in ``model/pi05.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from pi05_moe_policy.model.config import ModelConfig
from pi05_moe_policy.transforms.image import rgb_to_tensor, thermal_to_tensor
from pi05_moe_policy.transforms.normalize import NormStats, discretize_state, pad_to

log = logging.getLogger(__name__)


def clean_prompt(prompt: str) -> str:
    return prompt.strip().replace('_', ' ').replace('\n', ' ')


def format_prompt(prompt: str, state_norm: np.ndarray | None, pi05: bool) -> str:
    """PI0.5: ``"Task: {prompt}, State: {256-bin state};\\nAction: "``, or without a state
    (``state_norm`` None) ``"Task: {prompt};\\nAction: "``; PI0: the prompt + newline.

    state_norm: the quantile-normalised real state dims (PI0.5 only).
    """
    text = clean_prompt(prompt)
    if not pi05:
        return text + '\n'
    if state_norm is None:
        return f'Task: {text};\nAction: '
    bins = discretize_state(state_norm)
    return f'Task: {text}, State: {" ".join(str(int(b)) for b in bins)};\nAction: '


def _as_array(x: Any, what: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f'{what} must be a numpy array, got {type(x).__name__}')
    return x


class Transform:
    """Validation, images, normalisation, prompt and tokens: one place for train and infer."""

    def __init__(self, config: ModelConfig, norm_stats: NormStats, tokenizer: Any):
        self.config = config
        self.norm_stats = norm_stats
        self.tokenizer = tokenizer
        norm_stats.validate(config.robot_state_dim, config.robot_action_dim)
        # (A,) action dims the model sees relative to the state (config.delta_action_mask)
        self.delta_dims = np.zeros(config.robot_action_dim, bool)
        self.delta_dims[:len(config.delta_action_mask)] = config.delta_action_mask

    # ------------------------------------------------------------------ validation
    def check_images(self, images: Any) -> dict[str, np.ndarray]:
        cfg = self.config
        if not isinstance(images, Mapping):
            raise TypeError(f'obs["images"] must be a dict camera_name -> array, got '
                            f'{type(images).__name__}')
        known = cfg.camera_names
        unknown = [n for n in images if n not in known]
        if unknown:
            raise ValueError(f'unknown camera(s) {unknown}; known cameras: {list(known)}')
        if images.get(cfg.base_camera) is None:
            raise ValueError(f'base camera {cfg.base_camera!r} is missing from obs["images"] '
                             f'(got {sorted(images)}); only expert cameras '
                             f'{list(cfg.expert_cameras)} may be missing')
        out = {}
        for name, img in images.items():
            if img is None:
                continue
            img = _as_array(img, f'image {name!r}')
            thermal = name in cfg.thermal_cameras
            if img.size == 0:
                raise ValueError(f'image {name!r} is empty, shape {img.shape}')
            if thermal and img.dtype == np.uint16:
                if img.ndim == 3 and img.shape[2] == 1:
                    img = img[:, :, 0]
                if img.ndim != 2:
                    raise ValueError(f'thermal image {name!r} must be HxW uint16 centi-Kelvin, '
                                     f'got shape {img.shape}')
            else:
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
            out[name] = img
        return out

    def check_state(self, state: Any) -> np.ndarray:
        dim = self.config.robot_state_dim
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

    def check_prompt(self, prompt: Any) -> str:
        if prompt is None:
            prompt = ''
        if not isinstance(prompt, str):
            raise TypeError(f'obs["prompt"] must be a str, got {type(prompt).__name__}')
        if self.config.require_prompt and not prompt.strip():
            raise ValueError('obs["prompt"] is empty but this policy requires a prompt '
                             '(config.require_prompt=True)')
        return prompt

    def check_obs(self, obs: Any) -> tuple[dict[str, np.ndarray], np.ndarray, str]:
        if not isinstance(obs, Mapping):
            raise TypeError(f'obs must be a dict with keys images/state/prompt, got '
                            f'{type(obs).__name__}')
        for key in ('images', 'state'):
            if key not in obs:
                raise ValueError(f'obs is missing key "{key}" (has {sorted(obs)})')
        if 'prompt' not in obs and self.config.require_prompt:
            raise ValueError(f'obs is missing key "prompt" (has {sorted(obs)})')
        return (self.check_images(obs['images']), self.check_state(obs['state']),
                self.check_prompt(obs.get('prompt', '')))

    # ------------------------------------------------------------------ pieces
    def image_tensors(self, images: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> images (C, 3, S, S) float32 in [-1, 1], masks (C,) bool; missing = zeros, off."""
        cfg = self.config
        s = cfg.image_size
        out = torch.zeros(len(cfg.camera_names), 3, s, s)
        mask = torch.zeros(len(cfg.camera_names), dtype=torch.bool)
        for i, name in enumerate(cfg.camera_names):
            img = images.get(name)
            if img is None:
                continue
            if img.dtype == np.uint16:
                out[i] = thermal_to_tensor(img, s, cfg.thermal_window_ck, cfg.thermal_colormap)
            else:
                out[i] = rgb_to_tensor(img, s)
            mask[i] = True
        return out, mask

    def tokenize(self, text: str) -> tuple[torch.Tensor, torch.Tensor]:
        """-> tokens (L,) long, mask (L,) bool, L = max_token_len (pad or truncate)."""
        n = self.config.max_token_len
        ids = self.tokenizer.encode(text)
        if len(ids) > n:
            log.warning('prompt is %d tokens, truncated to max_token_len=%d: %r', len(ids), n,
                        text)
            ids = ids[:n]
        tokens = torch.full((n,), self.tokenizer.pad_id, dtype=torch.long)
        tokens[:len(ids)] = torch.tensor(ids, dtype=torch.long)
        mask = torch.zeros(n, dtype=torch.bool)
        mask[:len(ids)] = True
        return tokens, mask

    def camera_labels(self, camera_active: Any) -> torch.Tensor:
        experts = self.config.expert_cameras
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

    # ------------------------------------------------------------------ public
    def sample(self, images: Mapping[str, np.ndarray], state: Any, prompt: str,
               actions: Any = None, camera_active: Any = None, action_is_pad: Any = None
               ) -> dict[str, torch.Tensor]:
        """One sample.  images: camera -> raw array (any size); state: robot units (D,);
        actions: robot units (H, robot_action_dim); camera_active: {expert: 0/1} or (N,).

        Returns images (C, 3, S, S), image_masks (C,), tokens (L,), token_mask (L,),
        state (32,), and with labels actions (H, 32), action_is_pad (H,), camera_active (N,).
        """
        cfg = self.config
        imgs = self.check_images(images)
        s = self.check_state(state)
        text = self.check_prompt(prompt)
        s_norm = self.norm_stats.state.normalize(s)  # (D,)
        pix, masks = self.image_tensors(imgs)
        tokens, tmask = self.tokenize(format_prompt(
            text, s_norm if cfg.state_in_prompt else None, cfg.pi05))
        out = {'images': pix, 'image_masks': masks, 'tokens': tokens, 'token_mask': tmask,
               'state': torch.from_numpy(pad_to(s_norm, cfg.max_state_dim))}
        if actions is not None:
            a = np.asarray(actions, dtype=np.float32)
            want = (cfg.action_horizon, cfg.robot_action_dim)
            if a.shape != want:
                raise ValueError(f'actions must have shape {want} (action_horizon, '
                                 f'robot_action_dim), got {a.shape}')
            if not np.all(np.isfinite(a)):
                raise ValueError('actions contain NaN/inf')
            a_norm = self.norm_stats.actions.normalize(self.relative_actions(a, s))
            out['actions'] = torch.from_numpy(pad_to(a_norm, cfg.action_dim))
            pad = np.zeros(cfg.action_horizon, bool) if action_is_pad is None \
                else np.asarray(action_is_pad, bool).reshape(-1)
            if pad.shape != (cfg.action_horizon,):
                raise ValueError(f'action_is_pad must have {cfg.action_horizon} flags, got '
                                 f'{pad.shape}')
            out['action_is_pad'] = torch.from_numpy(pad)
        if camera_active is not None:
            out['camera_active'] = self.camera_labels(camera_active)
        return out

    def collate(self, samples: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Stack samples.  ``camera_active`` missing in some samples becomes a NaN row
        (unlabelled); ``actions`` must be in all samples or none."""
        if not samples:
            raise ValueError('collate needs at least one sample')
        batch = {}
        keys = set().union(*(s.keys() for s in samples))
        for key in sorted(keys):
            have = [key in s for s in samples]
            if key == 'camera_active' and not all(have):
                n = self.config.num_experts
                rows = [s.get(key, torch.full((n,), float('nan'))) for s in samples]
                batch[key] = torch.stack(rows)
            elif not all(have):
                raise ValueError(f'collate: key "{key}" is in {sum(have)} of {len(samples)} '
                                 'samples; it must be in all or none')
            else:
                batch[key] = torch.stack([s[key] for s in samples])
        return batch

    def _state_offset(self, state: np.ndarray) -> np.ndarray:
        """(..., D) state -> (..., 1, A): the state on the delta dims, 0 on the others."""
        s = np.asarray(state, np.float32)[..., None, :self.delta_dims.size]  # (..., 1, A)
        return np.where(self.delta_dims, s, 0.0).astype(np.float32)

    def relative_actions(self, actions: np.ndarray, state: np.ndarray) -> np.ndarray:
        """(..., H, A) absolute actions -> what the model predicts: the delta dims minus the
        state (..., D) they were observed at; the other dims unchanged."""
        a = np.array(actions, dtype=np.float32)  # (..., H, A)
        return a - self._state_offset(state) if self.delta_dims.any() else a

    def unnormalize_actions(self, actions: np.ndarray, state: np.ndarray | None = None
                            ) -> np.ndarray:
        """(..., H, 32) normalised -> (..., H, robot_action_dim) robot units, float32.

        ``state`` (..., robot_state_dim): the observation's state in robot units, needed to
        make delta dims (config.delta_action_mask) absolute again."""
        real = self.norm_stats.actions.unnormalize(actions[..., :self.config.robot_action_dim])
        if not self.delta_dims.any():
            return real
        if state is None:
            raise ValueError('this policy predicts actions relative to the state '
                             '(delta_action_mask); unnormalize_actions needs the state')
        return real + self._state_offset(state)
