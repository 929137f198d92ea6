"""Pure parts of the L515 driver: library check, device choice, frame buffers, units, intrinsics.

Everything here takes plain numbers, strings and buffers, so it is tested without a camera and
without pyrealsense2. :mod:`.l515_capture` feeds it from the real library.

Why a version check: librealsense dropped the L500 series (L515) after 2.54.x, and realsense-ros
after 4.54.1. A newer pyrealsense2 simply does not list the camera, which would look like an
unplugged device; :func:`check_librealsense_version` says what is wrong instead.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from pi05_moe_bringup.drivers.camera_info import CameraInfoData, from_intrinsics
from pi05_moe_bringup.drivers.grabber import SourceError

LAST_L515_RELEASE = (2, 54)  # librealsense 2.54.x is the last with L500-series support
INSTALL_HINT = ('pip install "pyrealsense2==2.54.*" (PyPI has 2.54.2 wheels only for CPython 3.10 '
                'and 3.11 on x86_64; for Python 3.12, e.g. Ubuntu 24.04, or ARM, build '
                'librealsense v2.54.2 with -DBUILD_PYTHON_BINDINGS=ON). On ROS 2 Humble, '
                'realsense2_camera 4.54.1 is the other way: config/realsense2_l515_humble.yaml')
# L515 modes, for the error message when a requested combination does not resolve.
L515_COLOR_SIZES = ((1920, 1080), (1280, 720), (960, 540))
L515_DEPTH_SIZES = ((1024, 768), (640, 480), (320, 240))


class L515Error(RuntimeError):
    """A problem no retry can fix (library missing or too new): the node reports it and exits."""


def parse_version(text: str) -> tuple[int, ...]:
    """``'2.54.2.5684'`` -> ``(2, 54, 2, 5684)``; ``ValueError`` names the bad text."""
    try:
        return tuple(int(part) for part in text.strip().split('.'))
    except ValueError:
        raise ValueError(f'librealsense version {text!r}: expected numbers like 2.54.2') from None


def check_librealsense_version(version: str) -> None:
    """Raise :class:`L515Error` unless ``version`` still supports the L515 (2.54.x or older)."""
    if parse_version(version)[:2] > LAST_L515_RELEASE:
        raise L515Error(
            f'pyrealsense2/librealsense {version} cannot drive an L515: support for the L500 '
            f'series ended with 2.54.x, so this version does not even list the camera. '
            f'Install the last version with it: {INSTALL_HINT}')


def load_pyrealsense2() -> tuple[ModuleType, str]:
    """Import pyrealsense2 (lazily: robots without an L515 need not have it) and check it.

    Returns ``(module, version)``; raises :class:`L515Error` with install instructions.
    """
    try:
        rs = importlib.import_module('pyrealsense2')
    except ImportError as exc:
        raise L515Error(f'pyrealsense2 is not importable ({exc}). {INSTALL_HINT}') from None
    version = library_version(rs)
    check_librealsense_version(version)
    return rs, version


def library_version(rs: ModuleType) -> str:
    """pyrealsense2's version: the wheel re-exports its binary module without ``__version__``."""
    for module in (rs, getattr(rs, 'pyrealsense2', None)):
        version = getattr(module, '__version__', None)
        if isinstance(version, str):
            return version
    return importlib.metadata.version('pyrealsense2')


@dataclass(frozen=True)
class DeviceInfo:
    """One connected RealSense device, from ``rs.context().query_devices()``."""

    name: str  # e.g. 'Intel RealSense L515'
    serial: str
    product_line: str = ''  # 'L500' for an L515, 'D400' for a D435
    firmware: str = ''

    @property
    def is_l515(self) -> bool:
        return self.product_line == 'L500' or 'L5' in self.name

    def __str__(self) -> str:
        return f'{self.name} (serial {self.serial})'


def select_device(devices: list[DeviceInfo], serial: str = '') -> DeviceInfo:
    """The device to open: the one with ``serial``, else the first L515.

    Raises :class:`SourceError` (retried: the camera may be plugged in later) saying what was
    found instead.
    """
    if not devices:
        raise SourceError('no RealSense device found (plugged in? on a USB 3 port? librealsense '
                          'udev rules installed?)')
    found = ', '.join(map(str, devices))
    if serial:
        for device in devices:
            if device.serial == serial:
                return device
        raise SourceError(f'no RealSense device with serial {serial!r}; found: {found}')
    for device in devices:
        if device.is_l515:
            return device
    raise SourceError(f'no L515 among the RealSense devices found: {found} (set serial to use '
                      'one of them anyway)')


def video_frame_to_array(data, width: int, height: int, stride: int, dtype: type | np.dtype,
                         channels: int = 1) -> np.ndarray:
    """A frame buffer (bytes-like, rows ``stride`` bytes apart) -> a new array.

    Returns (H, W) for one channel, else (H, W, C). The copy matters: librealsense reuses frame
    memory once the frame is released.
    """
    dtype = np.dtype(dtype)
    row_bytes = width * channels * dtype.itemsize
    buf = np.frombuffer(data, dtype=np.uint8)
    if stride < row_bytes or buf.size < stride * height:
        raise ValueError(f'frame buffer of {buf.size} bytes, stride {stride}: too small for '
                         f'{width}x{height}x{channels} {dtype}')
    rows = buf[:stride * height].reshape(height, stride)[:, :row_bytes]  # (H, row_bytes) view
    out = np.array(rows, copy=True).view(dtype)  # (H, W * C), owns its memory
    return out.reshape(height, width) if channels == 1 else out.reshape(height, width, channels)


def depth_to_mm(raw: np.ndarray, depth_scale_m: float) -> np.ndarray:
    """(H, W) uint16 depth in device units -> (H, W) uint16 millimetres (0 stays 'no data').

    The L515's unit is 0.25 mm (``depth_scale_m = 0.00025``), a D400's 1 mm. Values are rounded
    and saturate at 65535 mm. realsense2_camera does the same conversion (``fix_depth_scale``), so
    both L515 paths publish millimetres.
    """
    if not depth_scale_m > 0:
        raise ValueError(f'depth scale {depth_scale_m!r} m: expected a positive number')
    mm = np.rint(raw.astype(np.float32) * np.float32(depth_scale_m * 1000.0))
    return np.clip(mm, 0, np.iinfo(np.uint16).max).astype(np.uint16)


def camera_info_from_intrinsics(width: int, height: int, fx: float, fy: float, ppx: float,
                                ppy: float, model: str, coeffs: list[float] | tuple[float, ...],
                                camera_name: str = '') -> CameraInfoData:
    """CameraInfo fields from ``rs.intrinsics`` (``model`` is ``intrinsics.model.name``).

    Mapped as realsense2_camera does: ``kannala_brandt4`` -> ``equidistant`` with 4 coefficients,
    every other model (brown_conrady, its inverse/modified forms, none) -> ``plumb_bob`` with 5.
    """
    coeffs = [float(c) for c in coeffs] + [0.0] * 5
    if model == 'kannala_brandt4':
        return from_intrinsics(width, height, fx, fy, ppx, ppy, coeffs[:4], 'equidistant',
                               camera_name)
    return from_intrinsics(width, height, fx, fy, ppx, ppy, coeffs[:5], 'plumb_bob', camera_name)


def profile_hint(color: tuple[int, int], depth: tuple[int, int], fps: int) -> str:
    """Why a stream request may not resolve, listing the L515's modes."""
    def sizes(table: tuple[tuple[int, int], ...]) -> str:
        return ', '.join(f'{w}x{h}' for w, h in table)

    return (f'the camera does not offer color {color[0]}x{color[1]} + depth {depth[0]}x'
            f'{depth[1]} at {fps} fps (L515 color: {sizes(L515_COLOR_SIZES)}; depth: '
            f'{sizes(L515_DEPTH_SIZES)}; 30 fps is safe for both)')


@dataclass(frozen=True)
class L515Frame:
    """One synchronised colour + depth pair with the calibration of this connection."""

    color: np.ndarray  # (H, W, 3) uint8 RGB
    depth_mm: np.ndarray  # (h, w) uint16 mm; the colour size when aligned
    color_info: CameraInfoData
    depth_info: CameraInfoData
