"""sensor_msgs/CameraInfo contents from a calibration file or from intrinsics. Pure: no rclpy.

One small value type, :class:`CameraInfoData`, is shared by every camera driver (and the
simulator): build it with :func:`from_intrinsics`, :func:`uncalibrated` or
:func:`load_calibration` (the ``camera_calibration`` / ``camera_info_manager`` YAML format), then
copy it into a message with :func:`fill_camera_info`. That works on rclpy and rosbags messages
alike; the header is left to the caller.

The YAML format, as written by ``ros2 run camera_calibration cameracalibrator``::

    image_width: 640
    image_height: 480
    camera_name: wrist
    camera_matrix: {rows: 3, cols: 3, data: [fx, 0, cx, 0, fy, cy, 0, 0, 1]}
    distortion_model: plumb_bob
    distortion_coefficients: {rows: 1, cols: 5, data: [k1, k2, p1, p2, k3]}
    rectification_matrix: {rows: 3, cols: 3, data: [1, 0, 0, 0, 1, 0, 0, 0, 1]}
    projection_matrix: {rows: 3, cols: 4, data: [fx', 0, cx', Tx, 0, fy', cy', Ty, 0, 0, 1, 0]}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

IDENTITY_3X3 = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
# Models with a meaning in image_geometry; any string is carried, these are just known.
DISTORTION_MODELS = ('plumb_bob', 'rational_polynomial', 'equidistant')


class CalibrationError(ValueError):
    """A calibration file that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class CameraInfoData:
    """The calibration part of a CameraInfo message, row-major as in the message.

    ``k`` (3x3) and ``p`` (3x4) all zero means *uncalibrated* (the ROS convention): only the image
    size is known.
    """

    width: int
    height: int
    k: tuple[float, ...]  # (9,) intrinsic matrix
    d: tuple[float, ...] = ()  # distortion coefficients, as many as the model needs
    r: tuple[float, ...] = IDENTITY_3X3  # (9,) rectification rotation
    p: tuple[float, ...] = (0.0,) * 12  # (12,) projection matrix
    distortion_model: str = 'plumb_bob'
    camera_name: str = ''

    def __post_init__(self):
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f'CameraInfoData: image size {self.width}x{self.height}: expected '
                             'positive width and height')
        for name, size in (('k', 9), ('r', 9), ('p', 12)):
            values = getattr(self, name)
            if len(values) != size:
                raise ValueError(f'CameraInfoData.{name} has {len(values)} values: expected '
                                 f'{size}')
        for name in ('k', 'd', 'r', 'p'):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))

    @property
    def calibrated(self) -> bool:
        return self.k[0] != 0.0

    def matches(self, width: int, height: int) -> bool:
        """Whether this calibration was made for ``width`` x ``height`` images."""
        return (self.width, self.height) == (width, height)


def uncalibrated(width: int, height: int, camera_name: str = '') -> CameraInfoData:
    """Only the image size: K and P zero (what ROS tools read as 'not calibrated')."""
    return CameraInfoData(width, height, k=(0.0,) * 9, camera_name=camera_name)


def from_intrinsics(width: int, height: int, fx: float, fy: float, cx: float, cy: float,
                    d: tuple[float, ...] | list[float] = (),
                    distortion_model: str = 'plumb_bob',
                    camera_name: str = '') -> CameraInfoData:
    """A monocular camera from pinhole intrinsics in pixels: P = [K | 0], R = identity."""
    k = (fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0)
    p = (fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0)
    return CameraInfoData(width, height, k=k, d=tuple(d), p=p,
                          distortion_model=distortion_model, camera_name=camera_name)


def load_calibration(path: str | Path) -> CameraInfoData:
    """Read a ``camera_calibration`` YAML file; :class:`CalibrationError` names the problem."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise CalibrationError(f'{path}: cannot read the calibration file: {exc}') from None
    except yaml.YAMLError as exc:
        raise CalibrationError(f'{path}: not valid YAML: {exc}') from None
    return parse_calibration(doc, str(path))


def parse_calibration(doc: Any, source: str = '<calibration>') -> CameraInfoData:
    """Build :class:`CameraInfoData` from a parsed calibration YAML document.

    ``image_width``, ``image_height`` and ``camera_matrix`` are required. A missing
    ``distortion_coefficients`` means none, a missing ``rectification_matrix`` identity and a
    missing ``projection_matrix`` [K | 0], as for a monocular camera.
    """
    if not isinstance(doc, dict):
        raise CalibrationError(f'{source}: expected a mapping with image_width, image_height, '
                               f'camera_matrix, ...; got {type(doc).__name__}')
    size = []
    for key in ('image_width', 'image_height'):
        value = doc.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise CalibrationError(f'{source}: {key}={value!r}: expected a positive integer')
        size.append(value)
    k = _matrix(doc, 'camera_matrix', 3, 3, source, required=True)
    d = _matrix(doc, 'distortion_coefficients', 1, None, source) or ()
    r = _matrix(doc, 'rectification_matrix', 3, 3, source) or IDENTITY_3X3
    p = _matrix(doc, 'projection_matrix', 3, 4, source) or (*k[0:3], 0.0, *k[3:6], 0.0,
                                                            *k[6:9], 0.0)
    model = doc.get('distortion_model', 'plumb_bob')
    if not isinstance(model, str) or not model:
        raise CalibrationError(f'{source}: distortion_model={model!r}: expected a name such as '
                               f'{", ".join(DISTORTION_MODELS)}')
    return CameraInfoData(size[0], size[1], k=k, d=d, r=r, p=p, distortion_model=model,
                          camera_name=str(doc.get('camera_name', '')))


def _matrix(doc: dict, key: str, rows: int, cols: int | None, source: str,
            required: bool = False) -> tuple[float, ...] | None:
    """``{rows, cols, data}`` as a flat tuple, checking its shape; ``cols=None``: any."""
    entry = doc.get(key)
    if entry is None:
        if required:
            raise CalibrationError(f'{source}: {key} is missing (expected '
                                   f'{{rows: {rows}, cols: {cols}, data: [...]}})')
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get('data'), list):
        raise CalibrationError(f'{source}: {key}={entry!r}: expected {{rows, cols, data: [...]}}')
    data = entry['data']
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in data):
        raise CalibrationError(f'{source}: {key}.data={data!r}: expected numbers')
    want_cols = entry.get('cols', len(data)) if cols is None else cols
    if entry.get('rows', rows) != rows or entry.get('cols', want_cols) != want_cols or (
            len(data) != rows * want_cols):
        raise CalibrationError(
            f'{source}: {key} is {entry.get("rows")}x{entry.get("cols")} with {len(data)} '
            f'values: expected {rows}x{cols if cols is not None else "N"} '
            f'({"rows*cols" if cols is None else rows * cols} values)')
    return tuple(float(v) for v in data)


def calibration_document(data: CameraInfoData) -> dict[str, Any]:
    """The YAML document :func:`parse_calibration` reads back (for writing calibration files)."""
    def matrix(values: tuple[float, ...], rows: int, cols: int) -> dict[str, Any]:
        return {'rows': rows, 'cols': cols, 'data': list(values)}

    return {
        'image_width': data.width,
        'image_height': data.height,
        'camera_name': data.camera_name,
        'camera_matrix': matrix(data.k, 3, 3),
        'distortion_model': data.distortion_model,
        'distortion_coefficients': matrix(data.d, 1, len(data.d)),
        'rectification_matrix': matrix(data.r, 3, 3),
        'projection_matrix': matrix(data.p, 3, 4),
    }


def fill_camera_info(msg, data: CameraInfoData):
    """Copy ``data`` into ``msg`` (a CameraInfo message, rclpy or rosbags) and return it."""
    msg.width, msg.height = int(data.width), int(data.height)
    msg.distortion_model = data.distortion_model
    msg.k = np.array(data.k, dtype=np.float64)  # (9,)
    msg.d = np.array(data.d, dtype=np.float64)  # (N,)
    msg.r = np.array(data.r, dtype=np.float64)  # (9,)
    msg.p = np.array(data.p, dtype=np.float64)  # (12,)
    return msg
