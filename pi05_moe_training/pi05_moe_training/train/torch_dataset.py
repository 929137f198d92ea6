"""The converted dataset as a torch ``Dataset``, through the policy's own transforms.

Each sample goes through ``Policy.transform`` (``make_transforms``: checks, delta actions,
quantile normalisation, discretised state in the prompt, tokens, resize and pad to 224, thermal
to three channels, padding): the same composition ``Policy.infer`` runs, so training and
inference cannot disagree.  ``collate`` is the composition's as well.

An image history (RT-1: ``RT1Config.history`` k > 1): each sample also holds the k - 1
previous frames of its episode, ``history_stride`` frames apart, as ``image_history``
(k-1, C, 3, S, S) oldest first and ``image_history_masks`` (k-1, C), through the same image
steps; before the episode's first frame, frame 0 is repeated (the policy repeats its first
frame at an episode's start the same way).

Data order is a pure function of (seed, epoch, rank): ``ResumableSampler`` is a
``DistributedSampler`` that can start mid-epoch, and each epoch's ``DataLoader`` gets its own
seeded generator (worker seeds derive from it, never from the global RNG that draws the flow
noise).  That is what lets ``--resume`` continue bit-exactly.  The transform has no random
augmentation; one added later must draw from the worker's seeded RNG to stay resumable.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from pi05_moe_training.dataset import layout
from pi05_moe_training.dataset.episodes import EpisodeDataset, load_stats
from pi05_moe_training.dataset.stats import chunk_action_values, compute_stats
from pi05_moe_training.train.stop_request import ignore_sigint

THERMAL_ENCODING = 'mono16'  # centi-Kelvin (dataset_layout / convert)


class TrainDataset(Dataset):
    """Training samples of a ``pi05-moe convert`` dataset.

    Two steps, because the model is built from the dataset and the samples from the model:
    ``robot_description()`` and ``norm_stats`` feed a fresh policy's configs, then
    ``bind(policy)`` checks the dataset against the policy and reads frames with its action
    horizon and cameras.  Item i is ``policy.transform.sample(...)`` of frame i.
    """

    def __init__(self, root: str | Path, oversample_start_s: float = 0.0,
                 oversample_factor: int = 1):
        self.root = Path(root)
        self.oversample_start_s = oversample_start_s
        self.oversample_factor = oversample_factor
        self.index = np.zeros(0, np.int64)  # sample -> frame, set by bind
        if not (self.root / layout.INFO).is_file():
            raise ValueError(f'{str(self.root)!r} is not a dataset from `pi05-moe convert` '
                             f'(no {layout.INFO})')
        self.info = layout.read_info(self.root)  # DatasetVersionError for an old layout
        self.stats = load_stats(self.root)
        self.frames: EpisodeDataset | None = None
        self.transform: Any = None
        self.history, self.history_stride = 1, 1  # frames per sample (bind sets them)

    def norm_stats(self, config: Any) -> dict[str, dict[str, Any]]:
        """Normalisation stats for a ``PolicyConfig`` in the policy's layout: the state's from
        ``meta/stats.json``; the actions' too when they are absolute, else computed here over
        every chunk with the state subtracted on DataConfig.delta_action_mask's dims."""
        state = self.stats[layout.STATE]
        mask, horizon = config.data.delta_action_mask, config.model.action_horizon
        if not any(mask):
            return {'state': state, 'actions': self.stats[layout.ACTION]}
        frames = EpisodeDataset(self.root, horizon=horizon, load_images=False)
        dims = np.asarray(mask, bool)  # (A,)
        values = np.concatenate([
            chunk_action_values(arrays['state'], arrays['action'], horizon, dims)
            for arrays in map(frames.episode_arrays, range(frames.num_episodes))])  # (N*H, A)
        return {'state': state, 'actions': compute_stats(values)}

    def robot_description(self) -> dict[str, Any]:
        """DataConfig fields the dataset determines: dims, joint names, control period and
        camera roles (thermal = cameras stored as mono16 centi-Kelvin)."""
        features = self.info['features']
        roles = self.info['camera_roles']
        cameras = [roles['base'], *roles['experts']]
        action_names = features[layout.ACTION]['names']
        return {
            'robot_state_dim': int(features[layout.STATE]['shape'][0]),
            'robot_action_dim': int(features[layout.ACTION]['shape'][0]),
            'joint_names': list(action_names) if action_names else None,
            'control_period_s': 1.0 / float(self.info['fps']),
            'base_camera': roles['base'],
            'expert_cameras': list(roles['experts']),
            'thermal_cameras': [c for c in cameras if features[layout.image_key(c)]['info']
                                .get('encoding') == THERMAL_ENCODING],
        }

    def bind(self, policy: Any) -> None:
        """Check that ``policy`` fits this dataset; then frames are read for it."""
        cfg = policy.data_config
        robot = self.robot_description()
        problems = [f'{k}: model {getattr(cfg, k)!r}, dataset {robot[k]!r}'
                    for k in ('robot_state_dim', 'robot_action_dim')
                    if getattr(cfg, k) != robot[k]]
        if not math.isclose(cfg.control_period_s, robot['control_period_s'], rel_tol=1e-3):
            problems.append(f'control_period_s: model {cfg.control_period_s!r}, dataset '
                            f'{robot["control_period_s"]!r} (1 / fps)')
        if problems:
            raise ValueError(f'dataset {str(self.root)!r} does not fit the model: '
                             + '; '.join(problems))
        self.frames = EpisodeDataset(self.root, horizon=policy.action_horizon,
                                     cameras=list(cfg.camera_names))
        self.transform = policy.transform
        self.history = int(getattr(policy.model_config, 'history', 1))
        self.history_stride = int(getattr(policy.model_config, 'history_stride', 1))
        self.index = self.sample_index(self.frames.frame_times(), self.oversample_start_s,
                                       self.oversample_factor)

    @staticmethod
    def sample_index(times: np.ndarray, start_s: float, factor: int) -> np.ndarray:
        """Sample -> frame: every frame once, plus ``factor - 1`` more copies of each frame
        less than ``start_s`` seconds into its episode. times: (N,) s since episode start."""
        early = np.flatnonzero(times < start_s)  # (E,)
        return np.concatenate([np.arange(len(times)), np.tile(early, factor - 1)])

    def __len__(self) -> int:
        self._bound()
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = self._bound()[int(self.index[i])]
        labels = item['camera_active']
        experts = self.transform.data_config.expert_cameras
        # Labels only when the dataset has one for each of the model's expert cameras.
        active = {e: labels[e] for e in experts} if all(e in labels for e in experts) else None
        sample = self.transform.sample(item['images'], item['state'], item['prompt'],
                                       actions=item['actions'], camera_active=active,
                                       action_is_pad=item['action_is_pad'])
        if self.history > 1:
            sample.update(self.past_images(item))
        return sample

    def past_images(self, item: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The k - 1 frames before ``item``'s (clamped at the episode's frame 0), through the
        same transform: image_history (k-1, C, 3, S, S), image_history_masks (k-1, C)."""
        frames = self._bound()
        episode, t = item['episode_index'], item['frame_index']
        images, masks = [], []
        for j in range(self.history - 1, 0, -1):  # oldest first
            past = frames.frame_images(episode, max(t - j * self.history_stride, 0))
            s = self.transform.sample(past, item['state'], item['prompt'])
            images.append(s['images'])
            masks.append(s['image_masks'])
        return {'image_history': torch.stack(images), 'image_history_masks': torch.stack(masks)}

    def collate(self, samples: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return self.transform.collate(samples)

    def _bound(self) -> EpisodeDataset:
        if self.frames is None:
            raise RuntimeError('TrainDataset.bind(policy) must be called first')
        return self.frames


class ResumableSampler(DistributedSampler):
    """This rank's shard of a seeded per-epoch shuffle, optionally skipping its first
    ``start`` indices (the batches already trained on before a checkpoint)."""

    def __init__(self, dataset: Any, world_size: int, rank: int, seed: int):
        super().__init__(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed,
                         drop_last=True)
        self.start = 0

    def set_position(self, epoch: int, start: int) -> None:
        self.set_epoch(epoch)
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.start, None)

    def __len__(self) -> int:
        return max(0, self.num_samples - self.start)


def make_loader(dataset: Any, sampler: ResumableSampler, batch_size: int, num_workers: int,
                seed: int, pin_memory: bool = False) -> DataLoader:
    """One epoch's loader; ``seed`` fixes the worker seeds (and nothing else)."""
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True,
                      num_workers=num_workers, collate_fn=dataset.collate,
                      generator=torch.Generator().manual_seed(seed), pin_memory=pin_memory,
                      persistent_workers=False,
                      worker_init_fn=ignore_sigint if num_workers else None)
