"""The scripted IK expert lifts the right cube in >= 90% of 20 seeds, per prompt family and layout.

Physics only (no rendering): about a second per family.
"""

import numpy as np
import pytest

from pi05_moe_bringup.sim.config import SimConfig
from pi05_moe_bringup.sim.expert import ScriptedExpert, down_rotation
from pi05_moe_bringup.sim.ik import PinchIK
from pi05_moe_bringup.sim.robot import SimRobot

SEEDS = range(20)


def run_episode(robot: SimRobot, expert: ScriptedExpert, seed: int) -> bool:
    task = robot.reset(seed=seed)
    expert.reset(task.target)
    for _ in range(int(round(expert.duration / robot.config.control_period_s))):
        robot.set_action(expert.act(robot.time))
        robot.step()
    return robot.success()


@pytest.mark.parametrize('layout', ['wide', 'slots'])
@pytest.mark.parametrize('task', ['lift_red_cube', 'lift_hot_cube'])
def test_scripted_expert_success_rate(task, layout):
    robot = SimRobot(SimConfig(task=task, layout=layout), render=False)
    expert = ScriptedExpert(robot.scene)
    successes = [run_episode(robot, expert, seed) for seed in SEEDS]
    rate = float(np.mean(successes))
    print(f'{task} ({layout}): scripted expert success {rate:.0%} over {len(SEEDS)} seeds')
    assert rate >= 0.9, f'{task}: {rate:.0%}; failed seeds ' + str(
        [s for s, ok in zip(SEEDS, successes) if not ok])


def test_expert_lifts_the_target_not_the_other_cube():
    robot = SimRobot(SimConfig(task='lift_hot_cube'), render=False)
    expert = ScriptedExpert(robot.scene)
    assert run_episode(robot, expert, seed=7)
    other = next(c for c in robot.scene.ids.cube_bodies if c != robot.task.target)
    assert robot.scene.cube_position(other)[2] < 0.03


def test_ik_reaches_a_pose_in_the_workspace():
    robot = SimRobot(SimConfig(), render=False)
    ik = PinchIK(robot.scene)
    q0 = robot.joint_state().position[:6]
    goal, rot = np.array([0.42, -0.15, 0.05]), down_rotation(0.4)
    q = q0
    for _ in range(10):
        q = ik.solve(q, goal, rot)
    pos, got_rot = ik.pinch_pose(q)
    np.testing.assert_allclose(pos, goal, atol=2e-3)
    np.testing.assert_allclose(got_rot, rot, atol=2e-2)
    np.testing.assert_array_equal(robot.joint_state().position[:6], q0)  # sim untouched
