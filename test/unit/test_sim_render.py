"""Headless rendering of the three cameras: formats, ranges, and the thermal signal."""

import numpy as np
import pytest

from pi05_moe_bringup.sim.config import SimConfig
from pi05_moe_bringup.sim.robot import SimRobot


@pytest.fixture(scope='module')
def robot():
    with SimRobot(SimConfig(task='lift_hot_cube', seed=2)) as robot:
        yield robot


def test_images_have_the_driver_formats(robot):
    rgb, depth = robot.l515()
    assert rgb.shape == (224, 224, 3) and rgb.dtype == np.uint8
    assert depth.shape == (224, 224) and depth.dtype == np.uint16
    wrist = robot.wrist()
    assert wrist.shape == (224, 224, 3) and wrist.dtype == np.uint8
    thermal = robot.thermal()
    assert thermal.shape == (120, 160) and thermal.dtype == np.uint16
    assert rgb.std() > 10 and wrist.std() > 10  # a scene, not a blank frame


def test_depth_is_in_the_l515_range_and_sees_the_table(robot):
    _, depth = robot.l515()
    valid = depth[depth > 0]
    assert valid.size > 0.5 * depth.size
    assert valid.min() >= 250 and valid.max() <= 9000
    # the camera is ~0.75 m from the workspace centre
    assert 500 < depth[112, 112] < 1000


def test_thermal_shows_the_hot_cube_and_only_it(robot):
    thermal = robot.thermal().astype(np.float64) / 100.0  # kelvin
    hot_k = robot.scene.temperatures[robot.scene.ids.cube_geoms[robot.task.hot]]
    assert thermal.max() > hot_k - 5.0  # the hot cube is in view
    assert np.median(thermal) < 300.0  # the rest is near room temperature


def test_intrinsics_match_image_sizes(robot):
    l515, thermal = robot.intrinsics('l515'), robot.intrinsics('thermal')
    assert (l515.width, l515.height, thermal.width, thermal.height) == (224, 224, 160, 120)
    assert l515.fx == l515.fy > 0 and l515.cx == pytest.approx(111.5)


def test_physics_only_robot_refuses_to_render():
    robot = SimRobot(SimConfig(), render=False)
    with pytest.raises(RuntimeError, match='render=False'):
        robot.l515()
