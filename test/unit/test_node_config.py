"""The nodes' configs (one dataclass per node, the core configs inside) and message helpers."""

from __future__ import annotations

import re

import numpy as np
import pytest
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from pi05_moe_policy.core.ensembler import EnsemblerConfig, TemporalEnsembler
from pi05_moe_policy.core.safety import SafetyConfig, SafetyFilter
from pi05_moe_policy.core.snapshot import SnapshotConfig
from pi05_moe_policy.nodes.config import ExecutorNodeConfig, PolicyNodeConfig
from pi05_moe_policy.nodes.msg_convert import (
    make_action_chunk,
    make_command,
    parse_action_chunk,
    sec_to_stamp,
    stamp_to_sec,
)
from pi05_moe_policy.params import from_flat, specs, to_flat


def test_node_configs_are_the_core_configs_plus_topics():
    cfg = ExecutorNodeConfig(mode='latest', max_velocity=[0.5], control_hz=100.0)
    assert isinstance(cfg, SafetyConfig) and isinstance(cfg, EnsemblerConfig)
    TemporalEnsembler(cfg)
    SafetyFilter(cfg, 7)
    assert isinstance(PolicyNodeConfig(), SnapshotConfig)
    names = {s.name for s in specs(ExecutorNodeConfig)}
    assert {'control_hz', 'mode', 'enabled', 'max_velocity', 'stale_timeout',
            'lower_limits'} <= names
    assert all(s.help for s in specs(ExecutorNodeConfig) + specs(PolicyNodeConfig))


def test_defaults_follow_the_design():
    ex, po = ExecutorNodeConfig(), PolicyNodeConfig()
    assert (ex.control_hz, ex.mode, ex.enabled) == (50.0, 'ensemble', False)
    assert ex.command_topic == '/arm_controller/commands'
    assert ExecutorNodeConfig(output='joint_trajectory', controller='c').command_topic == \
        '/c/joint_trajectory'
    assert ex.preview_topic == '/pi05_moe/command_preview'
    assert po.cameras == {'wrist': '/wrist/image_raw', 'l515': '/l515/color/image_raw',
                          'thermal': '/thermal/image_raw'}
    assert (po.action_chunk_topic, po.routing_topic) == ('/pi05_moe/action_chunk',
                                                          '/pi05_moe/routing')


def test_flat_parameters_round_trip():
    cfg = PolicyNodeConfig(checkpoint='preset:tiny', cameras={'wrist': '/w', 'l515': ''},
                           stream_max_age={'thermal': 0.6})
    assert from_flat(PolicyNodeConfig, to_flat(cfg)) == cfg


@pytest.mark.parametrize('cls, kwargs, field', [
    (ExecutorNodeConfig, dict(output='trajectory'), 'output'),
    (ExecutorNodeConfig, dict(controller='/arm'), 'controller'),
    (ExecutorNodeConfig, dict(control_hz=0.0), 'control_hz'),
    (ExecutorNodeConfig, dict(mode='mean'), 'mode'),
    (ExecutorNodeConfig, dict(stale_timeout=-1.0), 'stale_timeout'),
    (ExecutorNodeConfig, dict(preview_topic='preview'), 'preview_topic'),
    (PolicyNodeConfig, dict(cameras={'wrist': 'wrist/image'}), 'cameras'),
    (PolicyNodeConfig, dict(max_age=0.0), 'max_age'),
    (PolicyNodeConfig, dict(max_inference_hz=-1.0), 'max_inference_hz'),
    (PolicyNodeConfig, dict(joint_lower_limits=[-1.0], joint_upper_limits=[]),
     'joint_upper_limits'),
    (PolicyNodeConfig, dict(joint_lower_limits=[1.0], joint_upper_limits=[-1.0]),
     'joint_upper_limits'),
    (PolicyNodeConfig, dict(joint_limit_margin=-0.1), 'joint_limit_margin'),
    (PolicyNodeConfig, dict(thermal_max_k=100.0), 'thermal_max_k'),
    (PolicyNodeConfig, dict(thermal_max_bad_fraction=1.0), 'thermal_max_bad_fraction'),
    (PolicyNodeConfig, dict(max_image_size=8), 'max_image_size'),
])
def test_bad_values_are_quoted(cls, kwargs, field):
    with pytest.raises(ValueError, match=re.escape(f'{cls.__name__}.{field}={kwargs[field]!r}')):
        cls(**kwargs)


def test_stamps_round_trip():
    stamp = sec_to_stamp(12.25)
    assert (stamp.sec, stamp.nanosec) == (12, 250_000_000)
    assert stamp_to_sec(stamp) == 12.25
    # Float seconds at epoch scale keep ~0.24 us: ample for 50 Hz control.
    t = 1_700_000_123.456789
    assert abs(stamp_to_sec(sec_to_stamp(t)) - t) < 1e-6


def test_action_chunk_round_trip():
    actions = np.arange(12, dtype=np.float32).reshape(4, 3)  # (H, A)
    msg = make_action_chunk(sec_to_stamp(12.5), 7, ['a', 'b', 'c'], actions, 0.02, 33.0, 'lift',
                            {'l515': 0.25, 'thermal': 0.75})
    assert (msg.horizon, msg.action_dim, msg.chunk_id) == (4, 3, 7)
    assert list(msg.expert_names) == ['l515', 'thermal']
    stamp, period, got = parse_action_chunk(msg, '/chunk')
    assert (stamp, period) == (12.5, 0.02)
    np.testing.assert_array_equal(got, actions)
    msg.joint_names = ['a', 'b']
    with pytest.raises(ValueError, match='/chunk: chunk 7 is inconsistent'):
        parse_action_chunk(msg, '/chunk')


def test_command_messages():
    cmd = np.array([0.1, -0.2])
    arr = make_command('commands', ['j0', 'j1'], cmd, 0.02)
    assert isinstance(arr, Float64MultiArray) and list(arr.data) == [0.1, -0.2]
    traj = make_command('joint_trajectory', ['j0', 'j1'], cmd, 0.02)
    assert isinstance(traj, JointTrajectory) and list(traj.joint_names) == ['j0', 'j1']
    point = traj.points[0]
    assert list(point.positions) == [0.1, -0.2]
    assert (point.time_from_start.sec, point.time_from_start.nanosec) == (0, 20_000_000)
