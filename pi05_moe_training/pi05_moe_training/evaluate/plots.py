"""PNG plots of an open-loop evaluation (matplotlib's Agg canvas; no display, no pyplot state).

- ``actions.png``: predicted (horizon 1) vs recorded action per joint over the evaluated frames;
- ``routing.png``: routing weight per expert over the frames, with the labelled expert shaded;
- ``latency.png``: histogram of the ``Policy.infer`` wall times with p50/p90/p99 marked.

The x axis of the first two is the evaluated frames in order; dashed lines separate episodes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pi05_moe_training.evaluate.metrics import MULTI_LABEL, PERCENTILES, EvalRecord, single_labels

DPI = 100
COLOURS = ('tab:blue', 'tab:orange', 'tab:green', 'tab:red', 'tab:purple', 'tab:brown',
           'tab:pink', 'tab:olive', 'tab:cyan')


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout='constrained')
    FigureCanvasAgg(fig)
    return fig


def _episode_breaks(ax: Any, episode: np.ndarray) -> None:
    """Dashed vertical lines where the episode changes between consecutive frames."""
    for x in np.nonzero(np.diff(episode))[0]:
        ax.axvline(x + 0.5, color='grey', linestyle='--', linewidth=0.8)


def _runs(values: np.ndarray) -> list[tuple[int, int, int]]:
    """(start, stop, value) of each run of equal values; stop is exclusive."""
    if values.size == 0:
        return []
    starts = np.concatenate([[0], np.nonzero(np.diff(values))[0] + 1])
    stops = np.concatenate([starts[1:], [values.size]])
    return [(int(a), int(b), int(values[a])) for a, b in zip(starts, stops)]


def _plot_episodes(ax: Any, y: np.ndarray, episode: np.ndarray, label: str, **kw: Any) -> None:
    """y: (N,) over the evaluated frames, one line per episode (none across a boundary)."""
    x = np.arange(len(y))  # (N,)
    for k, (a, b, _) in enumerate(_runs(episode)):
        ax.plot(x[a:b], y[a:b], label=label if k == 0 else None, **kw)
    _episode_breaks(ax, episode)


def plot_actions(path: str | Path, record: EvalRecord, joint_names: Sequence[str]) -> Path:
    """One subplot per joint: recorded action[t] and the chunk's first row, per frame."""
    n = len(joint_names)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig = _figure(3.6 * cols, 2.4 * rows + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for j, (ax, name) in enumerate(zip(axes, joint_names)):
        _plot_episodes(ax, record.recorded[:, 0, j], record.episode, 'recorded',
                       color='black', linewidth=1.2)
        _plot_episodes(ax, record.predicted[:, 0, j], record.episode, 'predicted (h1)',
                       color='tab:blue', linewidth=1.0, marker='.', markersize=3)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[n:]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    fig.supxlabel('evaluated frame (dashed: next episode)', fontsize=8)
    fig.suptitle('Predicted vs recorded action at horizon 1 (robot units)', fontsize=10)
    fig.savefig(path)
    return Path(path)


def plot_routing(path: str | Path, record: EvalRecord, experts: Sequence[str]) -> Path:
    """Routing weight per expert; the background is shaded with the labelled expert's colour
    (grey hatch: several labels, none: no label)."""
    fig = _figure(10, 3.6)
    ax = fig.subplots()
    if not experts:
        ax.text(0.5, 0.5, 'this checkpoint has no camera MoE: no routing weights',
                ha='center', va='center', transform=ax.transAxes)
        ax.set_axis_off()
        fig.savefig(path)
        return Path(path)
    shaded = set()
    for start, stop, label in _runs(single_labels(record.labels)):
        if label >= 0:
            kw = {'color': COLOURS[label % len(COLOURS)], 'alpha': 0.15}
            name = f'label: {experts[label]}'
        elif label == MULTI_LABEL:
            kw = {'facecolor': 'none', 'edgecolor': 'grey', 'hatch': '//', 'alpha': 0.4}
            name = 'label: several'
        else:
            continue
        ax.axvspan(start - 0.5, stop - 0.5, linewidth=0,
                   label=None if name in shaded else name, **kw)
        shaded.add(name)
    for i, name in enumerate(experts):
        _plot_episodes(ax, record.weights[:, i], record.episode, f'weight: {name}',
                       color=COLOURS[i % len(COLOURS)], linewidth=1.4, marker='.',
                       markersize=3)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(-0.5, max(len(record.episode) - 0.5, 0.5))
    ax.set_xlabel('evaluated frame (dashed: next episode)')
    ax.set_ylabel('routing weight')
    ax.set_title('Routing weights over time; shaded: labelled expert camera')
    ax.legend(fontsize=8, loc='upper left', bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3)
    fig.savefig(path)
    return Path(path)


def plot_latency(path: str | Path, latency_ms: np.ndarray) -> Path:
    """Histogram of the infer wall times with the reported percentiles as vertical lines."""
    x = np.asarray(latency_ms, np.float64)
    fig = _figure(7, 3.6)
    ax = fig.subplots()
    ax.hist(x, bins=min(40, max(5, x.size // 2)), color='tab:blue', alpha=0.8)
    for p, style in zip(PERCENTILES, (':', '--', '-.')):
        value = float(np.percentile(x, p))
        ax.axvline(value, color='black', linestyle=style, label=f'p{p} {value:.1f} ms')
    ax.set_xlabel('Policy.infer wall time (ms)')
    ax.set_ylabel('frames')
    ax.set_title(f'Inference latency ({x.size} calls)')
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.savefig(path)
    return Path(path)


def plot_all(out: str | Path, record: EvalRecord, joint_names: Sequence[str],
             experts: Sequence[str]) -> dict[str, Path]:
    """Write the three PNGs into ``out``; returns {'actions'|'routing'|'latency': path}."""
    out = Path(out)
    return {'actions': plot_actions(out / 'actions.png', record, joint_names),
            'routing': plot_routing(out / 'routing.png', record, experts),
            'latency': plot_latency(out / 'latency.png', record.latency_ms)}
