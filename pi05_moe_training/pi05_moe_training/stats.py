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
