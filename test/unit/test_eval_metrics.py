"""Open-loop evaluation metrics on hand-made numbers (pure numpy, no torch, no ROS)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pi05_moe_training.evaluate.metrics import (
    MULTI_LABEL,
    NO_LABEL,
    EvalRecord,
    action_error_metrics,
    action_errors,
    json_ready,
    latency_metrics,
    routing_metrics,
    select_frames,
    single_labels,
)

JOINTS = ['shoulder', 'gripper']


def chunks() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two frames, horizon 3, two joints; frame 1's last row lies past the episode's end."""
    predicted = np.array([[[1, 0], [2, 0], [3, 0]],
                          [[0, 2], [0, 0], [9, 9]]], np.float32)  # (2, 3, 2)
    recorded = np.array([[[0, 0], [0, 1], [0, 0]],
                         [[0, 0], [0, 0], [0, 0]]], np.float32)  # (2, 3, 2)
    is_pad = np.array([[False, False, False], [False, False, True]])  # (2, 3)
    return predicted, recorded, is_pad


def test_action_errors_per_horizon_and_chunk_skip_padded_rows():
    errors = action_errors(*chunks(), JOINTS, horizons=(1, 3, 10))
    assert list(errors) == ['h1', 'h3', 'chunk']  # h10 > horizon 3: left out
    assert errors['h1'] == {'per_joint': {'shoulder': 0.5, 'gripper': 1.0}, 'mean': 0.75,
                            'count': 2}
    # Row 2 of frame 1 is padding (its error of 9 must not count): only frame 0 is left.
    assert errors['h3'] == {'per_joint': {'shoulder': 3.0, 'gripper': 0.0}, 'mean': 1.5,
                            'count': 1}
    chunk = errors['chunk']
    assert chunk['count'] == 5
    assert chunk['per_joint'] == pytest.approx({'shoulder': 6 / 5, 'gripper': 3 / 5})
    assert chunk['mean'] == pytest.approx(0.9)


def test_action_errors_without_valid_rows_are_nan_and_json_null():
    predicted, recorded, is_pad = chunks()
    errors = action_errors(predicted, recorded, np.ones_like(is_pad), JOINTS, horizons=(1,))
    assert errors['h1']['count'] == 0 and math.isnan(errors['h1']['mean'])
    assert json_ready(errors)['chunk'] == {'per_joint': {'shoulder': None, 'gripper': None},
                                           'mean': None, 'count': 0}


def test_action_errors_reject_mismatched_shapes():
    predicted, recorded, is_pad = chunks()
    with pytest.raises(ValueError, match='must both be'):
        action_errors(predicted, recorded[:, :2], is_pad, JOINTS)
    with pytest.raises(ValueError, match='is_pad must be'):
        action_errors(predicted, recorded, is_pad[:, :2], JOINTS)
    with pytest.raises(ValueError, match='1 joint names for 2 joints'):
        action_errors(predicted, recorded, is_pad, JOINTS[:1])


def test_normalised_errors_use_the_given_normalisation():
    predicted, recorded, is_pad = chunks()
    record = EvalRecord(predicted, recorded, is_pad, np.zeros((2, 0)), np.zeros((2, 0)),
                        np.zeros(2, np.int64), np.arange(2), np.zeros(2), np.ones(2), {})
    scale = np.array([2.0, 0.5], np.float32)  # a per-joint (q99 - q01) / 2 of 0.5 and 2
    errors = action_error_metrics(record, JOINTS, lambda x: x * scale - 1.0, horizons=(1,))
    assert errors['robot_units']['h1']['per_joint'] == {'shoulder': 0.5, 'gripper': 1.0}
    assert errors['normalized']['h1']['per_joint'] == {'shoulder': 1.0, 'gripper': 0.5}


def test_single_labels():
    labels = np.array([[1, 0], [0, 1], [0, 0], [1, 1], [np.nan, 1]], np.float32)
    assert single_labels(labels).tolist() == [0, 1, NO_LABEL, MULTI_LABEL, NO_LABEL]


def test_routing_accuracy_confusion_and_mean_weights():
    experts = ['l515', 'thermal']
    weights = np.array([[0.9, 0.1],   # label l515, routed l515
                        [0.6, 0.4],   # label l515, routed l515
                        [0.3, 0.7],   # label l515, routed thermal
                        [0.2, 0.8],   # label thermal, routed thermal
                        [0.7, 0.3],   # no label
                        [0.4, 0.6]])  # both labelled
    labels = np.array([[1, 0], [1, 0], [1, 0], [0, 1], [0, 0], [1, 1]], np.float32)
    r = routing_metrics(weights, labels, experts)
    assert r['available'] and r['experts'] == experts
    assert r['frames'] == {'total': 6, 'labelled': 4, 'no_label': 1, 'multi_label': 1}
    assert r['accuracy'] == 0.75
    assert r['confusion'] == {'l515': {'l515': 2, 'thermal': 1},
                              'thermal': {'l515': 0, 'thermal': 1}}
    assert r['per_expert']['l515'] == {'support': 3, 'predicted': 2,
                                       'recall': pytest.approx(2 / 3), 'precision': 1.0}
    assert r['per_expert']['thermal'] == {'support': 1, 'predicted': 2, 'recall': 1.0,
                                          'precision': 0.5}
    assert r['mean_weight']['l515'] == pytest.approx({'l515': 0.6, 'thermal': 0.4})
    assert r['mean_weight']['thermal'] == pytest.approx({'l515': 0.2, 'thermal': 0.8})
    assert r['mean_weight']['all']['l515'] == pytest.approx(3.1 / 6)


def test_routing_without_labelled_frames_or_experts():
    r = routing_metrics(np.array([[0.5, 0.5]]), np.array([[np.nan, np.nan]]), ['a', 'b'])
    assert r['frames']['no_label'] == 1 and r['accuracy'] is None
    assert r['per_expert']['a']['recall'] is None
    assert json_ready(r)['mean_weight']['a'] == {'a': None, 'b': None}
    assert routing_metrics(np.zeros((3, 0)), np.zeros((3, 0)), []) == {'available': False,
                                                                        'experts': []}
    with pytest.raises(ValueError, match='must be'):
        routing_metrics(np.zeros((3, 2)), np.zeros((3, 3)), ['a', 'b'])


def test_latency_percentiles_and_stage_means():
    ms = np.arange(100, 0, -1, dtype=np.float64)  # 100 .. 1, order must not matter
    lat = latency_metrics(ms, {'denoise': np.array([2.0, 4.0]), 'total': np.array([1.0])})
    assert lat['p50'] == pytest.approx(50.5)
    assert lat['p90'] == pytest.approx(90.1)
    assert lat['p99'] == pytest.approx(99.01)
    assert (lat['max'], lat['mean'], lat['count']) == (100.0, 50.5, 100)
    assert lat['stages_mean'] == {'denoise': 3.0, 'total': 1.0}
    with pytest.raises(ValueError):
        latency_metrics(np.array([]), {})


def test_select_frames_stride_and_even_spread():
    assert select_frames([5, 3], stride=2) == [(0, 0), (0, 2), (0, 4), (1, 0), (1, 2)]
    assert select_frames([5, 3], stride=2, max_frames=3) == [(0, 0), (0, 4), (1, 2)]
    assert select_frames([5, 3], stride=2, max_frames=9) == select_frames([5, 3], stride=2)
    assert len(select_frames([1000], max_frames=7)) == 7
    with pytest.raises(ValueError, match='stride'):
        select_frames([5], stride=0)
    with pytest.raises(ValueError, match='max_frames'):
        select_frames([5], max_frames=-1)


def test_json_ready_gives_strict_json():
    value = {'a': np.float32(1.5), 'b': np.array([1.0, np.nan]), 'c': (np.int64(3),),
             'd': float('inf'), 1: 'x'}
    plain = json_ready(value)
    assert plain == {'a': 1.5, 'b': [1.0, None], 'c': [3], 'd': None, '1': 'x'}
    assert json.loads(json.dumps(plain, allow_nan=False)) == plain


def test_eval_record_round_trips_through_npz(tmp_path):
    predicted, recorded, is_pad = chunks()
    record = EvalRecord(predicted, recorded, is_pad, np.full((2, 2), 0.5, np.float32),
                        np.array([[1, 0], [np.nan, 1]], np.float32), np.array([0, 1]),
                        np.array([4, 0]), np.array([0.08, 0.0]), np.array([12.5, 13.0]),
                        {'denoise': np.array([9.0, 9.5])})
    record.save(tmp_path / 'p.npz')
    back = EvalRecord.load(tmp_path / 'p.npz')
    for name in ('predicted', 'recorded', 'is_pad', 'weights', 'labels', 'episode', 'frame',
                 'timestamp', 'latency_ms'):
        np.testing.assert_array_equal(getattr(back, name), getattr(record, name))
    assert list(back.stage_ms) == ['denoise']
    np.testing.assert_array_equal(back.stage_ms['denoise'], [9.0, 9.5])
