"""Executor command messages (as plain sequences) -> sim actions."""

import numpy as np
import pytest

from pi05_moe_bringup.sim.commands import action_from_array, action_from_trajectory

NAMES = ('a', 'b', 'gripper')


def test_array_commands_are_in_joint_order():
    np.testing.assert_array_equal(action_from_array([0.1, 0.2, 1.0], NAMES), [0.1, 0.2, 1.0])
    with pytest.raises(ValueError, match='expected 3 values'):
        action_from_array([0.1, 0.2], NAMES)
    with pytest.raises(ValueError, match='non-finite'):
        action_from_array([0.1, float('inf'), 1.0], NAMES)


def test_trajectories_are_reordered_and_follow_their_first_point():
    action = action_from_trajectory(['gripper', 'b', 'a', 'extra'],
                                    [[1.0, 0.2, 0.1, 9.0], [0.0, 0.0, 0.0, 0.0]], NAMES)
    np.testing.assert_array_equal(action, [0.1, 0.2, 1.0])
    with pytest.raises(ValueError, match='no points'):
        action_from_trajectory(list(NAMES), [], NAMES)
    with pytest.raises(ValueError, match=r"lacks joints \['gripper'\]"):
        action_from_trajectory(['a', 'b'], [[0.0, 0.0]], NAMES)
    with pytest.raises(ValueError, match=r"non-finite positions for \['b'\]"):
        action_from_trajectory(list(NAMES), [[0.0, float('nan'), 0.0]], NAMES)
