"""Damped-least-squares inverse kinematics of the gripper's pinch site, from `mj_jacSite`."""

from dataclasses import dataclass

import mujoco
import numpy as np

from pi05_moe_bringup.sim.scene import Scene


@dataclass(frozen=True)
class IKConfig:
    """Damped least squares: dq = J^T (J J^T + damping^2 I)^-1 e, clipped per iteration."""

    damping: float = 0.05
    rot_weight: float = 0.3  # metres of position error worth one radian of orientation error
    max_step_rad: float = 0.2
    iterations: int = 8
    tol: float = 1e-4


def orientation_error(current: np.ndarray, desired: np.ndarray) -> np.ndarray:
    """(3,) rotation vector (world frame) that turns rotation matrix `current` into `desired`."""
    quat_cur, quat_des, err = np.empty(4), np.empty(4), np.empty(3)
    mujoco.mju_mat2Quat(quat_cur, current.ravel())
    mujoco.mju_mat2Quat(quat_des, desired.ravel())
    mujoco.mju_subQuat(err, quat_des, quat_cur)  # in the current frame
    return current @ err


class PinchIK:
    """Solves arm joint positions that put the pinch site at a position and orientation.

    Works on its own MjData so the simulation's state is never touched.
    """

    def __init__(self, scene: Scene, config: IKConfig = IKConfig()):
        self.scene = scene
        self.config = config
        self.data = mujoco.MjData(scene.model)
        model, ids = scene.model, scene.ids
        self.lower = model.jnt_range[[model.dof_jntid[d] for d in ids.arm_dof], 0]  # (6,)
        self.upper = model.jnt_range[[model.dof_jntid[d] for d in ids.arm_dof], 1]  # (6,)
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def pinch_pose(self, q_arm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Forward kinematics: pinch position (3,) and rotation matrix (3, 3) at `q_arm` (6,)."""
        ids = self.scene.ids
        self.data.qpos[ids.arm_qpos] = q_arm
        mujoco.mj_kinematics(self.scene.model, self.data)
        return (self.data.site_xpos[ids.pinch_site].copy(),
                self.data.site_xmat[ids.pinch_site].reshape(3, 3).copy())

    def solve(self, q_init: np.ndarray, pos: np.ndarray, rot: np.ndarray) -> np.ndarray:
        """Arm joints (6,) near `q_init` (6,) that reach `pos` (3,) with rotation `rot` (3, 3)."""
        cfg, ids, model = self.config, self.scene.ids, self.scene.model
        q = np.clip(np.asarray(q_init, float), self.lower, self.upper)  # (6,)
        for _ in range(cfg.iterations):
            cur_pos, cur_rot = self.pinch_pose(q)
            err = np.concatenate([pos - cur_pos,
                                  cfg.rot_weight * orientation_error(cur_rot, rot)])  # (6,)
            if np.linalg.norm(err) < cfg.tol:
                break
            mujoco.mj_comPos(model, self.data)
            mujoco.mj_jacSite(model, self.data, self._jacp, self._jacr, ids.pinch_site)
            jac = np.vstack([self._jacp[:, ids.arm_dof],
                             cfg.rot_weight * self._jacr[:, ids.arm_dof]])  # (6, 6)
            dq = jac.T @ np.linalg.solve(jac @ jac.T + cfg.damping ** 2 * np.eye(6), err)  # (6,)
            dq *= min(1.0, cfg.max_step_rad / (np.abs(dq).max() + 1e-12))
            q = np.clip(q + dq, self.lower, self.upper)
        return q
