"""Task registry and the two-cube lifting tasks, where a different camera matters per prompt.

Both tasks build the same scene: two identical 4 cm cubes at random poses, one red and one of
another colour, and, independently of colour, one of them hot. So in "lift the red cube" the
L515 colour decides the target and temperature is no help, and in "lift the hot cube" only the
thermal camera tells the cubes apart, because which cube is hot is not tied to its colour.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from pi05_moe_bringup.sim.scene import CUBE_HALF_M, CUBES, TABLE_Z, Scene

RED = (0.80, 0.10, 0.10, 1.0)
NOT_RED = ((0.10, 0.30, 0.80, 1.0), (0.15, 0.65, 0.20, 1.0), (0.85, 0.75, 0.15, 1.0))
AMBIENT_K = 295.15


@dataclass(frozen=True)
class TwoCubeLayout:
    """Where the cubes may go (table frame, metres) and how hot the hot one is (kelvin).

    Without `slots`, both cubes are uniform in the x/y ranges, at least `min_separation_m`
    apart. With `slots`, cube k sits at slot k plus a uniform jitter of up to `slot_jitter_m`
    per axis: which slot holds the target still changes with colour and heat, so the prompt's
    camera still decides where to reach.
    """

    x_range: tuple[float, float] = (0.28, 0.45)
    y_range: tuple[float, float] = (-0.18, 0.18)
    min_separation_m: float = 0.15
    slots: tuple[tuple[float, float], ...] = ()
    slot_jitter_m: float = 0.0
    max_yaw_rad: float = np.pi / 4
    hot_range_k: tuple[float, float] = (318.15, 333.15)  # 45..60 degC
    ambient_jitter_k: float = 1.0
    lift_height_m: float = 0.05  # success: the target's bottom this far above the table


class Task:
    """One episode's randomised setup, its prompt, the camera it needs, and its success test.

    Subclasses set `name`, `prompt`, `camera_labels` (expert camera -> 1 if the prompt needs
    it) and `_choose_target`.
    """

    name: ClassVar[str]
    prompt: ClassVar[str]
    camera_labels: ClassVar[dict[str, int]]

    def __init__(self, layout: TwoCubeLayout = TwoCubeLayout()):
        self.layout = layout
        self.target = ''  # body name of the cube to lift
        self.red = ''
        self.hot = ''

    def reset(self, scene: Scene, seed: int) -> None:
        """Randomise the scene (already at its home keyframe) from `seed`."""
        rng = np.random.default_rng(seed)
        lay = self.layout
        if lay.slots:
            xy = np.asarray(lay.slots) + rng.uniform(-lay.slot_jitter_m, lay.slot_jitter_m,
                                                     size=(2, 2))  # (cube, xy)
        else:
            while True:  # rejection sampling; the region fits two cubes easily
                xy = rng.uniform((lay.x_range[0], lay.y_range[0]),
                                 (lay.x_range[1], lay.y_range[1]), size=(2, 2))  # (cube, xy)
                if np.linalg.norm(xy[0] - xy[1]) >= lay.min_separation_m:
                    break
        yaws = rng.uniform(-lay.max_yaw_rad, lay.max_yaw_rad, size=2)
        for cube, pos, yaw in zip(CUBES, xy, yaws):
            scene.set_cube_pose(cube, tuple(pos), float(yaw))
        self.red = CUBES[rng.integers(2)]
        self.hot = CUBES[rng.integers(2)]  # independent of colour, on purpose
        other_colour = NOT_RED[rng.integers(len(NOT_RED))]
        for cube in CUBES:
            geom = scene.ids.cube_geoms[cube]
            scene.model.geom_rgba[geom] = RED if cube == self.red else other_colour
            scene.temperatures[geom] = (rng.uniform(*lay.hot_range_k) if cube == self.hot else
                                        AMBIENT_K + rng.uniform(-1, 1) * lay.ambient_jitter_k)
        self.target = self._choose_target()

    def _choose_target(self) -> str:
        raise NotImplementedError

    def lifted(self, scene: Scene) -> bool:
        """The target's centre is at least `lift_height_m` above where it rests."""
        rest_z = TABLE_Z + CUBE_HALF_M
        return bool(scene.cube_position(self.target)[2] >= rest_z + self.layout.lift_height_m)

    def success(self, scene: Scene) -> bool:
        """The target is lifted and held: above the lift height and touched by both fingers."""
        return self.lifted(scene) and scene.finger_contacts(self.target) == 2


class LiftRedCube(Task):
    """Lift the red cube: the L515 colour image decides the target."""

    name = 'lift_red_cube'
    prompt = 'lift the red cube'
    camera_labels = {'l515': 1, 'thermal': 0}

    def _choose_target(self) -> str:
        return self.red


class LiftHotCube(Task):
    """Lift the hot cube: only the thermal image decides the target."""

    name = 'lift_hot_cube'
    prompt = 'lift the hot cube'
    camera_labels = {'l515': 0, 'thermal': 1}

    def _choose_target(self) -> str:
        return self.hot


# The scene randomisations a task can run on. 'wide': anywhere in a 17 x 36 cm region at any
# yaw in +-45 deg. 'slots': two places 20 cm apart, +-2 cm and +-15 deg, so what is left to see
# is mostly which of the two cubes the prompt means (the shipped checkpoint's layout).
LAYOUTS: dict[str, TwoCubeLayout] = {
    'wide': TwoCubeLayout(),
    'slots': TwoCubeLayout(slots=((0.36, -0.10), (0.36, 0.10)), slot_jitter_m=0.02,
                           max_yaw_rad=np.deg2rad(15.0)),
}

TASKS: dict[str, Callable[..., Task]] = {}


def register_task(name: str, factory: Callable[..., Task]) -> None:
    """Add a task under `name`; later tasks join the registry this way."""
    if name in TASKS:
        raise ValueError(f'task {name!r} is already registered')
    TASKS[name] = factory


def make_task(name: str, layout: str = 'wide') -> Task:
    """A fresh task instance by registered name, on the named scene layout."""
    if name not in TASKS:
        raise ValueError(f'unknown task {name!r}; registered: {sorted(TASKS)}')
    if layout not in LAYOUTS:
        raise ValueError(f'unknown layout {layout!r}; known: {sorted(LAYOUTS)}')
    return TASKS[name](LAYOUTS[layout])


register_task(LiftRedCube.name, LiftRedCube)
register_task(LiftHotCube.name, LiftHotCube)
