"""The closed loop's execution path (chunks -> ensembler -> safety filter -> sim) can succeed.

The scripted IK expert, wrapped as a policy, drives the simulated arm through exactly the
executor configuration of sim.yaml. If it lifts the cube here, a learned policy that fails in
`pi05-moe sim-eval` fails on its own account, not the harness's. Physics only: seconds.
"""

from dataclasses import replace
from pathlib import Path

import pytest

from pi05_moe_bringup.sim.robot import SimRobot
from pi05_moe_bringup.sim_tools.closed_loop import ClosedLoop, LoopConfig, ScriptedPolicy
from pi05_moe_bringup.sim_tools.evaluate import graph_configs

SIM_YAML = Path(__file__).resolve().parents[2] / 'pi05_moe_bringup' / 'config' / 'sim.yaml'


@pytest.fixture(scope='module')
def sim():
    sim_cfg, executor_cfg = graph_configs(str(SIM_YAML))
    robot = SimRobot(sim_cfg, render=False)
    yield robot, executor_cfg
    robot.close()


@pytest.mark.parametrize('task', ['lift_red_cube', 'lift_hot_cube'])
@pytest.mark.parametrize('mode', ['ensemble', 'latest'])
def test_scripted_expert_succeeds_through_the_executor_core(sim, task, mode):
    robot, executor_cfg = sim
    executor_cfg = replace(executor_cfg, mode=mode)
    loop = ClosedLoop(robot, ScriptedPolicy(robot), executor_cfg, LoopConfig(max_steps=300))
    for seed in (1000, 1001, 1002):
        result = loop.run_episode(task, seed)
        assert result.success, f'{task} seed {seed}: {result}'
        assert result.steps < 300  # stopped at the first successful step
        assert result.task == task and result.seed == seed
        assert result.safety['executed'] == result.steps  # every tick sent a fresh command
        assert result.safety['hold_stale'] == result.safety['hold_no_chunk'] == 0
        assert len(result.inferences) == -(-result.steps // 10)  # one per replan_steps
        assert result.closest_m < 0.01  # the grasp brought the fingertips onto the cube


def test_rows_that_pass_in_flight_are_skipped_and_the_expert_still_succeeds(sim):
    robot, executor_cfg = sim
    cfg = LoopConfig(replan_steps=5, latency_s=0.1, max_steps=300)
    result = ClosedLoop(robot, ScriptedPolicy(robot), executor_cfg, cfg).run_episode(
        'lift_hot_cube', 1003)
    assert result.success
    # the first chunk lands after 0.1 s: the arm holds for those 5 ticks
    assert result.safety['hold_no_chunk'] == 5
    assert all(i.latency_s == 0.1 for i in result.inferences)
    # an inference cannot start while the previous chunk is in flight: every 5 steps here
    starts = [round(i.t / 0.02) for i in result.inferences]
    assert starts[:3] == [0, 5, 10]


def test_chunks_older_than_the_stale_timeout_never_move_the_arm(sim):
    robot, executor_cfg = sim
    late = executor_cfg.stale_timeout + 0.1
    cfg = LoopConfig(latency_s=late, max_steps=100)
    result = ClosedLoop(robot, ScriptedPolicy(robot), executor_cfg, cfg).run_episode(
        'lift_red_cube', 1000)
    assert not result.success
    assert result.safety['hold_stale'] > 0 and result.safety['executed'] == 0
    assert result.arm_travel_rad < 0.01  # held at the start position


def test_mismatched_rates_and_joints_are_refused(sim):
    robot, executor_cfg = sim
    expert = ScriptedPolicy(robot)
    with pytest.raises(ValueError, match='control_hz=25.0'):
        ClosedLoop(robot, expert, replace(executor_cfg, control_hz=25.0))
    expert.joint_names = ('a', 'b')
    with pytest.raises(ValueError, match="drives joints \\('a', 'b'\\)"):
        ClosedLoop(robot, expert, executor_cfg)
    with pytest.raises(ValueError, match='replan_steps=0'):
        LoopConfig(replan_steps=0)
