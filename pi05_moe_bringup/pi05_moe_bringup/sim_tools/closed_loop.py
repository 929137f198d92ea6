"""Closed-loop episodes in the simulator: SimRobot + a policy + the executor's runtime core.

No ROS, no DDS: one process steps the simulated robot, asks the policy for action chunks and
turns them into commands with the very class ``executor_node`` runs
(:class:`~pi05_moe_policy.core.executor.ExecutorCore`, configured by an ``ExecutorNodeConfig``),
so the chunk checks, the watchdog and the limits are the node's own.

Timing model, all in simulated time:

- Every control step (``SimConfig.control_period_s``) is one executor tick: the ensembler's
  action for *now*, through the safety filter, becomes the sim's joint target for the next
  period, as ``executor_node`` -> ``/arm_controller/commands`` -> ``sim_node`` do.
- An inference starts at most every ``replan_steps`` steps (the node's ``max_inference_hz``) and
  never while the previous chunk is still in flight (the node has one worker). It sees the
  current joint positions and freshly rendered frames of each camera the policy uses, in the
  policy's own formats ((H, W, 3) uint8 RGB; thermal (H, W) uint16 centi-kelvin), and the chunk
  is stamped with that observation time.
- **The world does not wait for the policy.** Each chunk arrives a latency after its
  observation, and the simulated robot and the executor run on meanwhile: the executor keeps
  commanding from the chunks it already has (and holds when none covers now), exactly as in the
  live graph. The latency model (:class:`LoopConfig`) is either *measured*, the default: each
  inference's wall-clock time, times the ``real_time_factor`` the simulated world is declared to
  run at (sim seconds per wall second, as ``sim_node``'s parameter), or *fixed*: ``latency_s``
  of sim time for every chunk. Latency 0 is the old, optimistic figure: the world waits.
- A chunk is stamped with its observation time and placed at that stamp when it arrives, so
  the rows whose slots passed in flight are skipped by the ensembler, and it takes effect at the
  first control tick at or after observation time + latency, as a late chunk in the node does.

One difference from the node graph: ``sim_node`` renders each camera at its own rate (30, 30 and
9 Hz by default), so the node sees frames up to one camera period old; here every frame is
rendered at the observation time.

A "policy" is any object with ``infer(obs) -> {'actions': (H, D), 'routing': {expert: w}}``,
``reset()`` and the attributes ``camera_names``, ``thermal_cameras``, ``joint_names``,
``robot_state_dim``, ``action_horizon`` and ``control_period_s`` (with RTC, ``infer`` also
takes ``prefix``, ``prefix_start_s`` and ``delay_steps``): a :class:`pi05_moe_policy.Policy`, or
:class:`ScriptedPolicy` (the scripted IK expert behind the same interface).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from pi05_moe_bringup.sim.expert import ExpertConfig, ScriptedExpert
from pi05_moe_bringup.sim.robot import JOINT_NAMES, SimRobot
from pi05_moe_policy.core.executor import ChunkRejectedError, ExecutorCore
from pi05_moe_policy.core.rtc import RUNS_CHUNKS, RtcConfig, RtcPlanner
from pi05_moe_policy.core.safety import HOLD_NO_CHUNK
from pi05_moe_policy.nodes.config import ExecutorNodeConfig
from pi05_moe_policy.params import check

_EPS = 1e-9


@dataclass
class LoopConfig:
    """How often the policy is asked, how late its chunks land, and how long an episode lasts."""

    replan_steps: int = 10  # control steps between inference starts (10 x 0.02 s = 5 Hz)
    max_steps: int = 400  # control steps before an episode counts as failed (8 s)
    # Sim time from an observation to its chunk's arrival: None = measured (each inference's
    # wall-clock time x real_time_factor), a number = that fixed latency (s).
    latency_s: float | None = None
    real_time_factor: float = 1.0  # measured mode: sim seconds that pass per wall second

    def __post_init__(self) -> None:
        check(self.replan_steps >= 1, self, 'replan_steps', 'an int >= 1')
        check(self.max_steps >= 1, self, 'max_steps', 'an int >= 1')
        check(self.latency_s is None or (np.isfinite(self.latency_s) and self.latency_s >= 0),
              self, 'latency_s', 'seconds >= 0, or None (measured)')
        check(np.isfinite(self.real_time_factor) and self.real_time_factor > 0, self,
              'real_time_factor', 'a factor > 0')

    @property
    def measured(self) -> bool:
        return self.latency_s is None

    def latency(self, wall_s: float) -> float:
        """The sim time (s) a chunk whose inference took ``wall_s`` of wall clock is late."""
        return wall_s * self.real_time_factor if self.measured else self.latency_s

    def describe(self) -> str:
        """The latency model in words, for reports."""
        if self.measured:
            return ('measured (wall-clock inference time x real-time factor '
                    f'{self.real_time_factor:g})')
        return f'fixed {self.latency_s:g} s'


@dataclass(frozen=True)
class Inference:
    """One policy call of an episode."""

    t: float  # observation time (s of sim time since the episode started)
    routing: dict[str, float]  # expert camera -> weight ({} without a router)
    wall_ms: float  # wall-clock time of infer()
    latency_s: float  # simulated time until the chunk arrived


@dataclass
class EpisodeResult:
    """What happened in one closed-loop episode."""

    task: str
    prompt: str
    seed: int
    camera_labels: dict[str, int]  # expert camera -> 1 if the prompt needs it
    success: bool
    steps: int  # control steps run
    sim_time_s: float
    inferences: list[Inference] = field(default_factory=list)
    arm_travel_rad: float = 0.0  # largest distance of any arm joint from its start position
    closest_m: float | None = None  # closest the pinch point came to the target's centre
    safety: dict[str, int] = field(default_factory=dict)  # SafetyCounts, flattened
    commands: list[np.ndarray] = field(default_factory=list)  # (D,) per control step

    @property
    def held_share(self) -> float | None:
        """Share of the control ticks the executor held the arm (None before any tick)."""
        ticks = self.safety.get('executed', 0) + sum(
            v for k, v in self.safety.items() if k.startswith('hold'))
        return None if not ticks else 1.0 - self.safety['executed'] / ticks


class ClosedLoop:
    """Runs episodes of ``robot`` driven by ``policy`` through the executor's runtime core."""

    def __init__(self, robot: SimRobot, policy: Any, executor: ExecutorNodeConfig,
                 config: LoopConfig | None = None,
                 clock: Callable[[], float] = time.perf_counter,
                 rtc: RtcConfig | None = None):
        """``clock``: the wall clock (s) that times inferences in the measured latency mode.
        ``rtc``: real-time chunking as policy_node does it with ``rtc: true`` (the same
        :class:`RtcPlanner`, on sim time): each chunk is conditioned on the rows of the previous
        one that run while the policy thinks, and on none while the executor's last tick held
        (policy_node reads that from executor_node's diagnostics); None (or ``rtc.rtc`` False)
        leaves it off."""
        self.robot, self.policy, self.executor = robot, policy, executor
        self.rtc = rtc if rtc is not None and rtc.rtc else None
        self._planner: RtcPlanner | None = None
        self.config = config or LoopConfig()
        self.clock = clock
        self.dt = robot.config.control_period_s
        if abs(1.0 / executor.control_hz - self.dt) > 1e-9:
            raise ValueError(f'executor control_hz={executor.control_hz!r} must equal 1 / the '
                             f'sim control period ({1.0 / self.dt:g} Hz): one tick per step')
        if tuple(executor.joint_names or JOINT_NAMES) != JOINT_NAMES:
            raise ValueError(f'executor joint_names={executor.joint_names!r}: the sim robot has '
                             f'{JOINT_NAMES}')
        self.executor = replace(executor, joint_names=list(JOINT_NAMES))
        names = tuple(policy.joint_names or ()) or JOINT_NAMES
        if names != JOINT_NAMES or policy.robot_state_dim != len(JOINT_NAMES):
            raise ValueError(f'the policy drives joints {names} with state dim '
                             f'{policy.robot_state_dim}; the sim robot has {JOINT_NAMES}')
        if abs(policy.control_period_s - self.dt) > 1e-9:
            raise ValueError(f'the policy\'s control_period_s={policy.control_period_s!r} '
                             f'differs from the sim\'s {self.dt!r}')
        cameras = {'l515': lambda: robot.l515()[0], 'wrist': robot.wrist,
                   'thermal': robot.thermal}
        unknown = sorted(set(policy.camera_names) - set(cameras))
        if unknown:
            raise ValueError(f'the policy uses cameras {unknown} the sim robot does not have '
                             f'(it has {sorted(cameras)})')
        self._render = {name: cameras[name] for name in policy.camera_names}

    def observe(self, prompt: str) -> dict[str, Any]:
        """The observation the policy node would assemble now (see the module docstring)."""
        return {'images': {name: render() for name, render in self._render.items()},
                'state': self.robot.joint_state().position.astype(np.float32),  # (D,)
                'prompt': prompt}

    def run_episode(self, task: str, seed: int) -> EpisodeResult:
        """Reset the robot to ``task`` randomised by ``seed`` and run one episode."""
        cfg, robot = self.config, self.robot
        spec = robot.reset(task=task, seed=seed)
        self.policy.reset()
        if self.rtc is not None:  # a fresh planner: no committed chunk, no latency yet
            self._planner = RtcPlanner(self.rtc, self.dt, self.policy.action_horizon)
        core = ExecutorCore(self.executor)  # a fresh executor: no chunks, no command yet
        start = robot.joint_state().position  # (D,)
        core.set_joint_state(start, robot.time)
        result = EpisodeResult(task=spec.name, prompt=spec.prompt, seed=seed,
                               camera_labels=dict(spec.camera_labels), success=False, steps=0,
                               sim_time_s=0.0)
        in_flight: tuple[float, float, np.ndarray] | None = None  # (arrival, stamp, (H, D))
        next_inference = 0
        travel = np.zeros(6)  # (6,) arm joints
        closest = np.inf  # (m) pinch point to the target cube
        status = HOLD_NO_CHUNK  # the executor's last tick: no chunk yet, runs the first one
        for step in range(cfg.max_steps):
            now = robot.time
            # A chunk that lands now is used now, and frees the worker for the next inference,
            # whose chunk is used at once as well when the latency is zero.
            while True:
                if in_flight is not None and in_flight[0] <= now + _EPS:
                    _, stamp, actions = in_flight
                    in_flight = None
                    try:
                        core.add_chunk(stamp, self.dt, list(JOINT_NAMES), actions, now)
                    except ChunkRejectedError:  # NaN/inf actions: rejected, as by the node
                        pass
                elif in_flight is None and step >= next_inference:
                    if self._planner is not None:  # as policy_node learns from diagnostics
                        self._planner.executor_state(status in RUNS_CHUNKS)
                    in_flight = self._infer(spec.prompt, now, result)
                    next_inference = step + cfg.replan_steps
                else:
                    break
            out = core.tick(now)
            status = out.status
            robot.set_action(out.command)
            result.commands.append(out.command)
            robot.step()
            position = robot.joint_state().position  # (D,)
            travel = np.maximum(travel, np.abs(position[:6] - start[:6]))
            closest = min(closest, robot.target_distance())
            result.steps = step + 1
            if robot.success():  # the episode ends at the first successful step
                result.success = True
                break
        result.sim_time_s = robot.time
        result.arm_travel_rad = float(travel.max())
        result.closest_m = float(closest)
        counts = core.safety.counts
        result.safety = {'executed': counts.executed, 'clamped_position': counts.clamped_position,
                         'clamped_velocity': counts.clamped_velocity, **counts.holds}
        return result

    def _infer(self, prompt: str, now: float, result: EpisodeResult
               ) -> tuple[float, float, np.ndarray]:
        """Run the policy on the observation at ``now``; (arrival time, stamp, actions)."""
        obs = self.observe(prompt)
        kwargs = self._planner.infer_kwargs(now) if self._planner is not None else {}
        t0 = self.clock()
        out = self.policy.infer(obs, **kwargs)
        wall = self.clock() - t0
        actions = np.asarray(out['actions'], dtype=np.float64)  # (H, D)
        if actions.ndim != 2 or actions.shape[1] != len(JOINT_NAMES):
            raise ValueError(f'the policy returned actions of shape {actions.shape}, expected '
                             f'(horizon, {len(JOINT_NAMES)})')
        latency = self.config.latency(wall)
        if self._planner is not None:  # published when it lands: the latency the node measures
            self._planner.published(now, now + latency, actions)
        result.inferences.append(Inference(now, {k: float(v) for k, v in out['routing'].items()},
                                           wall * 1e3, latency))
        return now + latency, now, actions


class ScriptedPolicy:
    """The scripted IK expert (:class:`ScriptedExpert`) behind the policy interface.

    Privileged: it plans from the true cube poses of ``robot`` at :meth:`reset`, and each chunk
    holds the plan's next ``horizon`` targets from the robot's current time. It uses no camera
    and has no router. Driving :class:`ClosedLoop` with it shows that the execution path (chunks,
    ensembling, safety limits) can succeed, so a learned policy's failures are its own.
    """

    camera_names: tuple[str, ...] = ()
    thermal_cameras: tuple[str, ...] = ()
    joint_names = JOINT_NAMES
    robot_state_dim = len(JOINT_NAMES)

    def __init__(self, robot: SimRobot, horizon: int = 50,
                 config: ExpertConfig | None = None):
        self.robot, self.action_horizon = robot, horizon
        self.control_period_s = robot.config.control_period_s
        self.expert = ScriptedExpert(robot.scene, config or ExpertConfig())
        self._plan = np.zeros((1, len(JOINT_NAMES)))  # (T, D) targets at each control step

    def reset(self) -> None:
        """Plan the grasp of the current task's target from the robot's current state."""
        self.expert.reset(self.robot.task.target)
        steps = int(np.ceil(self.expert.duration / self.control_period_s)) + 1
        self._plan = np.stack([self.expert.act(k * self.control_period_s)
                               for k in range(steps)])  # (T, D)

    def infer(self, obs: dict[str, Any]) -> dict[str, Any]:
        k = int(round(self.robot.time / self.control_period_s))
        rows = np.minimum(np.arange(k, k + self.action_horizon), len(self._plan) - 1)  # (H,)
        return {'actions': self._plan[rows].astype(np.float32), 'routing': {}, 'timing': {}}
