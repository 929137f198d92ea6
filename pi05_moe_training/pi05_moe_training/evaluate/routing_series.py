"""Routing weights over time, from RoutingWeights messages: arrays and a summary. Pure (numpy).

Works on any objects with the RoutingWeights fields (``expert_names``, ``weights``, ``present``):
rosbags messages from a bag as well as rclpy messages. The expert set may change between messages
(another checkpoint, a camera configured out); an expert absent from a message is NaN there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pi05_moe_policy import topics

MSGTYPE = 'pi05_moe_msgs/msg/RoutingWeights'
TOPIC = topics.ROUTING


@dataclass(frozen=True)
class RoutingSeries:
    """Routing weights of N messages over E experts."""

    times: np.ndarray  # (N,) seconds since the bag's start, float64
    experts: list[str]  # (E,) in order of first appearance
    weights: np.ndarray  # (N, E) float64, NaN where the expert was not in the message
    present: np.ndarray  # (N, E) float64: 1 frame present, 0 missing, NaN unknown
    base_cameras: list[str]  # distinct base cameras seen, in order


@dataclass(frozen=True)
class ExpertSummary:
    name: str
    mean: float  # mean weight over the messages that list the expert
    std: float
    top_share: float  # fraction of messages where this expert has the largest weight
    present_share: float  # fraction of messages (that report presence) with its frame present
    count: int  # messages that list the expert


def collect(messages: Iterable[tuple[int, Any]], start_ns: int) -> RoutingSeries:
    """``(receive_time_ns, RoutingWeights)`` pairs -> a :class:`RoutingSeries`.

    Raises ValueError naming the message whose names and weights differ in length.
    """
    experts: dict[str, int] = {}
    rows: list[tuple[float, dict[str, float], dict[str, float]]] = []
    bases: list[str] = []
    for t_ns, msg in messages:
        names, weights = list(msg.expert_names), np.asarray(msg.weights, dtype=np.float64)
        if len(names) != len(weights):
            raise ValueError(f'RoutingWeights at {t_ns} ns: {len(names)} expert_names but '
                             f'{len(weights)} weights')
        present = np.asarray(msg.present, dtype=np.float64)
        if len(present) != len(names):
            present = np.full(len(names), np.nan)  # presence not reported
        for name in names:
            experts.setdefault(name, len(experts))
        if msg.base_camera and msg.base_camera not in bases:
            bases.append(msg.base_camera)
        rows.append(((t_ns - start_ns) * 1e-9, dict(zip(names, weights)),
                     dict(zip(names, present))))
    n, e = len(rows), len(experts)
    weights = np.full((n, e), np.nan)  # (N, E)
    present = np.full((n, e), np.nan)  # (N, E)
    for i, (_, w, p) in enumerate(rows):
        for name, value in w.items():
            weights[i, experts[name]] = value
            present[i, experts[name]] = p[name]
    times = np.array([r[0] for r in rows], dtype=np.float64)  # (N,)
    return RoutingSeries(times, list(experts), weights, present, bases)


def summarize(series: RoutingSeries) -> list[ExpertSummary]:
    """Per expert: mean and std of its weight, how often it is on top, how often present."""
    w = series.weights  # (N, E)
    listed = ~np.isnan(w)  # (N, E)
    top = np.zeros_like(listed)
    rows = listed.any(axis=1)
    top[rows, np.nanargmax(np.where(listed[rows], w[rows], -np.inf), axis=1)] = True
    out = []
    for j, name in enumerate(series.experts):
        values = w[listed[:, j], j]
        reported = series.present[~np.isnan(series.present[:, j]), j]
        out.append(ExpertSummary(
            name=name,
            mean=float(values.mean()) if values.size else float('nan'),
            std=float(values.std()) if values.size else float('nan'),
            top_share=float(top[:, j].sum() / max(rows.sum(), 1)),
            present_share=float(reported.mean()) if reported.size else float('nan'),
            count=int(values.size),
        ))
    return out


def format_summary(series: RoutingSeries, topic: str) -> str:
    """A few lines for the terminal: the extent, then one line per expert."""
    span = float(series.times[-1] - series.times[0]) if len(series.times) else 0.0
    base = f', base camera {", ".join(series.base_cameras)}' if series.base_cameras else ''
    lines = [f'{topic}: {len(series.times)} messages over {span:.2f} s{base}',
             f'{"expert":<14}{"mean":>8}{"std":>8}{"top %":>8}{"present %":>11}{"msgs":>7}']
    for s in summarize(series):
        lines.append(f'{s.name:<14}{s.mean:>8.3f}{s.std:>8.3f}{100 * s.top_share:>8.1f}'
                     f'{100 * s.present_share:>11.1f}{s.count:>7d}')
    return '\n'.join(lines)
