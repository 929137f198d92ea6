"""Scripted grasp-and-lift expert: Cartesian waypoints for the pinch site, IK to joint targets.

It uses privileged state (the target cube's true pose) and emits the same absolute joint-target
actions a policy would: 6 arm joints (rad) + gripper in [0, 1] (0 closed, 1 open).
"""

from dataclasses import dataclass, field

import numpy as np

from pi05_moe_bringup.sim.ik import IKConfig, PinchIK
from pi05_moe_bringup.sim.scene import Scene


@dataclass(frozen=True)
class ExpertConfig:
    """Heights are of the pinch point relative to the cube's centre; times are per phase (s)."""

    approach_height_m: float = 0.10
    grasp_height_m: float = 0.0
    lift_height_m: float = 0.15
    approach_s: float = 1.2
    descend_s: float = 0.8
    close_s: float = 0.5
    lift_s: float = 1.0
    hold_s: float = 0.5
    ik: IKConfig = field(default_factory=IKConfig)


@dataclass(frozen=True)
class Waypoint:
    """The pinch pose and gripper command reached at time `t` (s since reset)."""

    t: float
    pos: np.ndarray  # (3,)
    yaw: float  # heading of the finger-closing axis (rad)
    gripper: float


def down_rotation(yaw: float) -> np.ndarray:
    """(3, 3) pinch frame pointing down (x = -z world), fingers closing along heading `yaw`."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[0.0, c, s], [0.0, s, -c], [-1.0, 0.0, 0.0]])


def wrap(angle: float) -> float:
    """Angle wrapped to [-pi, pi)."""
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


def smoothstep(u: float) -> float:
    """Minimum-jerk blend from 0 to 1 over u in [0, 1]."""
    u = min(max(u, 0.0), 1.0)
    return u * u * u * (10 + u * (-15 + 6 * u))


class ScriptedExpert:
    """Plans at `reset(target)` from the current state; `act(t)` gives the action at time t."""

    def __init__(self, scene: Scene, config: ExpertConfig = ExpertConfig()):
        self.scene = scene
        self.config = config
        self.ik = PinchIK(scene, config.ik)
        self.waypoints: list[Waypoint] = []
        self._q = np.zeros(6)  # last IK solution, the warm start for the next one

    @property
    def duration(self) -> float:
        """Time (s) at which the plan ends, holding the cube up."""
        return self.waypoints[-1].t

    def reset(self, target: str) -> None:
        """Plan approach, descend, close, lift and hold for the cube body named `target`."""
        cfg, scene = self.config, self.scene
        self._q = scene.data.qpos[scene.ids.arm_qpos].copy()
        start_pos, start_rot = self.ik.pinch_pose(self._q)
        start_yaw = float(np.arctan2(start_rot[1, 1], start_rot[0, 1]))
        cube = scene.cube_position(target)  # (3,)
        # The cube is symmetric under quarter turns: pick the grasp heading nearest to the one
        # the arm has when it simply turns its waist toward the cube, to spare the wrist.
        natural = np.arctan2(cube[1], cube[0]) + np.pi / 2
        quarter = scene.cube_yaw(target) + np.pi / 2 * np.arange(-4, 5)  # (9,)
        yaw = float(quarter[np.argmin([abs(wrap(q - natural)) for q in quarter])])
        yaw = start_yaw + wrap(yaw - start_yaw)
        above = cube + (0.0, 0.0, cfg.approach_height_m)
        grasp = cube + (0.0, 0.0, cfg.grasp_height_m)
        lifted = cube + (0.0, 0.0, cfg.lift_height_m)
        t = np.cumsum([0.0, cfg.approach_s, cfg.descend_s, cfg.close_s, cfg.lift_s, cfg.hold_s])
        self.waypoints = [
            Waypoint(t[0], start_pos, start_yaw, 1.0),
            Waypoint(t[1], above, yaw, 1.0),
            Waypoint(t[2], grasp, yaw, 1.0),
            Waypoint(t[3], grasp, yaw, 0.0),
            Waypoint(t[4], lifted, yaw, 0.0),
            Waypoint(t[5], lifted, yaw, 0.0),
        ]

    def pinch_target(self, t: float) -> Waypoint:
        """The planned pinch pose and gripper command at time `t`."""
        for before, after in zip(self.waypoints, self.waypoints[1:]):
            if t < after.t:
                u = smoothstep((t - before.t) / (after.t - before.t))
                return Waypoint(t, before.pos + u * (after.pos - before.pos),
                                before.yaw + u * (after.yaw - before.yaw),
                                before.gripper + u * (after.gripper - before.gripper))
        return self.waypoints[-1]

    def act(self, t: float) -> np.ndarray:
        """(7,) absolute joint targets: arm (rad) then gripper in [0, 1]."""
        goal = self.pinch_target(t)
        self._q = self.ik.solve(self._q, goal.pos, down_rotation(goal.yaw))
        return np.append(self._q, goal.gripper)
