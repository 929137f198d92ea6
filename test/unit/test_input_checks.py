"""Physically impossible inputs (issue #17 item 6): joint limits, thermal range, frame size."""

import re

import numpy as np
import pytest
from sensor_msgs.msg import Image

from pi05_moe_policy.core.image_codec import ImageCodecError, numpy_to_image
from pi05_moe_policy.core.input_checks import (
    InputCheckConfig,
    JointStateCheck,
    check_frame,
    check_thermal,
)
from pi05_moe_policy.core.observation import RGB, THERMAL

NAMES = ['waist', 'shoulder', 'gripper']


def test_joints_inside_limits_plus_margin_pass_in_joint_order():
    cfg = InputCheckConfig(joint_lower_limits=[-1.0, -2.0, 0.0],
                           joint_upper_limits=[1.0, 2.0, 0.04], joint_limit_margin=0.1)
    check = JointStateCheck(cfg, NAMES)
    v = check(['gripper', 'waist', 'shoulder', 'extra'], [0.1, 1.05, -2.09, 7.0])
    assert v.problem is None and v.extra == ('extra',)
    np.testing.assert_allclose(v.positions, [1.05, -2.09, 0.1], rtol=1e-6)
    assert v.positions.dtype == np.float32


@pytest.mark.parametrize(('positions', 'problem', 'text'), [
    ([1.2, 0.0, 0.0], 'limits', r'waist=1\.2 not in \[-1, 1\]'),
    ([0.0, 0.0, 1e30], 'limits', r'gripper=1e\+30'),
    ([0.0, float('nan'), 0.0], 'nan', r"NaN/inf positions for \['shoulder'\]"),
    ([0.0, float('-inf'), 0.0], 'nan', 'NaN/inf'),
])
def test_impossible_joint_positions_are_dropped_naming_the_joint(positions, problem, text):
    cfg = InputCheckConfig(joint_lower_limits=[-1.0, -2.0, 0.0],
                           joint_upper_limits=[1.0, 2.0, 0.04], joint_limit_margin=0.1)
    v = JointStateCheck(cfg, NAMES)(NAMES, positions)
    assert v.positions is None and v.problem == problem
    assert re.search(text, v.text), v.text


def test_without_limits_the_absolute_bound_applies():
    check = JointStateCheck(InputCheckConfig(max_abs_joint_position=20.0), NAMES)
    assert check(NAMES, [19.0, -20.05, 0.0]).positions is not None
    v = check(NAMES, [100.0, 0.0, 0.0])
    assert v.problem == 'limits' and 'waist=100' in v.text


def test_malformed_and_missing_joint_states():
    check = JointStateCheck(InputCheckConfig(), NAMES)
    assert check(NAMES, [0.0]).problem == 'malformed'
    assert check(['waist', 'waist', 'x'], [0.0] * 3).problem == 'malformed'
    v = check(['waist'], [0.0])
    assert v.problem == 'missing' and "['shoulder', 'gripper']" in v.text


def test_limits_of_the_wrong_length_fail_at_startup():
    cfg = InputCheckConfig(joint_lower_limits=[-1.0], joint_upper_limits=[1.0])
    with pytest.raises(ValueError, match=r'joint_lower_limits=\[-1\.0\] has 1 values for 3'):
        JointStateCheck(cfg, NAMES)


def test_thermal_frames_outside_the_plausible_range():
    cfg = InputCheckConfig(thermal_min_k=200.0, thermal_max_k=600.0,
                           thermal_max_bad_fraction=0.05)
    room = np.full((12, 16), 29315, np.uint16)  # 20 C
    assert check_thermal(room, cfg, '/thermal') is None
    dead = room.copy()
    dead[0, :5] = 0  # 5 dead pixels of 192: tolerated
    assert check_thermal(dead, cfg, '/thermal') is None
    problem = check_thermal(np.zeros((12, 16), np.uint16), cfg, '/thermal')
    assert problem.startswith('/thermal: thermal frame with 100% of pixels outside [200, 600] K')
    assert 'min 0.00 K' in problem
    assert check_thermal(np.full((12, 16), 65535, np.uint16), cfg, '/thermal')  # 655 K


def _image(array, encoding):
    return numpy_to_image(array, encoding, Image(), '/t')


def test_frames_are_bounded_in_size_and_thermal_frames_checked():
    cfg = InputCheckConfig(max_image_size=64)
    check_frame(_image(np.zeros((64, 64, 3), np.uint8), 'rgb8'), RGB, '/c', 16, cfg)
    with pytest.raises(ImageCodecError, match=r'/c: rgb8 image of 65x20 is larger than '
                       r'max_image_size 64'):
        check_frame(_image(np.zeros((20, 65, 3), np.uint8), 'rgb8'), RGB, '/c', 16, cfg)
    check_frame(_image(np.full((20, 20), 30315, np.uint16), 'mono16'), THERMAL, '/t', 16, cfg)
    with pytest.raises(ImageCodecError, match='/t: thermal frame with 100% of pixels'):
        check_frame(_image(np.zeros((20, 20), np.uint16), 'mono16'), THERMAL, '/t', 16, cfg)
