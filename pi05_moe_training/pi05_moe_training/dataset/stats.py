"""Per-dimension statistics of a dataset's features (``meta/stats.json``). Pure numpy.

The policy's quantile normalisation maps q01 -> -1 and q99 -> +1 per dimension (PI0.5); mean and
std serve z-score normalisation; min and max are for inspection. Quantiles (q01, q10, q50, q90,
q99, as LeRobot writes them) are exact over all frames of all episodes. Image stats are LeRobot's:
per channel, shape (3, 1, 1), of the frames as LeRobot decodes them (rgb24 / 255), exact from
256-bin histograms of every stored frame.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

STAT_KEYS = ('mean', 'std', 'min', 'max', 'q01', 'q99')  # what loading requires
QUANTILES = {'q01': 0.01, 'q10': 0.10, 'q50': 0.50, 'q90': 0.90, 'q99': 0.99}
STATS_FILE = Path('meta') / 'stats.json'


def compute_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """Statistics of ``values`` (N, D) per dimension: each (D,) float64, plus ``count`` (1,)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError(f'compute_stats: expected (N, D) with N > 0, got {values.shape}')
    quantiles = np.quantile(values, list(QUANTILES.values()), axis=0)  # (5, D)
    return {
        'mean': values.mean(axis=0),
        'std': values.std(axis=0),
        'min': values.min(axis=0),
        'max': values.max(axis=0),
        **dict(zip(QUANTILES, quantiles)),
        'count': np.array([values.shape[0]]),
    }


def channel_histogram(frame: np.ndarray) -> np.ndarray:
    """(C, 256) counts of each uint8 value per channel of one (H, W, C) frame."""
    channels = frame.shape[2]
    offset = (np.arange(channels, dtype=np.int64) * 256)  # (C,)
    flat = frame.reshape(-1, channels).astype(np.int64) + offset  # (H*W, C)
    return np.bincount(flat.ravel(), minlength=256 * channels).reshape(channels, 256)


def histogram_stats(hist: np.ndarray, frames: int) -> dict[str, np.ndarray]:
    """LeRobot image stats from (C, 256) uint8 counts: each (C, 1, 1) in [0, 1]; count (1,)."""
    hist = np.asarray(hist, dtype=np.float64)
    levels = np.arange(256) / 255.0  # (256,)
    total = hist.sum(axis=1)  # (C,)
    mean = hist @ levels / total
    std = np.sqrt(np.maximum(hist @ levels ** 2 / total - mean ** 2, 0.0))
    cdf = np.cumsum(hist, axis=1) / total[:, None]  # (C, 256)
    present = hist > 0
    out = {'mean': mean, 'std': std,
           'min': levels[present.argmax(axis=1)],
           'max': levels[255 - present[:, ::-1].argmax(axis=1)]}
    for key, q in QUANTILES.items():  # the lower value at which the cdf reaches q
        out[key] = levels[(cdf < q - 1e-12).sum(axis=1)]
    out = {k: v.reshape(-1, 1, 1) for k, v in out.items()}
    out['count'] = np.array([frames])
    return out


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
