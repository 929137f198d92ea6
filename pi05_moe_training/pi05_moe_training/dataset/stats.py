"""Per-dimension statistics of a dataset's state and action (``meta/stats.json``). Pure numpy.

The policy's quantile normalisation maps q01 -> -1 and q99 -> +1 per dimension (PI0.5); mean and
std serve z-score normalisation; min and max are for inspection. Quantiles are exact over all
frames of all episodes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

STAT_KEYS = ('mean', 'std', 'min', 'max', 'q01', 'q99')
STATS_FILE = Path('meta') / 'stats.json'


def compute_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """Statistics of ``values`` (N, D) per dimension: each (D,) float64, plus ``count`` (1,)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError(f'compute_stats: expected (N, D) with N > 0, got {values.shape}')
    q01, q99 = np.quantile(values, [0.01, 0.99], axis=0)  # (D,) each
    return {
        'mean': values.mean(axis=0),
        'std': values.std(axis=0),
        'min': values.min(axis=0),
        'max': values.max(axis=0),
        'q01': q01,
        'q99': q99,
        'count': np.array([values.shape[0]]),
    }


def chunk_action_values(state: np.ndarray, action: np.ndarray, horizon: int,
                        delta_dims: np.ndarray) -> np.ndarray:
    """One episode's action chunks as the model sees them, for its normalisation stats.

    state (T, D), action (T, A); chunk t holds actions t..t+horizon-1 (the last one repeated
    past the end, as in training), minus state t on ``delta_dims`` (A,) bool.
    Returns (T * horizon, A).
    """
    steps = action.shape[0]
    rows = np.minimum(np.arange(steps)[:, None] + np.arange(horizon), steps - 1)  # (T, H)
    chunks = action[rows].astype(np.float64)  # (T, H, A)
    offset = np.where(delta_dims, state[:, :delta_dims.size], 0.0)  # (T, A)
    return (chunks - offset[:, None, :]).reshape(-1, action.shape[1])


def write_stats(root: str | Path, stats: dict[str, dict[str, np.ndarray]]) -> Path:
    """Write ``{feature: {stat: (D,)}}`` to ``root/meta/stats.json`` (lists of floats)."""
    path = Path(root) / STATS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    plain = {feature: {k: np.asarray(v).tolist() for k, v in s.items()}
             for feature, s in stats.items()}
    path.write_text(json.dumps(plain, indent=2) + '\n')
    return path


def load_stats(root: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Read ``root/meta/stats.json`` as ``{feature: {stat: float32 (D,)}}``.

    Raises FileNotFoundError or ValueError (naming the file and the missing key).
    """
    path = Path(root) / STATS_FILE
    if not path.is_file():
        raise FileNotFoundError(f'{path}: no stats; is {root} a dataset from `pi05-moe convert`?')
    raw = json.loads(path.read_text())
    out = {}
    for feature, stats in raw.items():
        missing = [k for k in STAT_KEYS if k not in stats]
        if missing:
            raise ValueError(f'{path}: {feature} lacks {missing}')
        out[feature] = {k: np.asarray(v, dtype=np.float32) for k, v in stats.items()}
    return out
