"""Normalisation of state and actions, as the checkpoint's DataConfig says.

* ``quantile`` (PI0.5): ``2 (x - q01) / (q99 - q01) - 1``, the scale replaced by ``eps`` where
  q01 == q99 (LeRobot's and openpi's rule, ``preprocessing='reference'``), or with 1e-6 added
  to every scale (``preprocessing='v1'``, this project's first checkpoints);
* ``mean_std`` (openpi's PI0): ``(x - mean) / (std + eps)``, inverse ``y * std + mean``.

Stats cover the robot's real dims; the model pads to 32 with zeros after normalising.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

STAT_FIELDS = ('q01', 'q99', 'mean', 'std', 'min', 'max')
EPS = 1e-6  # 'v1': added to every quantile range
REFERENCE_EPS = 1e-8  # 'reference': LeRobot's normaliser eps (only where a range is 0)


@dataclasses.dataclass
class Stats:
    q01: np.ndarray
    q99: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray

    @classmethod
    def identity(cls, dim: int) -> Stats:
        """q01=-1, q99=1: normalisation is (almost) the identity."""
        one = np.ones(dim, np.float32)
        return cls(q01=-one, q99=one.copy(), mean=np.zeros(dim, np.float32), std=one.copy(),
                   min=-one.copy(), max=one.copy())

    def __post_init__(self) -> None:
        for f in STAT_FIELDS:
            setattr(self, f, np.asarray(getattr(self, f), dtype=np.float32).reshape(-1))

    def validate(self, key: str, dim: int) -> None:
        for f in STAT_FIELDS:
            v = getattr(self, f)
            if v.shape != (dim,):
                raise ValueError(f'norm_stats["{key}"]["{f}"] must have {dim} values (the '
                                 f'robot {key} dim), got shape {v.shape}')
            if not np.all(np.isfinite(v)):
                raise ValueError(f'norm_stats["{key}"]["{f}"] has NaN/inf: {v.tolist()}')
        if np.any(self.q99 < self.q01):
            raise ValueError(f'norm_stats["{key}"]: q99 < q01 at dims '
                             f'{np.nonzero(self.q99 < self.q01)[0].tolist()}')

    def _scale(self, preprocessing: str) -> np.ndarray:
        """(D,) the quantile range the normalisation divides by."""
        span = (self.q99 - self.q01).astype(np.float32)
        if preprocessing == 'v1':
            return span + np.float32(EPS)
        return np.where(span == 0, np.float32(REFERENCE_EPS), span).astype(np.float32)

    def normalize(self, x: np.ndarray, mode: str = 'quantile',
                  preprocessing: str = 'reference') -> np.ndarray:
        """x: (..., D) robot units -> normalised."""
        if mode == 'mean_std':
            return ((x - self.mean) / (self.std + np.float32(REFERENCE_EPS))).astype(np.float32)
        return (2.0 * (x - self.q01) / self._scale(preprocessing) - 1.0).astype(np.float32)

    def unnormalize(self, y: np.ndarray, mode: str = 'quantile',
                    preprocessing: str = 'reference') -> np.ndarray:
        """y: (..., D) normalised -> robot units."""
        if mode == 'mean_std':
            return (y * self.std + self.mean).astype(np.float32)
        return ((y + 1.0) / 2.0 * self._scale(preprocessing) + self.q01).astype(np.float32)

    def to_dict(self) -> dict[str, list[float]]:
        return {f: [float(v) for v in getattr(self, f)] for f in STAT_FIELDS}


@dataclasses.dataclass
class NormStats:
    state: Stats
    actions: Stats

    @classmethod
    def identity(cls, state_dim: int, action_dim: int) -> NormStats:
        return cls(state=Stats.identity(state_dim), actions=Stats.identity(action_dim))

    @classmethod
    def from_dict(cls, data: Any) -> NormStats:
        if isinstance(data, NormStats):
            return data
        if not isinstance(data, dict):
            raise TypeError(f'norm_stats must be a NormStats or a dict, got {type(data).__name__}')
        out = {}
        for key in ('state', 'actions'):
            if key not in data:
                raise ValueError(f'norm_stats is missing "{key}" (has {sorted(data)})')
            entry = data[key]
            if isinstance(entry, Stats):
                out[key] = entry
                continue
            missing = [f for f in ('q01', 'q99') if f not in entry]
            if missing:
                raise ValueError(f'norm_stats["{key}"] is missing {missing}')
            dim = len(np.asarray(entry['q01']).reshape(-1))
            fill = Stats.identity(dim)
            out[key] = Stats(**{f: entry.get(f, getattr(fill, f)) for f in STAT_FIELDS})
        return cls(**out)

    def validate(self, state_dim: int, action_dim: int) -> None:
        self.state.validate('state', state_dim)
        self.actions.validate('actions', action_dim)

    def to_dict(self) -> dict[str, Any]:
        return {'state': self.state.to_dict(), 'actions': self.actions.to_dict()}

    def changes(self, other: NormStats, names: list[str] | None = None,
                atol: float = 1e-4) -> list[str]:
        """Where ``other``'s quantile range differs from this one's by more than ``atol``, as
        'actions[forearm_roll] q01 0 -> -0.038' lines (``names``: the dims' names); dims that
        differ in number are one line.  Empty when the two would normalise alike."""
        out = []
        for key in ('state', 'actions'):
            mine, theirs = getattr(self, key), getattr(other, key)
            if mine.q01.shape != theirs.q01.shape:
                out.append(f'{key}: {mine.q01.size} dims -> {theirs.q01.size}')
                continue
            for f in ('q01', 'q99'):
                a, b = getattr(mine, f), getattr(theirs, f)  # (D,)
                for i in np.flatnonzero(np.abs(a - b) > atol):
                    dim = names[i] if names and i < len(names) else str(i)
                    out.append(f'{key}[{dim}] {f} {a[i]:.4g} -> {b[i]:.4g}')
        return out

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> NormStats:
        return cls.from_dict(json.loads(Path(path).read_text()))


class Normalize:
    """Step: normalise ``state`` and (when present) ``actions`` with the checkpoint's stats
    (openpi's Normalize); the real dims only, padding comes after."""

    def __init__(self, norm_stats: NormStats, mode: str = 'quantile',
                 preprocessing: str = 'reference'):
        self.norm_stats = norm_stats
        self.how = {'mode': mode, 'preprocessing': preprocessing}

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        state = self.norm_stats.state.normalize(sample['state'], **self.how)  # (D,)
        out = {**sample, 'state': state}
        if sample.get('actions') is not None:
            out['actions'] = self.norm_stats.actions.normalize(sample['actions'], **self.how)
        return out


class Unnormalize:
    """Step (output): ``actions`` (..., H, robot_action_dim) normalised -> robot units."""

    def __init__(self, norm_stats: NormStats, mode: str = 'quantile',
                 preprocessing: str = 'reference'):
        self.norm_stats = norm_stats
        self.how = {'mode': mode, 'preprocessing': preprocessing}

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        actions = self.norm_stats.actions.unnormalize(sample['actions'], **self.how)
        return {**sample, 'actions': actions}


def pad_to(x: np.ndarray, dim: int) -> np.ndarray:
    """Zero-pad the last axis to ``dim``."""
    if x.shape[-1] > dim:
        raise ValueError(f'cannot pad {x.shape[-1]} dims down to {dim}')
    out = np.zeros((*x.shape[:-1], dim), np.float32)
    out[..., :x.shape[-1]] = x
    return out


def discretize_state(state_norm: np.ndarray, bins: int = 256, clip: bool = False) -> np.ndarray:
    """PI0.5's discrete state: ``digitize(s, linspace(-1, 1, 257)[:-1]) - 1``.

    As LeRobot and openpi do, a state below -1 gets bin -1 and one above 1 bin 255
    (``clip=False``); ``clip=True`` (``preprocessing='v1'``) clips into [-1, 1] first, so below -1
    is bin 0.
    """
    edges = np.linspace(-1.0, 1.0, bins + 1)[:-1]
    x = np.clip(state_norm, -1.0, 1.0) if clip else np.asarray(state_norm)
    return np.digitize(x, bins=edges) - 1


