"""Simulated robot core, physics only: config, scene, tasks, actions, schedule, thermal maths."""

import numpy as np
import pytest

from pi05_moe_bringup.sim.cameras import depth_to_mm, intrinsics_from_fovy
from pi05_moe_bringup.sim.config import SimConfig
from pi05_moe_bringup.sim.robot import JOINT_NAMES, SimRobot
from pi05_moe_bringup.sim.scene import CUBES, look_at_xyaxes
from pi05_moe_bringup.sim.schedule import RateSchedule
from pi05_moe_bringup.sim.tasks import (
    LAYOUTS,
    RED,
    TASKS,
    LiftHotCube,
    Task,
    make_task,
    register_task,
)
from pi05_moe_bringup.sim.thermal import ThermalConfig, thermal_image


@pytest.fixture(scope='module')
def robot():
    return SimRobot(SimConfig(), render=False)


def test_config_errors_quote_the_bad_value():
    with pytest.raises(ValueError, match="task='stack_cups'"):
        SimConfig(task='stack_cups')
    with pytest.raises(ValueError, match='thermal_hz=60.0'):
        SimConfig(thermal_hz=60.0)
    with pytest.raises(ValueError, match='real_time_factor=2.0'):
        SimConfig(real_time_factor=2.0)
    with pytest.raises(ValueError, match="layout='grid'"):
        SimConfig(layout='grid')


def test_control_period_must_be_a_multiple_of_the_physics_step():
    with pytest.raises(ValueError, match='0.003'):
        SimRobot(SimConfig(control_period_s=0.003), render=False)


def test_registry_has_both_families_and_rejects_duplicates():
    assert {'lift_red_cube', 'lift_hot_cube'} <= set(TASKS)
    with pytest.raises(ValueError, match='already registered'):
        register_task('lift_hot_cube', LiftHotCube)
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        make_task('nope')
    with pytest.raises(ValueError, match="unknown layout 'grid'"):
        make_task('lift_red_cube', 'grid')


@pytest.mark.parametrize('name,prompt,labels', [
    ('lift_red_cube', 'lift the red cube', {'l515': 1, 'thermal': 0}),
    ('lift_hot_cube', 'lift the hot cube', {'l515': 0, 'thermal': 1}),
])
def test_tasks_declare_prompt_and_camera_labels(robot, name, prompt, labels):
    task = robot.reset(task=name, seed=3)
    assert (task.prompt, task.camera_labels) == (prompt, labels)
    assert task.target in CUBES
    assert task.target == (task.red if name == 'lift_red_cube' else task.hot)


def test_reset_randomises_reproducibly_and_sets_colour_and_heat(robot):
    layouts = []
    for seed in (5, 5, 6):
        task = robot.reset(task='lift_red_cube', seed=seed)
        scene = robot.scene
        layouts.append(np.concatenate([scene.cube_position(c) for c in CUBES]))
        a, b = (scene.cube_position(c)[:2] for c in CUBES)
        assert np.linalg.norm(a - b) >= task.layout.min_separation_m
        red_geom = scene.ids.cube_geoms[task.red]
        assert tuple(scene.model.geom_rgba[red_geom]) == pytest.approx(RED)
        other = next(c for c in CUBES if c != task.red)
        assert tuple(scene.model.geom_rgba[scene.ids.cube_geoms[other]]) != pytest.approx(RED)
        temps = {c: scene.temperatures[scene.ids.cube_geoms[c]] for c in CUBES}
        assert temps[task.hot] > 318.0 and temps[other if task.hot != other else task.red] < 297
    np.testing.assert_array_equal(layouts[0], layouts[1])
    assert not np.array_equal(layouts[0], layouts[2])


def test_slots_layout_jitters_around_two_places_and_the_target_takes_either():
    """'slots': each cube within the jitter of its slot, yaw within the bound; over seeds the
    target (red or hot) is in either slot, so the prompt's camera still decides where to go."""
    layout = LAYOUTS['slots']
    robot = SimRobot(SimConfig(layout='slots'), render=False)
    target_slots = {name: set() for name in ('lift_red_cube', 'lift_hot_cube')}
    for name, slots in target_slots.items():
        for seed in range(30):
            task = robot.reset(task=name, seed=seed)
            assert task.layout is layout
            for k, cube in enumerate(CUBES):
                offset = robot.scene.cube_position(cube)[:2] - np.asarray(layout.slots[k])
                assert np.all(np.abs(offset) <= layout.slot_jitter_m + 1e-9), (seed, offset)
                assert abs(robot.scene.cube_yaw(cube)) <= layout.max_yaw_rad + 1e-6
            slots.add(CUBES.index(task.target))
    assert target_slots == {'lift_red_cube': {0, 1}, 'lift_hot_cube': {0, 1}}
    wide = SimRobot(SimConfig(layout='wide'), render=False).reset(seed=3)
    assert wide.layout is LAYOUTS['wide'] and not wide.layout.slots


def test_hot_cube_is_independent_of_colour(robot):
    """Over many seeds the hot cube is the red one about half the time: RGB cannot tell."""
    tasks = (robot.reset(task='lift_hot_cube', seed=s) for s in range(200))
    same = [task.hot == task.red for task in tasks]
    assert 0.35 < np.mean(same) < 0.65


def test_actions_hold_targets_and_joint_state_uses_action_units(robot):
    robot.reset(task='lift_red_cube', seed=0)
    target = np.array([0.2, 0.3, 0.1, 0.0, 1.2, -0.3, 0.5])
    robot.set_action(target)
    for _ in range(50):  # 1 s
        robot.step()
    state = robot.joint_state()
    assert state.names == JOINT_NAMES and len(JOINT_NAMES) == 7
    np.testing.assert_allclose(state.position, target, atol=0.02)
    assert np.abs(state.velocity).max() < 0.05
    assert robot.time == pytest.approx(1.0)


def test_clock_is_monotonic_across_resets(robot):
    robot.reset(seed=1)
    before = robot.clock
    robot.step()
    robot.reset(seed=2)
    assert robot.time == 0.0 and robot.clock == pytest.approx(before + 0.02)


def test_bad_actions_are_rejected_and_limits_clipped(robot):
    with pytest.raises(ValueError, match='7 finite numbers'):
        robot.set_action(np.zeros(6))
    with pytest.raises(ValueError, match='finite'):
        robot.set_action(np.full(7, np.nan))
    robot.set_action(np.array([10.0, 0, 0, 0, 0, 0, 5.0]))
    ctrl = robot.scene.data.ctrl
    assert ctrl[robot.scene.ids.arm_act[0]] == pytest.approx(3.1)
    assert ctrl[robot.scene.ids.finger_act] == pytest.approx([0.045, 0.045])


def test_nothing_succeeds_by_itself(robot):
    task: Task = robot.reset(seed=4)
    robot.set_action(robot.joint_state().position)
    for _ in range(25):
        robot.step()
    assert not robot.success() and not task.lifted(robot.scene)


def test_rate_schedule_averages_rates_that_do_not_divide_the_tick():
    for hz, expected in ((30.0, 30), (9.0, 9), (50.0, 50)):
        schedule = RateSchedule(hz)
        fired = sum(schedule.due(k * 0.02) for k in range(50))  # one second at 50 Hz
        assert fired == expected
    late = RateSchedule(10.0)
    assert late.due(0.0) and late.due(5.0) and not late.due(5.05)  # no burst after a stall


def test_intrinsics_follow_the_vertical_fov():
    k = intrinsics_from_fovy(90.0, 320, 240)
    assert (k.fx, k.fy, k.cx, k.cy) == pytest.approx((120.0, 120.0, 159.5, 119.5))


def test_depth_is_millimetres_clipped_to_the_l515_range():
    depth_m = np.array([[0.1, 0.25, 1.2345], [9.0, 9.5, 83.0]], dtype=np.float32)
    mm = depth_to_mm(depth_m)
    assert mm.dtype == np.uint16
    np.testing.assert_array_equal(mm, [[0, 250, 1234], [9000, 0, 0]])


def test_thermal_maps_geoms_to_centikelvin_with_noise_and_blur():
    ids = np.full((12, 16), -1, np.int32)  # (H, W)
    ids[4:8, 6:10] = 1
    temps = np.array([295.15, 333.15])
    rng = np.random.default_rng(0)
    sharp = thermal_image(ids, temps, rng, ThermalConfig(noise_k=0.0, blur_sigma_px=0.0))
    assert sharp.dtype == np.uint16 and sharp[5, 7] == 33315 and sharp[0, 0] == 29315
    noisy = thermal_image(ids, temps, rng, ThermalConfig(noise_k=0.05, blur_sigma_px=1.0))
    assert 0 < np.abs(noisy[:2].astype(int) - 29315).max() < 50
    assert 29315 < noisy[4, 6] < 33315  # the edge is blurred
    with pytest.raises(ValueError, match='noise_k'):
        ThermalConfig(noise_k=-1.0)


def test_look_at_points_the_camera_minus_z_at_the_target():
    xyaxes = look_at_xyaxes((1.0, 0.0, 1.0), (0.0, 0.0, 0.0), (0.0, 0.0, 1.0))
    x, y = xyaxes[:3], xyaxes[3:]
    forward = -np.cross(x, y)
    np.testing.assert_allclose(forward, np.array([-1.0, 0.0, -1.0]) / np.sqrt(2), atol=1e-9)
    np.testing.assert_allclose(x, [0.0, 1.0, 0.0], atol=1e-9)
