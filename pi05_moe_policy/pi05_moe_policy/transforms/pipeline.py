"""The one transform composition shared by ``Policy.infer`` and training (openpi's
``policy_config``: small steps, composed per robot and per checkpoint).

``make_transforms(model_config, data_config, norm_stats, tokenizer)`` builds

    inputs:  CheckObservation -> CheckActions -> DeltaActions -> Normalize -> TokenizePrompt
             -> ImagesToTensors -> CameraLabels -> PadStatesAndActions -> ToModelInputs
    outputs: TruncateActions -> Unnormalize -> AbsoluteActions

Each step is a callable ``dict -> dict`` that returns a new dict (the caller's is never
changed).  ``PolicyTransforms.sample(...)`` runs the inputs on one raw sample and returns the
tensors ``Pi05Model.compute_loss`` / ``sample_actions`` take (keys in ``model/pi05.py``) after
``collate``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from pi05_moe_policy.model.config import ModelConfig
from pi05_moe_policy.transforms.actions import (
    AbsoluteActions,
    DeltaActions,
    PadStatesAndActions,
    TruncateActions,
)
from pi05_moe_policy.transforms.checks import CheckActions, CheckObservation
from pi05_moe_policy.transforms.data_config import DataConfig
from pi05_moe_policy.transforms.image import ImagesToTensors
from pi05_moe_policy.transforms.labels import CameraLabels
from pi05_moe_policy.transforms.normalize import Normalize, NormStats, Unnormalize
from pi05_moe_policy.transforms.prompt import TokenizePrompt

Step = Callable[[dict[str, Any]], dict[str, Any]]
BATCH_KEYS = ('images', 'image_masks', 'tokens', 'token_mask', 'state', 'actions',
              'action_is_pad', 'action_dim_mask', 'camera_active')


class Compose:
    """Steps run in order (openpi's ``CompositeTransform``)."""

    def __init__(self, steps: Sequence[Step]):
        self.steps = tuple(steps)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        for step in self.steps:
            sample = step(sample)
        return sample


class ToModelInputs:
    """Step: keep the batch keys (BATCH_KEYS) and make every value a torch tensor."""

    def __call__(self, sample: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
                for k, v in sample.items() if k in BATCH_KEYS}


def collate(samples: Sequence[dict[str, torch.Tensor]], num_experts: int
            ) -> dict[str, torch.Tensor]:
    """Stack samples.  ``camera_active`` missing in some samples becomes a NaN row
    (unlabelled); any other key (``actions``...) must be in all samples or none."""
    if not samples:
        raise ValueError('collate needs at least one sample')
    batch = {}
    keys = set().union(*(s.keys() for s in samples))
    for key in sorted(keys):
        have = [key in s for s in samples]
        if key == 'camera_active' and not all(have):
            rows = [s.get(key, torch.full((num_experts,), float('nan'))) for s in samples]
            batch[key] = torch.stack(rows)  # (B, N)
        elif not all(have):
            raise ValueError(f'collate: key "{key}" is in {sum(have)} of {len(samples)} '
                             'samples; it must be in all or none')
        else:
            batch[key] = torch.stack([s[key] for s in samples])
    return batch


class PolicyTransforms:
    """A checkpoint's input and output compositions, plus the calls robot adapters and the
    training dataset use.  Built by :func:`make_transforms`."""

    def __init__(self, model_config: ModelConfig, data_config: DataConfig,
                 norm_stats: NormStats, inputs: Compose, outputs: Compose):
        self.model_config = model_config
        self.data_config = data_config
        self.norm_stats = norm_stats
        self.inputs = inputs
        self.outputs = outputs
        self._check = next(s for s in inputs.steps if isinstance(s, CheckObservation))

    def set_truncation_handler(self, on_truncate: Callable[[str, int], None] | None) -> None:
        """Report prompts cut to max_token_len to ``on_truncate(text, n_ids)`` (None: Python
        logging, the default)."""
        for step in self.inputs.steps:
            if isinstance(step, TokenizePrompt):
                step.on_truncate = on_truncate

    def check_obs(self, obs: Any) -> dict[str, Any]:
        """A robot observation {images, state, prompt} -> the checked raw sample."""
        return self._check.check_obs(obs)

    def sample(self, images: Mapping[str, np.ndarray], state: Any, prompt: str,
               actions: Any = None, camera_active: Any = None, action_is_pad: Any = None
               ) -> dict[str, torch.Tensor]:
        """One sample.  images: camera -> raw array (any size); state: robot units (D,);
        actions: robot units (H, robot_action_dim); camera_active: {expert: 0/1} or (N,).

        Returns images (C, 3, S, S), image_masks (C,), tokens (L,), token_mask (L,),
        state (32,), and with labels actions (H, 32), action_is_pad (H,), action_dim_mask
        (32,), camera_active (N,).
        """
        return self.inputs({'images': images, 'state': state, 'prompt': prompt,
                            'actions': actions, 'action_is_pad': action_is_pad,
                            'camera_active': camera_active})

    def collate(self, samples: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return collate(samples, self.data_config.num_experts)

    def unnormalize_actions(self, actions: np.ndarray, state: np.ndarray | None = None
                            ) -> np.ndarray:
        """(..., H, 32) normalised -> (..., H, robot_action_dim) robot units, float32.

        ``state`` (..., robot_state_dim): the observation's state in robot units, needed to
        make delta dims (DataConfig.delta_action_mask) absolute again."""
        return self.outputs({'actions': actions, 'state': state})['actions']


def make_transforms(model_config: ModelConfig, data_config: DataConfig, norm_stats: NormStats,
                    tokenizer: Any) -> PolicyTransforms:
    """The input and output steps for one robot (``data_config``) and one network
    (``model_config``), with the checkpoint's norm stats and tokenizer."""
    m, d = model_config, data_config
    norm_stats.validate(d.robot_state_dim, d.robot_action_dim)
    v1 = d.preprocessing == 'v1'
    how = {'mode': d.normalization, 'preprocessing': d.preprocessing}
    inputs = Compose([
        CheckObservation(d),
        CheckActions(m.action_horizon, d.robot_action_dim),
        DeltaActions(d.delta_action_mask, d.robot_action_dim),
        Normalize(norm_stats, **how),
        TokenizePrompt(tokenizer, d.max_token_len, m.pi05, d.state_in_prompt, clip_bins=v1),
        ImagesToTensors(d.camera_names, m.image_size, d.thermal_window_ck, d.thermal_colormap,
                        reference=not v1),
        CameraLabels(d.expert_cameras),
        PadStatesAndActions(m.max_state_dim, m.action_dim),
        ToModelInputs(),
    ])
    outputs = Compose([
        TruncateActions(d.robot_action_dim),
        Unnormalize(norm_stats, **how),
        AbsoluteActions(d.delta_action_mask, d.robot_action_dim),
    ])
    return PolicyTransforms(m, d, norm_stats, inputs, outputs)
