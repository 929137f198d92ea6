"""Open-loop evaluation metrics: action error, routing accuracy, latency. Pure numpy.

``EvalRecord`` holds what one evaluation run saw, frame by frame; the functions below turn it
into the sections of ``metrics.json``. ``DEFINITIONS`` documents every key and is written into
``metrics.json`` itself, so a file can be read without this source at hand.

Action error (``action_error``): the mean absolute error (MAE) between the predicted chunk and
the recorded future actions ``action[t], action[t+1], ...`` of the same frame.
- ``h<k>`` is the error at the k-th step ahead (chunk row k-1), over the frames whose row k-1
  lies inside the episode; horizons longer than the chunk are left out.
- ``chunk`` pools every valid row of every frame; rows past the episode's end (the dataset's
  ``action_is_pad``) never count.
- Each is given per joint, as the mean over joints, and with the number of rows it averages
  (``count``); in robot units (``robot_units``) and in the policy's normalised units
  (``normalized``: both chunks quantile-normalised with the checkpoint's stats, q01 -> -1 and
  q99 -> +1, so joints are comparable).

Routing (``routing``): the predicted expert of a frame is the arg-max of its routing weights;
its label is the one expert camera whose ``annotation.camera.<expert>_active`` is 1. Frames
with no active label (or no label at all) and frames with several are counted apart and left
out of ``accuracy``, ``confusion`` (rows: label, columns: predicted) and the per-expert scores.

Latency (``latency_ms``): percentiles (linear interpolation) of the wall time of
``Policy.infer``, after untimed warm-up calls, and the mean of each stage the policy reports
in its ``timing``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

HORIZONS = (1, 10)
PERCENTILES = (50, 90, 99)
NO_LABEL = -1  # a frame where no expert camera is labelled active (or labels are missing)
MULTI_LABEL = -2  # a frame where several expert cameras are labelled active

DEFINITIONS = {
    'setup': 'what was evaluated: checkpoint, data, frames, noise seed, Euler steps, device',
    'action_error': 'mean absolute error |predicted - recorded| of the action chunk against '
                    'the recorded future actions of the same frame; rows past the end of '
                    'the episode (action_is_pad) never count',
    'action_error.robot_units': 'errors in the robot\'s units (rad, m, gripper units)',
    'action_error.normalized': 'errors after quantile-normalising both chunks with the '
                               'checkpoint\'s stats (q01 -> -1, q99 -> +1 per joint)',
    'action_error.*.h<k>': 'the k-th step ahead (chunk row k-1), over frames whose row k-1 is '
                           'inside the episode; horizons longer than the chunk are omitted',
    'action_error.*.chunk': 'every valid row of every chunk, pooled',
    'action_error.*.*.per_joint': 'MAE per joint name',
    'action_error.*.*.mean': 'mean of the per-joint MAEs',
    'action_error.*.*.count': 'rows averaged per joint (null values mean count 0)',
    'routing': 'arg-max routing weight against the camera labels; experts: the expert '
               'cameras in weight order; available: false (and nothing else) for a '
               'checkpoint without the camera MoE',
    'routing.frames': 'evaluated frames by label: labelled (exactly one expert active), '
                      'no_label (none active or no label column), multi_label (several)',
    'routing.accuracy': 'share of labelled frames whose arg-max routing weight is the '
                        'labelled expert (null without labelled frames)',
    'routing.confusion': 'confusion[label][predicted] = labelled frames with that label whose '
                         'arg-max weight is that expert',
    'routing.per_expert': 'per expert: support (labelled frames), predicted (labelled frames '
                          'routed to it), recall = hits / support, precision = hits / '
                          'predicted (null when the denominator is 0)',
    'routing.mean_weight': 'mean_weight[label][expert] = mean routing weight of the expert '
                           'over labelled frames with that label; "all" = over every frame',
    'latency_ms': 'wall time of Policy.infer in ms (after untimed warm-up calls): p50/p90/p99 '
                  '(linear interpolation), max, mean and count',
    'latency_ms.stages_mean': 'mean of each stage of the policy\'s own timing dict (ms)',
}


@dataclass
class EvalRecord:
    """Per-frame results of one open-loop run (N frames, horizon H, A joints, E experts)."""

    predicted: np.ndarray  # (N, H, A) float32 robot units
    recorded: np.ndarray  # (N, H, A) float32 robot units
    is_pad: np.ndarray  # (N, H) bool, True past the episode's end
    weights: np.ndarray  # (N, E) float32 routing weights (E = 0 without the camera MoE)
    labels: np.ndarray  # (N, E) float32 0/1 camera labels, NaN where the data has none
    episode: np.ndarray  # (N,) int64
    frame: np.ndarray  # (N,) int64 frame index within the episode
    timestamp: np.ndarray  # (N,) float64 s since the episode start
    latency_ms: np.ndarray  # (N,) float64 wall time of Policy.infer
    stage_ms: dict[str, np.ndarray]  # stage -> (N,) float64, from the policy's timing

    def save(self, path: str | Path) -> None:
        """Write every array to one ``.npz`` (stages as ``stage_ms.<name>``)."""
        arrays = {f.name: getattr(self, f.name) for f in fields(self) if f.name != 'stage_ms'}
        arrays.update({f'stage_ms.{k}': v for k, v in self.stage_ms.items()})
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> EvalRecord:
        with np.load(path) as data:
            plain = {k: data[k] for k in data.files if not k.startswith('stage_ms.')}
            stages = {k[len('stage_ms.'):]: data[k] for k in data.files
                      if k.startswith('stage_ms.')}
        return cls(**plain, stage_ms=stages)


def select_frames(lengths: Sequence[int], stride: int = 1, max_frames: int = 0
                  ) -> list[tuple[int, int]]:
    """The (episode, frame) pairs to evaluate: every ``stride``-th frame of each episode
    (starting at frame 0), then, if more than ``max_frames`` > 0 remain, that many spread
    evenly over them (first and last kept)."""
    if stride < 1:
        raise ValueError(f'stride={stride!r}: expected >= 1')
    if max_frames < 0:
        raise ValueError(f'max_frames={max_frames!r}: expected >= 0 (0 = all)')
    pairs = [(e, t) for e, n in enumerate(lengths) for t in range(0, int(n), stride)]
    if 0 < max_frames < len(pairs):
        keep = np.unique(np.linspace(0, len(pairs) - 1, max_frames).round().astype(int))
        pairs = [pairs[i] for i in keep]
    return pairs


def _error_summary(abs_err: np.ndarray, joint_names: Sequence[str]) -> dict[str, Any]:
    """abs_err: (M, A) absolute errors of M rows -> per-joint MAE, their mean, M."""
    count = int(abs_err.shape[0])
    per_joint = abs_err.mean(axis=0) if count else np.full(abs_err.shape[1], np.nan)  # (A,)
    return {'per_joint': dict(zip(joint_names, per_joint.tolist())),
            'mean': float(per_joint.mean()), 'count': count}


def action_errors(predicted: np.ndarray, recorded: np.ndarray, is_pad: np.ndarray,
                  joint_names: Sequence[str], horizons: Sequence[int] = HORIZONS
                  ) -> dict[str, Any]:
    """MAE at each horizon k <= H (``h<k>``) and over the whole chunk (``chunk``).

    predicted, recorded: (N, H, A); is_pad: (N, H) bool. See the module docstring.
    """
    predicted = np.asarray(predicted, np.float64)
    recorded = np.asarray(recorded, np.float64)
    is_pad = np.asarray(is_pad, bool)
    if predicted.shape != recorded.shape or predicted.ndim != 3:
        raise ValueError(f'predicted {predicted.shape} and recorded {recorded.shape} must both '
                         'be (N, H, A)')
    if is_pad.shape != predicted.shape[:2]:
        raise ValueError(f'is_pad must be (N, H) = {predicted.shape[:2]}, got {is_pad.shape}')
    if len(joint_names) != predicted.shape[2]:
        raise ValueError(f'{len(joint_names)} joint names for {predicted.shape[2]} joints')
    abs_err = np.abs(predicted - recorded)  # (N, H, A)
    valid = ~is_pad  # (N, H)
    out = {}
    for k in horizons:
        if 1 <= k <= predicted.shape[1]:
            out[f'h{k}'] = _error_summary(abs_err[:, k - 1][valid[:, k - 1]], joint_names)
    out['chunk'] = _error_summary(abs_err[valid], joint_names)
    return out


def action_error_metrics(record: EvalRecord, joint_names: Sequence[str],
                         normalize: Callable[[np.ndarray], np.ndarray],
                         horizons: Sequence[int] = HORIZONS) -> dict[str, Any]:
    """``action_errors`` in robot units and after ``normalize`` (the policy's action
    normalisation, (..., A) -> (..., A))."""
    return {
        'robot_units': action_errors(record.predicted, record.recorded, record.is_pad,
                                     joint_names, horizons),
        'normalized': action_errors(normalize(record.predicted), normalize(record.recorded),
                                    record.is_pad, joint_names, horizons),
    }


def single_labels(labels: np.ndarray) -> np.ndarray:
    """labels: (N, E) 0/1 (NaN = unknown) -> (N,) index of the one active expert, or
    ``NO_LABEL`` (none active, or unknown) / ``MULTI_LABEL`` (several active)."""
    labels = np.asarray(labels, np.float64)
    known = ~np.isnan(labels).any(axis=1)  # (N,)
    active = np.nan_to_num(labels) > 0.5  # (N, E)
    n_active = active.sum(axis=1)  # (N,)
    out = np.full(labels.shape[0], NO_LABEL, np.int64)
    one = known & (n_active == 1)
    out[one] = active[one].argmax(axis=1)
    out[known & (n_active > 1)] = MULTI_LABEL
    return out


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den else None


def routing_metrics(weights: np.ndarray, labels: np.ndarray, experts: Sequence[str]
                    ) -> dict[str, Any]:
    """Routing against the camera labels; weights, labels: (N, E). See the module docstring.

    Without experts (a checkpoint without the camera MoE) only ``available: False`` is given.
    """
    weights = np.asarray(weights, np.float64)
    n_experts = len(experts)
    if n_experts == 0:
        return {'available': False, 'experts': []}
    if weights.ndim != 2 or weights.shape[1] != n_experts or labels.shape != weights.shape:
        raise ValueError(f'weights {weights.shape} and labels {np.shape(labels)} must be '
                         f'(N, {n_experts})')
    label = single_labels(labels)  # (N,)
    predicted = weights.argmax(axis=1)  # (N,)
    labelled = label >= 0  # (N,)
    confusion = np.zeros((n_experts, n_experts), np.int64)  # (label, predicted)
    np.add.at(confusion, (label[labelled], predicted[labelled]), 1)
    hits = np.diag(confusion)  # (E,)
    support, routed = confusion.sum(axis=1), confusion.sum(axis=0)  # (E,), (E,)
    mean_weight: dict[str, Any] = {}
    for i, name in enumerate(experts):
        rows = weights[label == i]  # (M, E)
        mean_weight[name] = dict(zip(experts, (rows.mean(axis=0) if len(rows)
                                               else np.full(n_experts, np.nan)).tolist()))
    mean_weight['all'] = dict(zip(experts, weights.mean(axis=0).tolist()
                                  if len(weights) else [math.nan] * n_experts))
    return {
        'available': True,
        'experts': list(experts),
        'frames': {'total': int(len(label)), 'labelled': int(labelled.sum()),
                   'no_label': int((label == NO_LABEL).sum()),
                   'multi_label': int((label == MULTI_LABEL).sum())},
        'accuracy': _ratio(hits.sum(), labelled.sum()),
        'confusion': {a: dict(zip(experts, confusion[i].tolist()))
                      for i, a in enumerate(experts)},
        'per_expert': {name: {'support': int(support[i]), 'predicted': int(routed[i]),
                              'recall': _ratio(hits[i], support[i]),
                              'precision': _ratio(hits[i], routed[i])}
                       for i, name in enumerate(experts)},
        'mean_weight': mean_weight,
    }


def latency_metrics(latency_ms: np.ndarray, stage_ms: dict[str, np.ndarray]) -> dict[str, Any]:
    """latency_ms: (N,) wall times -> p50/p90/p99/max/mean/count; stage_ms: stage -> (N,)."""
    x = np.asarray(latency_ms, np.float64)
    if x.size == 0:
        raise ValueError('latency_metrics needs at least one timing')
    out: dict[str, Any] = {f'p{p}': float(np.percentile(x, p)) for p in PERCENTILES}
    out.update(max=float(x.max()), mean=float(x.mean()), count=int(x.size),
               stages_mean={k: float(np.mean(v)) for k, v in stage_ms.items()})
    return out


def json_ready(value: Any) -> Any:
    """Plain JSON types: numpy scalars and arrays become Python ones, NaN/inf become None."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_ready(v) for v in (value.tolist() if isinstance(value, np.ndarray)
                                        else value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
