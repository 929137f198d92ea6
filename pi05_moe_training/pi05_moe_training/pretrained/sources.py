"""Read a pretrained PI0.5 / PI0 checkpoint from disk: LeRobot's or openpi's PyTorch layout.

Everything is local: a directory the user downloaded. Nothing here fetches.

* LeRobot (``PI05Policy.save_pretrained`` / ``PI0Policy``): ``model.safetensors``, ``config.json``,
  ``policy_preprocessor*.json`` whose ``normalizer_processor`` step names a ``state_file``
  (safetensors with ``<feature>.<stat>`` tensors), and ``policy_postprocessor*.json``.
* openpi (the PyTorch port, ``convert_jax_model_to_pytorch.py``): ``model.safetensors`` (keys
  without LeRobot's ``model.`` level), an optional ``config.json``, and the norm stats in
  ``assets/<asset id>/norm_stats.json`` (``{"norm_stats": {"state": {...}, "actions": {...}}}``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from pi05_moe_training.pretrained.keymap import CheckpointImportError

STAT_NAMES = ('q01', 'q99', 'mean', 'std', 'min', 'max')
IMAGE_PREFIX = 'observation.images.'


@dataclasses.dataclass
class Pretrained:
    """A checkpoint as read from disk, before any mapping."""

    source: str  # 'lerobot' | 'openpi'
    path: Path
    tensors: dict[str, Any]  # their key -> torch tensor
    state_stats: dict[str, np.ndarray]  # stat name -> (S,)
    action_stats: dict[str, np.ndarray]  # stat name -> (A,)
    camera_slots: tuple[str, ...]  # image slots in the model's order
    settings: dict[str, Any]  # our flat config fields read from their config (horizon, ...)
    normalization: str  # 'quantile' | 'mean_std'


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointImportError(f'{path}: missing') from None
    except json.JSONDecodeError as exc:
        raise CheckpointImportError(
            f'{path}: not valid JSON ({exc.msg} at line {exc.lineno})') from None


def _read_tensors(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointImportError(f'{path}: missing')
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointImportError(f'{path}: unreadable safetensors ({exc})') from None


def _stats_from(flat: dict[str, Any], feature: str, path: Path) -> dict[str, np.ndarray]:
    out = {}
    for name in STAT_NAMES:
        key = f'{feature}.{name}'
        if key in flat:
            out[name] = np.asarray(flat[key].float().numpy(), np.float32).reshape(-1)
    if not out:
        raise CheckpointImportError(
            f'{path}: no {feature}.* normaliser stats (have: {sorted(flat)})')
    return out


def _normalizer_state(directory: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The normaliser step's config and its state tensors from policy_preprocessor*.json."""
    files = sorted(directory.glob('policy_preprocessor*.json'))
    if not files:
        raise CheckpointImportError(f'{directory}: no policy_preprocessor*.json (LeRobot '
                                    'saves the normaliser stats there)')
    spec = _read_json(files[0])
    for step in spec.get('steps', []):
        if step.get('registry_name') == 'normalizer_processor' and step.get('state_file'):
            return step.get('config', {}), _read_tensors(directory / step['state_file'])
    raise CheckpointImportError(f'{files[0]}: no normalizer_processor step with a state_file')


def read_lerobot(directory: str | Path) -> Pretrained:
    d = Path(directory)
    config = _read_json(d / 'config.json')
    kind = config.get('type')
    if kind not in ('pi05', 'pi0'):
        raise CheckpointImportError(
            f'{d / "config.json"}: type={kind!r}; only pi05 and pi0 import')
    tensors = _read_tensors(d / 'model.safetensors')
    norm_cfg, flat = _normalizer_state(d)
    modes = norm_cfg.get('norm_map', config.get('normalization_mapping', {}))
    mode = modes.get('STATE', 'QUANTILES')
    if mode not in ('QUANTILES', 'MEAN_STD'):
        raise CheckpointImportError(f'{d}: state normalisation {mode!r} is not supported '
                           '(QUANTILES or MEAN_STD)')
    slots = tuple(k[len(IMAGE_PREFIX):] for k, v in config.get('input_features', {}).items()
                  if k.startswith(IMAGE_PREFIX) and v.get('type') == 'VISUAL')
    if not slots:
        raise CheckpointImportError(f'{d / "config.json"}: input_features has no VISUAL camera')
    settings = {
        'action_horizon': int(config.get('chunk_size', 50)),
        'num_steps': int(config.get('num_inference_steps', 10)),
        'max_token_len': int(config.get('tokenizer_max_length', 200)),
        'max_state_dim': int(config.get('max_state_dim', 32)),
        'time_min_period': float(config.get('min_period', 4e-3)),
        'time_max_period': float(config.get('max_period', 4.0)),
    }
    return Pretrained('lerobot', d, tensors, _stats_from(flat, 'observation.state', d),
                      _stats_from(flat, 'action', d), slots, settings,
                      'quantile' if mode == 'QUANTILES' else 'mean_std')


# openpi's camera slots (its model order) and its defaults.
OPENPI_SLOTS = ('base_0_rgb', 'left_wrist_0_rgb', 'right_wrist_0_rgb')


def read_openpi(directory: str | Path, asset_id: str | None = None) -> Pretrained:
    d = Path(directory)
    tensors = _read_tensors(d / 'model.safetensors')
    config = _read_json(d / 'config.json') if (d / 'config.json').is_file() else {}
    candidates = sorted((d / 'assets').glob('*/norm_stats.json'))
    if asset_id is not None:
        candidates = [p for p in candidates if p.parent.name == asset_id]
    if len(candidates) != 1:
        found = [p.parent.name for p in sorted((d / 'assets').glob('*/norm_stats.json'))]
        raise CheckpointImportError(f'{d / "assets"}: expected one */norm_stats.json'
                           f'{f" for asset {asset_id!r}" if asset_id else ""}, found {found} '
                           '(choose one with --asset-id)')
    stats = _read_json(candidates[0]).get('norm_stats', {})
    if 'state' not in stats or 'actions' not in stats:
        raise CheckpointImportError(f'{candidates[0]}: norm_stats needs "state" and "actions"')

    def arrays(s: dict[str, Any]) -> dict[str, np.ndarray]:
        return {k: np.asarray(v, np.float32).reshape(-1) for k, v in s.items()
                if k in STAT_NAMES}

    pi05 = bool(config.get('pi05', any(k.endswith('time_mlp_in.weight') for k in tensors)))
    settings = {
        'action_horizon': int(config.get('action_horizon', 50 if pi05 else 50)),
        'num_steps': int(config.get('num_steps', 10)),
        'max_token_len': int(config.get('max_token_len', 200 if pi05 else 48)),
    }
    # openpi normalises PI0 with mean/std and PI0.5 with quantiles (its data configs).
    return Pretrained('openpi', d, tensors, arrays(stats['state']), arrays(stats['actions']),
                      OPENPI_SLOTS, settings, 'quantile' if pi05 else 'mean_std')
