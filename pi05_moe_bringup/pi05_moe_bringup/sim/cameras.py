"""Offscreen renderers for the simulated cameras: RGB, metric depth and segmentation.

Shadows, reflections and MSAA are off (the MJCF sets offsamples=0): at 224x224 that brings a
render from ~40 ms to a few ms. One `mujoco.Renderer` (and GL context) exists per image size.
"""

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import mujoco
import numpy as np

from pi05_moe_bringup.sim.backend import GLBackendError

# Intel RealSense L515 depth range; readings outside it come back as 0 (no data), like the device.
L515_DEPTH_MIN_M = 0.25
L515_DEPTH_MAX_M = 9.0


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels, for sensor_msgs/CameraInfo (no distortion)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float


def intrinsics_from_fovy(fovy_deg: float, width: int, height: int) -> Intrinsics:
    """Intrinsics of a MuJoCo camera: fovy is vertical, pixels are square, centre principal point.

    The principal point is (w-1)/2, (h-1)/2 because pixel centres sit at integer coordinates.
    """
    f = 0.5 * height / math.tan(math.radians(fovy_deg) / 2.0)
    return Intrinsics(width, height, f, f, (width - 1) / 2.0, (height - 1) / 2.0)


def depth_to_mm(depth_m: np.ndarray, lo_m: float = L515_DEPTH_MIN_M,
                hi_m: float = L515_DEPTH_MAX_M) -> np.ndarray:
    """(H, W) float metres -> (H, W) uint16 millimetres, 0 outside [lo_m, hi_m].

    MuJoCo reports the background at the far plane (tens of metres); this zeroes it.
    """
    valid = (depth_m >= lo_m) & (depth_m <= hi_m)
    return np.where(valid, np.rint(depth_m * 1000.0), 0).astype(np.uint16)


class CameraRig:
    """Renders named MJCF cameras at fixed sizes. Call `close()` (EGL complains otherwise).

    A GL context is bound to the thread that made it current, and ROS executors call from
    whichever thread they like, so every GL call (create, render, free) runs on one dedicated
    thread; callers on any thread wait for it. The hand-off costs tens of microseconds.
    """

    def __init__(self, model: mujoco.MjModel, sizes: dict[str, tuple[int, int]]):
        """`sizes` maps camera name -> (width, height)."""
        self.model = model
        self.sizes = dict(sizes)
        for name in self.sizes:
            if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name) < 0:
                raise ValueError(f'no camera named {name!r}')
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self._option = mujoco.MjvOption()  # default groups: the pinch site (group 5) is hidden
        self._gl = ThreadPoolExecutor(max_workers=1, thread_name_prefix='mujoco_gl')
        try:
            for size in set(self.sizes.values()):
                self._renderers[size] = self._on_gl(self._make_renderer, *size)
        except BaseException:
            self.close()
            raise

    def _on_gl(self, fn, *args):
        """Run fn(*args) on the GL thread and return its result (or raise its error)."""
        if self._gl is None:
            raise RuntimeError('CameraRig is closed')
        return self._gl.submit(fn, *args).result()

    def _make_renderer(self, width: int, height: int) -> mujoco.Renderer:
        try:
            renderer = mujoco.Renderer(self.model, height=height, width=width)
        except Exception as err:  # GL failures surface as assorted exception types
            raise GLBackendError(
                f'cannot create a {width}x{height} MuJoCo renderer with '
                f"MUJOCO_GL={os.environ.get('MUJOCO_GL', '')!r} ({err}). Use egl or osmesa, and "
                'set it before mujoco is imported.') from err
        for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION,
                     mujoco.mjtRndFlag.mjRND_SKYBOX):
            renderer.scene.flags[flag] = False
        return renderer

    def _renderer(self, data: mujoco.MjData, name: str) -> mujoco.Renderer:
        renderer = self._renderers[self.sizes[name]]
        renderer.update_scene(data, camera=name, scene_option=self._option)
        return renderer

    def intrinsics(self, name: str) -> Intrinsics:
        width, height = self.sizes[name]
        return intrinsics_from_fovy(float(self.model.camera(name).fovy[0]), width, height)

    def rgb(self, data: mujoco.MjData, name: str) -> np.ndarray:
        """(H, W, 3) uint8 colour image."""
        return self._on_gl(lambda: self._renderer(data, name).render())

    def rgbd(self, data: mujoco.MjData, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Aligned (H, W, 3) uint8 colour and (H, W) uint16 depth in mm from one scene update."""
        def render():
            renderer = self._renderer(data, name)
            rgb = renderer.render()
            renderer.enable_depth_rendering()
            try:
                return rgb, renderer.render()  # depth: (H, W) float32 metres along the axis
            finally:
                renderer.disable_depth_rendering()

        rgb, depth = self._on_gl(render)
        return rgb, depth_to_mm(depth)

    def geom_ids(self, data: mujoco.MjData, name: str) -> np.ndarray:
        """(H, W) int32 id of the geom seen at each pixel, -1 where no geom is."""
        def render():
            renderer = self._renderer(data, name)
            renderer.enable_segmentation_rendering()
            try:
                return renderer.render()  # (H, W, 2) int32: object id, object type
            finally:
                renderer.disable_segmentation_rendering()

        seg = self._on_gl(render)
        # int(): comparing an array with the pybind enum itself goes element by element in Python.
        is_geom = seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM)
        return np.where(is_geom, seg[..., 0], -1).astype(np.int32)

    def close(self) -> None:
        """Free every GL context and stop the GL thread; safe to call twice."""
        if self._gl is None:
            return
        renderers = list(self._renderers.values())
        self._renderers.clear()
        try:
            for renderer in renderers:
                self._on_gl(renderer.close)
        finally:
            self._gl.shutdown(wait=True)
            self._gl = None
