"""The closed loop's execution path (chunks -> ensembler -> safety filter -> sim) can succeed.

The scripted IK expert, wrapped as a policy, drives the simulated arm through exactly the
executor configuration of sim.yaml. If it lifts the cube here, a learned policy that fails in
`pi05-moe sim-eval` fails on its own account, not the harness's. Physics only: seconds.
"""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pi05_moe_bringup.sim.robot import JOINT_NAMES, SimRobot
from pi05_moe_bringup.sim_tools.closed_loop import ClosedLoop, LoopConfig, ScriptedPolicy
from pi05_moe_bringup.sim_tools.evaluate import graph_configs
from pi05_moe_policy.core.rtc import RtcConfig

SIM_YAML = Path(__file__).resolve().parents[2] / 'pi05_moe_bringup' / 'config' / 'sim.yaml'


@pytest.fixture(scope='module')
def sim():
    graph = graph_configs(str(SIM_YAML))
    sim_cfg, executor_cfg = graph.sim, graph.executor
    robot = SimRobot(sim_cfg, render=False)
    yield robot, executor_cfg
    robot.close()


@pytest.mark.parametrize('task', ['lift_red_cube', 'lift_hot_cube'])
@pytest.mark.parametrize('mode', ['ensemble', 'latest'])
def test_scripted_expert_succeeds_through_the_executor_core(sim, task, mode):
    robot, executor_cfg = sim
    executor_cfg = replace(executor_cfg, mode=mode)
    loop = ClosedLoop(robot, ScriptedPolicy(robot), executor_cfg,
                      LoopConfig(max_steps=300, latency_s=0.0))
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
    # a limit shorter than a chunk's 1 s span, so late chunks still cover now when they arrive
    # (sim.yaml's own limit is longer than the span: such chunks would never arrive at all)
    executor_cfg = replace(executor_cfg, stale_timeout=0.5)
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


# ---------------------------------------------------------------------------- the latency model

STEP = 1e-3  # rad: chunk k commands waist = start + k * STEP (far below the velocity limit)
ROW = 1e-4  # rad: row i of every chunk commands shoulder = start + i * ROW


class WallClock:
    """A stand-in wall clock for the measured mode: it moves only when the policy thinks."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class NumberedChunks:
    """A scripted policy with the ``infer`` API: chunk k (from 1) holds the start position with
    the waist moved by k * STEP and the shoulder by i * ROW in row i, so each command names the
    chunk and the row it came from. Each inference takes ``think_s`` on ``clock``."""

    camera_names: tuple[str, ...] = ()
    thermal_cameras: tuple[str, ...] = ()
    joint_names = JOINT_NAMES
    robot_state_dim = len(JOINT_NAMES)
    action_horizon = 50

    def __init__(self, control_period_s: float, clock: WallClock | None = None,
                 think_s: float = 0.0) -> None:
        self.control_period_s, self.clock, self.think_s = control_period_s, clock, think_s
        self.reset()

    def reset(self) -> None:
        self.k, self.start, self.rtc_calls = 0, None, []

    def infer(self, obs, **rtc):
        self.rtc_calls = [*getattr(self, 'rtc_calls', []), rtc]  # RTC arguments, per call
        if self.start is None:
            self.start = obs['state'].copy()  # (D,)
        self.k += 1
        if self.clock is not None:
            self.clock.t += self.think_s
        actions = np.tile(self.start, (50, 1))  # (H, D)
        actions[:, 0] += self.k * STEP
        actions[:, 1] += np.arange(50) * ROW
        return {'actions': actions.astype(np.float32), 'routing': {}, 'timing': {}}


def first_steps(result, policy, chunks=4):
    """The control step at which a command from chunk k first appears, k = 1..chunks."""
    waist = np.array([c[0] for c in result.commands])  # (T,)
    k = np.rint((waist - policy.start[0]) / STEP).astype(int)  # (T,) chunk behind each command
    return [int(np.argmax(k == n)) if (k == n).any() else None for n in range(1, chunks + 1)]


def row_at(result, policy, step):
    """The chunk row behind the command of control step ``step``."""
    return int(np.rint((result.commands[step][1] - policy.start[1]) / ROW))


def run_numbered(sim, config, clock=None, think_s=0.0):
    robot, executor_cfg = sim
    policy = NumberedChunks(robot.config.control_period_s, clock, think_s)
    kwargs = {'clock': clock} if clock is not None else {}
    loop = ClosedLoop(robot, policy, replace(executor_cfg, mode='latest'), config, **kwargs)
    return loop.run_episode('lift_red_cube', 1000), policy


def test_a_fixed_latency_shifts_when_each_chunk_takes_effect_by_exactly_that_much(sim):
    # 50 Hz control (0.02 s), a chunk asked every 10 steps: 0.1 s is exactly 5 steps
    assert sim[0].config.control_period_s == pytest.approx(0.02)
    prompt, delayed = (run_numbered(sim, LoopConfig(max_steps=60, latency_s=lat))
                       for lat in (0.0, 0.1))
    assert first_steps(*prompt) == [0, 10, 20, 30]
    assert first_steps(*delayed) == [5, 15, 25, 35]
    # while chunk 1 is in flight the executor holds (nothing covers now) and the world runs on
    result = delayed[0]
    assert result.safety['hold_no_chunk'] == 5 and result.steps == 60
    assert [round(i.t / 0.02) for i in result.inferences][:4] == [0, 10, 20, 30]
    assert all(i.latency_s == 0.1 for i in result.inferences)
    assert result.held_share == pytest.approx(5 / 60)
    assert prompt[0].held_share == 0.0


def test_a_late_chunk_runs_from_its_current_row_and_the_old_chunk_runs_on_meanwhile(sim):
    # 0.2 s = 10 steps: chunk 2 (observed at step 10, when chunk 1 landed) lands at step 20;
    # chunk 1, which covers 50 rows, keeps commanding while chunk 2 is in flight
    result, policy = run_numbered(sim, LoopConfig(max_steps=80, replan_steps=5, latency_s=0.2))
    assert first_steps(result, policy, 3) == [10, 20, 30]
    assert [row_at(result, policy, s) for s in (10, 19, 20, 30)] == [10, 19, 10, 10]
    assert result.safety['hold_no_chunk'] == 10 and result.safety['hold_stale'] == 0
    assert result.safety['executed'] == 70


def test_the_measured_mode_uses_the_measured_inference_time(sim):
    clock = WallClock()  # every inference takes 0.1 s of (stand-in) wall clock
    result, policy = run_numbered(sim, LoopConfig(max_steps=60), clock, think_s=0.1)
    assert LoopConfig().measured and 'measured' in LoopConfig().describe()
    assert first_steps(result, policy) == [5, 15, 25, 35]  # as a fixed 0.1 s
    assert all(i.wall_ms == pytest.approx(100.0) for i in result.inferences)
    assert all(i.latency_s == pytest.approx(0.1) for i in result.inferences)
    # a world declared to run at twice real time moves 0.2 s while the policy thinks 0.1 s
    cfg = LoopConfig(max_steps=60, real_time_factor=2.0)
    result, policy = run_numbered(sim, cfg, WallClock(), think_s=0.1)
    assert first_steps(result, policy, 3) == [10, 20, 30]
    assert all(i.latency_s == pytest.approx(0.2) for i in result.inferences)


def test_the_latency_config_is_validated():
    with pytest.raises(ValueError, match='latency_s=-0.1'):
        LoopConfig(latency_s=-0.1)
    with pytest.raises(ValueError, match='real_time_factor=0'):
        LoopConfig(real_time_factor=0)
    assert LoopConfig(latency_s=0.4).describe() == 'fixed 0.4 s'


def test_rtc_gives_each_inference_the_previous_chunks_rows_from_its_observation_on(sim):
    """policy_node rtc: true in sim-eval: the same RtcPlanner, on sim time. Latency 0.1 s
    (5 steps), a chunk asked every 10 steps: inference k observes at step 10 (k - 1), chunk
    k - 1 was observed 10 steps earlier, so the committed rows start at its row 10, and the
    delay is the measured 0.1 s = 5 control periods."""
    robot, executor_cfg = sim
    policy = NumberedChunks(robot.config.control_period_s)
    loop = ClosedLoop(robot, policy, replace(executor_cfg, mode='rtc'),
                      LoopConfig(max_steps=40, latency_s=0.1), rtc=RtcConfig(rtc=True))
    loop.run_episode('lift_red_cube', 1000)
    calls = policy.rtc_calls
    assert len(calls) == 4 and calls[0] == {}  # nothing committed before the first chunk
    for k, call in enumerate(calls[1:], start=2):
        assert call['delay_steps'] == 5
        assert call['prefix_start_s'] == pytest.approx(0.0, abs=1e-9)
        prefix = call['prefix']  # (40, D): rows 10..49 of chunk k - 1
        assert prefix.shape == (40, len(JOINT_NAMES))
        assert prefix[0, 0] == pytest.approx(policy.start[0] + (k - 1) * STEP, abs=1e-6)
        assert prefix[0, 1] == pytest.approx(policy.start[1] + 10 * ROW, abs=1e-6)
    # off (the default): the policy is called without RTC arguments
    plain = NumberedChunks(robot.config.control_period_s)
    ClosedLoop(robot, plain, executor_cfg, LoopConfig(max_steps=40, latency_s=0.1),
               rtc=RtcConfig(rtc=False)).run_episode('lift_red_cube', 1000)
    assert plain.rtc_calls and all(call == {} for call in plain.rtc_calls)


def test_rtc_gives_no_prefix_while_the_executor_holds(sim):
    """As policy_node reads executor_node's diagnostics: while the executor holds (here the
    stale watchdog: a 0.15 s limit, chunks observed every 0.2 s arrive 0.1 s old), its last
    chunk's rows are not what the arm does, so the next inference gets no prefix. With a limit
    the chunks never reach, every inference after the first gets one."""
    robot, executor_cfg = sim
    calls = {}
    for stale in (0.15, 0.5):
        policy = NumberedChunks(robot.config.control_period_s)
        cfg = replace(executor_cfg, mode='rtc', stale_timeout=stale)
        result = ClosedLoop(robot, policy, cfg, LoopConfig(max_steps=40, latency_s=0.1),
                            rtc=RtcConfig(rtc=True)).run_episode('lift_red_cube', 1000)
        calls[stale] = (policy.rtc_calls, result.safety['hold_stale'])
    held, holds = calls[0.15]
    assert holds > 0 and len(held) == 4 and all(call == {} for call in held)
    running, holds = calls[0.5]
    assert holds == 0 and running[0] == {} and all('prefix' in call for call in running[1:])


def test_sim_eval_reads_the_graphs_policy_settings_and_set_overrides():
    graph = graph_configs(str(SIM_YAML), ['policy_node.num_steps=3', 'executor_node.mode=rtc',
                                          'policy_node.rtc=true'])
    assert graph.inference['num_steps'] == 3 and graph.inference['rtc'] is True
    assert graph.executor.mode == 'rtc'
    for bad, match in [('policy_node.checkpoint=x', 'uses only'),
                       ('nobody.x=1', 'NODE.PARAM=VALUE'), ('executor_node.mode', 'NODE.PARAM'),
                       ('executor_node.mode=sideways', 'sideways')]:
        with pytest.raises(ValueError, match=match):
            graph_configs(str(SIM_YAML), [bad])
