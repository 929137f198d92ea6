"""reorder_joints / resolve_joint_names: joint order, missing, extra and non-finite joints."""

from __future__ import annotations

import numpy as np
import pytest

from pi05_moe_policy.core.joint_state import reorder_joints, resolve_joint_names

ORDER = ['shoulder', 'elbow', 'wrist']


def test_reorders_by_joint_names_and_reports_extra_joints():
    match = reorder_joints(['wrist', 'finger', 'shoulder', 'elbow'], [3.0, 9.0, 1.0, 2.0], ORDER)
    assert match.ok
    np.testing.assert_array_equal(match.positions, [1.0, 2.0, 3.0])
    assert match.extra == ('finger',) and match.missing == ()


def test_missing_joints_are_named_and_give_no_positions():
    match = reorder_joints(['wrist', 'shoulder'], [3.0, 1.0], ORDER)
    assert not match.ok and match.positions is None
    assert match.missing == ('elbow',)


def test_non_finite_positions_are_named():
    match = reorder_joints(ORDER, [1.0, float('nan'), float('inf')], ORDER)
    assert not match.ok
    assert match.nonfinite == ('elbow', 'wrist')


@pytest.mark.parametrize('names, positions, problem', [
    (['a', 'b'], [1.0], '2 joint names but 1 positions'),
    (['a', 'a'], [1.0, 2.0], "named more than once: \\['a'\\]"),
])
def test_malformed_messages_raise(names, positions, problem):
    with pytest.raises(ValueError, match=problem):
        reorder_joints(names, positions, ['a'])


def test_resolve_prefers_the_parameter_then_the_checkpoint_then_generated_names():
    assert resolve_joint_names(['x', 'y'], ['a', 'b'], 2) == ['x', 'y']
    assert resolve_joint_names([], ('a', 'b'), 2) == ['a', 'b']
    assert resolve_joint_names([], None, 3) == ['joint_0', 'joint_1', 'joint_2']


@pytest.mark.parametrize('configured', [['x'], ['x', 'x'], ['x', '']])
def test_resolve_rejects_wrong_lists_quoting_them(configured):
    with pytest.raises(ValueError, match='joint_names=.*the joint_names parameter.*expected 2'):
        resolve_joint_names(configured, None, 2)
