"""Load the MJCF scene, add the cameras through MjSpec, and give named access to its parts."""

from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

ASSET = Path(__file__).parent / 'assets' / 'scene.xml'

ARM_JOINTS = ('waist', 'shoulder', 'elbow', 'forearm_roll', 'wrist_pitch', 'wrist_roll')
FINGER_JOINTS = ('finger_left', 'finger_right')
GRIPPER_NAME = 'gripper'
FINGER_OPEN_M = 0.045  # finger travel at gripper = 1 (open); 0 is closed
CUBES = ('cube_a', 'cube_b')
CUBE_HALF_M = 0.02
TABLE_Z = 0.0


@dataclass(frozen=True)
class CameraMount:
    """A camera to add to the model: where it sits and what it looks at.

    pos, target and up are in the frame of `body` ('world' for a fixed camera); fovy is the
    vertical field of view in degrees, as MuJoCo defines it.
    """

    name: str
    body: str
    pos: tuple[float, float, float]
    target: tuple[float, float, float]
    up: tuple[float, float, float]
    fovy: float


# The L515 looks at the workspace from the front and above; the thermal camera sits beside it
# (Lepton 3.5: 57 deg HFOV, 4:3, so about 44 deg vertical); the wrist camera looks past the
# fingers with a wide lens so the object stays in view during the approach.
DEFAULT_MOUNTS = (
    CameraMount('l515', 'world', (0.78, 0.0, 0.52), (0.34, 0.0, 0.05), (0.0, 0.0, 1.0), 50.0),
    CameraMount('thermal', 'world', (0.78, 0.07, 0.52), (0.34, 0.0, 0.05), (0.0, 0.0, 1.0), 44.0),
    CameraMount('wrist', GRIPPER_NAME, (0.0, 0.0, 0.06), (0.14, 0.0, 0.0), (0.0, 0.0, 1.0),
                80.0),
)


def look_at_xyaxes(pos, target, up) -> np.ndarray:
    """MuJoCo camera `xyaxes` (6,) so the camera at `pos` looks at `target` with `up` upward.

    A MuJoCo camera looks along its -z axis, x points right and y up in the image.
    """
    z = np.asarray(pos, float) - np.asarray(target, float)  # (3,) backwards
    z /= np.linalg.norm(z)
    x = np.cross(np.asarray(up, float), z)  # (3,) image right
    if np.linalg.norm(x) < 1e-6:
        raise ValueError(f'camera up {up!r} is parallel to its view direction')
    x /= np.linalg.norm(x)
    y = np.cross(z, x)  # (3,) image up
    return np.concatenate([x, y])


def build_model(mounts: tuple[CameraMount, ...] = DEFAULT_MOUNTS,
                offscreen_size: tuple[int, int] = (640, 480)) -> mujoco.MjModel:
    """Compile the scene with `mounts` added; offscreen_size (w, h) bounds the render size."""
    spec = mujoco.MjSpec.from_file(str(ASSET))
    for mount in mounts:
        body = spec.worldbody if mount.body == 'world' else spec.body(mount.body)
        if body is None:
            raise ValueError(f'camera {mount.name!r}: no body named {mount.body!r}')
        cam = body.add_camera(name=mount.name, pos=list(mount.pos), fovy=mount.fovy)
        cam.alt.type = mujoco.mjtOrientation.mjORIENTATION_XYAXES
        cam.alt.xyaxes = look_at_xyaxes(mount.pos, mount.target, mount.up).tolist()
    spec.visual.global_.offwidth = max(spec.visual.global_.offwidth, offscreen_size[0])
    spec.visual.global_.offheight = max(spec.visual.global_.offheight, offscreen_size[1])
    return spec.compile()


@dataclass(frozen=True)
class SceneIds:
    """Indices into the model's arrays, resolved once by name."""

    arm_qpos: np.ndarray  # (6,) qpos addresses of the arm joints
    arm_dof: np.ndarray  # (6,) dof addresses of the arm joints
    finger_qpos: np.ndarray  # (2,)
    finger_dof: np.ndarray  # (2,)
    arm_act: np.ndarray  # (6,) actuator ids
    finger_act: np.ndarray  # (2,)
    finger_geoms: frozenset[int]
    pinch_site: int
    cube_bodies: dict[str, int]
    cube_geoms: dict[str, int]
    cube_qpos: dict[str, int]  # address of each cube's free-joint qpos (pos 3 + quat 4)
    cube_dof: dict[str, int]

    @classmethod
    def resolve(cls, model: mujoco.MjModel) -> 'SceneIds':
        def joint(name):
            return model.joint(name)

        def actuator(name):
            return model.actuator(name).id

        return cls(
            arm_qpos=np.array([joint(j).qposadr[0] for j in ARM_JOINTS]),
            arm_dof=np.array([joint(j).dofadr[0] for j in ARM_JOINTS]),
            finger_qpos=np.array([joint(j).qposadr[0] for j in FINGER_JOINTS]),
            finger_dof=np.array([joint(j).dofadr[0] for j in FINGER_JOINTS]),
            arm_act=np.array([actuator(j) for j in ARM_JOINTS]),
            finger_act=np.array([actuator(j) for j in FINGER_JOINTS]),
            finger_geoms=frozenset(model.geom(f'{j}_geom').id for j in FINGER_JOINTS),
            pinch_site=model.site('pinch').id,
            cube_bodies={c: model.body(c).id for c in CUBES},
            cube_geoms={c: model.geom(f'{c}_geom').id for c in CUBES},
            cube_qpos={c: joint(c).qposadr[0] for c in CUBES},
            cube_dof={c: joint(c).dofadr[0] for c in CUBES},
        )


class Scene:
    """Model + data + named ids + per-geom temperatures: the state a task or expert acts on."""

    def __init__(self, mounts: tuple[CameraMount, ...] = DEFAULT_MOUNTS,
                 offscreen_size: tuple[int, int] = (640, 480)):
        self.model = build_model(mounts, offscreen_size)
        self.data = mujoco.MjData(self.model)
        self.ids = SceneIds.resolve(self.model)
        self.home_key = self.model.key('home').id
        # Kelvin per geom, from the MJCF `user` field; tasks overwrite the cubes' entries.
        self.default_temperatures = self.model.geom_user[:, 0].astype(np.float64)  # (ngeom,)
        self.default_rgba = self.model.geom_rgba.copy()  # (ngeom, 4)
        self.temperatures = self.default_temperatures.copy()  # (ngeom,)

    def reset(self) -> None:
        """Back to the home keyframe, with default colours and temperatures."""
        mujoco.mj_resetDataKeyframe(self.model, self.data, self.home_key)
        self.model.geom_rgba[:] = self.default_rgba
        self.temperatures[:] = self.default_temperatures
        mujoco.mj_forward(self.model, self.data)

    def set_cube_pose(self, cube: str, xy: tuple[float, float], yaw: float) -> None:
        """Place `cube` resting on the table at `xy` with heading `yaw` (rad), at rest."""
        adr, dof = self.ids.cube_qpos[cube], self.ids.cube_dof[cube]
        self.data.qpos[adr:adr + 3] = (xy[0], xy[1], TABLE_Z + CUBE_HALF_M)
        self.data.qpos[adr + 3:adr + 7] = (np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))
        self.data.qvel[dof:dof + 6] = 0.0

    def cube_position(self, cube: str) -> np.ndarray:
        """(3,) world position of the cube's centre."""
        return self.data.xpos[self.ids.cube_bodies[cube]].copy()

    def pinch_position(self) -> np.ndarray:
        """(3,) world position of the point between the fingertips."""
        return self.data.site_xpos[self.ids.pinch_site].copy()

    def cube_yaw(self, cube: str) -> float:
        """Heading (rad) of the cube's x axis in the table plane."""
        xmat = self.data.xmat[self.ids.cube_bodies[cube]].reshape(3, 3)
        return float(np.arctan2(xmat[1, 0], xmat[0, 0]))

    def finger_contacts(self, cube: str) -> int:
        """How many distinct fingers touch `cube` now (0, 1 or 2)."""
        geom = self.ids.cube_geoms[cube]
        fingers = set()
        for con in self.data.contact[:self.data.ncon]:
            pair = {int(con.geom1), int(con.geom2)}
            if geom in pair:
                fingers |= pair & self.ids.finger_geoms
        return len(fingers)
