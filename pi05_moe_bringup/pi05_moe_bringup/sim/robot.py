"""SimRobot: the stepping core of the simulated robot (no ROS, no wall clock).

Actions are absolute joint targets, (7,): six arm joints in radians, then the gripper in [0, 1]
(0 closed, 1 open). Joint states use the same seven names and units. Cameras render on demand;
the caller decides rates.
"""

from dataclasses import dataclass

import mujoco
import numpy as np

from pi05_moe_bringup.sim.cameras import CameraRig, Intrinsics
from pi05_moe_bringup.sim.config import SimConfig
from pi05_moe_bringup.sim.scene import ARM_JOINTS, FINGER_OPEN_M, GRIPPER_NAME, Scene
from pi05_moe_bringup.sim.tasks import Task, make_task
from pi05_moe_bringup.sim.thermal import ThermalConfig, thermal_image

JOINT_NAMES = ARM_JOINTS + (GRIPPER_NAME,)
CAMERAS = ('l515', 'wrist', 'thermal')


@dataclass(frozen=True)
class JointState:
    """One sample of the robot's joints, in action units."""

    names: tuple[str, ...]
    position: np.ndarray  # (7,) rad x6, gripper [0, 1]
    velocity: np.ndarray  # (7,) rad/s x6, gripper 1/s


class SimRobot:
    """Two-cube table scene with a 6-DoF arm and L515 (RGB-D), wrist (RGB) and thermal cameras.

    `render=False` skips the GL contexts for physics-only use (scripted demos, tests).
    """

    def __init__(self, config: SimConfig | None = None, render: bool = True):
        self.config = config or SimConfig()
        cfg = self.config
        size = (max(cfg.image_width, cfg.thermal_width), max(cfg.image_height,
                                                              cfg.thermal_height))
        self.scene = Scene(offscreen_size=size)
        timestep = self.scene.model.opt.timestep
        self.substeps = round(cfg.control_period_s / timestep)
        if abs(self.substeps * timestep - cfg.control_period_s) > 1e-9:
            raise ValueError(f'control_period_s must be a multiple of the physics step '
                             f'{timestep:g} s, got {cfg.control_period_s!r}')
        self.thermal_config = ThermalConfig(noise_k=cfg.thermal_noise_k,
                                            blur_sigma_px=cfg.thermal_blur_px)
        self.rig = CameraRig(self.scene.model, {
            'l515': (cfg.image_width, cfg.image_height),
            'wrist': (cfg.image_width, cfg.image_height),
            'thermal': (cfg.thermal_width, cfg.thermal_height),
        }) if render else None
        ids, model = self.scene.ids, self.scene.model
        self._ctrl_lo = model.actuator_ctrlrange[ids.arm_act, 0]  # (6,)
        self._ctrl_hi = model.actuator_ctrlrange[ids.arm_act, 1]  # (6,)
        self.task: Task = make_task(cfg.task, cfg.layout)
        self.seed = cfg.seed
        self._rng = np.random.default_rng(cfg.seed)
        self._clock_base = 0.0  # sim seconds of the episodes before this one
        self.reset()

    @property
    def time(self) -> float:
        """Simulated seconds since the episode started."""
        return float(self.scene.data.time)

    @property
    def clock(self) -> float:
        """Simulated seconds since this robot was built: monotonic across resets (for /clock)."""
        return self._clock_base + self.time

    def reset(self, task: str | None = None, seed: int | None = None) -> Task:
        """Start an episode of `task` (default: the current one) randomised by `seed`."""
        if task is not None and task != self.task.name:
            self.task = make_task(task, self.config.layout)
        if seed is not None:
            self.seed = seed
        self._clock_base += self.time
        self.scene.reset()
        self.task.reset(self.scene, self.seed)
        mujoco.mj_forward(self.scene.model, self.scene.data)
        self._rng = np.random.default_rng(self.seed)
        return self.task

    def set_action(self, action) -> None:
        """Hold (7,) absolute joint targets until the next call; clipped to the joint limits."""
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (len(JOINT_NAMES),) or not np.all(np.isfinite(action)):
            raise ValueError(f'action must be {len(JOINT_NAMES)} finite numbers '
                             f'{JOINT_NAMES}, got {action!r}')
        ids, ctrl = self.scene.ids, self.scene.data.ctrl
        ctrl[ids.arm_act] = np.clip(action[:6], self._ctrl_lo, self._ctrl_hi)
        ctrl[ids.finger_act] = np.clip(action[6], 0.0, 1.0) * FINGER_OPEN_M

    def step(self) -> None:
        """Advance one control period."""
        mujoco.mj_step(self.scene.model, self.scene.data, nstep=self.substeps)

    def joint_state(self) -> JointState:
        ids, data = self.scene.ids, self.scene.data
        pos = np.append(data.qpos[ids.arm_qpos], data.qpos[ids.finger_qpos].mean() / FINGER_OPEN_M)
        vel = np.append(data.qvel[ids.arm_dof], data.qvel[ids.finger_dof].mean() / FINGER_OPEN_M)
        return JointState(JOINT_NAMES, pos, vel)

    def success(self) -> bool:
        return self.task.success(self.scene)

    def target_distance(self) -> float:
        """Distance (m) from the pinch point between the fingertips to the target cube's centre."""
        offset = self.scene.pinch_position() - self.scene.cube_position(self.task.target)  # (3,)
        return float(np.linalg.norm(offset))

    def _require_rig(self) -> CameraRig:
        if self.rig is None:
            raise RuntimeError('this SimRobot was built with render=False')
        return self.rig

    def intrinsics(self, camera: str) -> Intrinsics:
        """Pinhole intrinsics of 'l515' (colour and depth alike), 'wrist' or 'thermal'."""
        return self._require_rig().intrinsics(camera)

    def l515(self) -> tuple[np.ndarray, np.ndarray]:
        """(H, W, 3) uint8 RGB and aligned (H, W) uint16 depth in mm (0 = out of range)."""
        return self._require_rig().rgbd(self.scene.data, 'l515')

    def render(self, streams) -> dict[str, np.ndarray]:
        """The frames of ``streams`` (any of l515_color, l515_depth, wrist, thermal), rendering
        only those: the L515's depth pass runs only for l515_depth."""
        unknown = set(streams) - {'l515_color', 'l515_depth', 'wrist', 'thermal'}
        if unknown:
            raise ValueError(f'unknown streams {sorted(unknown)}')
        out: dict[str, np.ndarray] = {}
        if 'l515_depth' in streams:
            rgb, out['l515_depth'] = self.l515()
            if 'l515_color' in streams:
                out['l515_color'] = rgb
        elif 'l515_color' in streams:
            out['l515_color'] = self.l515_rgb()
        if 'wrist' in streams:
            out['wrist'] = self.wrist()
        if 'thermal' in streams:
            out['thermal'] = self.thermal()
        return out

    def l515_rgb(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB of the L515 alone (no depth pass: half the rendering)."""
        return self._require_rig().rgb(self.scene.data, 'l515')

    def wrist(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB from the gripper camera."""
        return self._require_rig().rgb(self.scene.data, 'wrist')

    def thermal(self) -> np.ndarray:
        """(h, w) uint16 centi-kelvin, Lepton-like."""
        ids = self._require_rig().geom_ids(self.scene.data, 'thermal')
        return thermal_image(ids, self.scene.temperatures, self._rng, self.thermal_config)

    def close(self) -> None:
        """Free the GL contexts."""
        if self.rig is not None:
            self.rig.close()
            self.rig = None

    def __enter__(self) -> 'SimRobot':
        return self

    def __exit__(self, *exc) -> None:
        self.close()
