"""OpenCV capture of a UVC camera (V4L2) or a video file, as a grabber :class:`Source`. No rclpy.

``device`` picks the backend:

- ``'0'``, ``'2'``, ...: ``/dev/video<N>`` through V4L2;
- ``'/dev/...'`` (``/dev/video0``, or better a stable ``/dev/v4l/by-id/...`` link): V4L2;
- anything else: a video file or URL through OpenCV's default backend (FFmpeg). A file is
  played back in real time at ``fps`` like a camera, and its end counts as the device going away
  (the grabber reopens it after its backoff, so a file loops). Tests use this path.

The requested size, rate and FOURCC are only requests: V4L2 silently picks the nearest mode the
camera offers. What the device actually delivers is read back and shown in ``description``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from pi05_moe_bringup.drivers.grabber import SourceError


@dataclass(frozen=True)
class CaptureSpec:
    """What to open and how."""

    device: str
    width: int
    height: int
    fps: float
    fourcc: str = ''  # '' keeps the device's default pixel format
    convert_rgb: bool = True  # False: raw frames as the device sends them (Y16 thermal)


def parse_device(device: str) -> tuple[int | str, int, bool]:
    """``(target, OpenCV API, is_live)`` for a ``device`` parameter (see the module docstring)."""
    device = device.strip()
    if not device:
        raise ValueError("device is empty: expected an index like '0', a /dev path or a file")
    if device.isdigit():
        return int(device), cv2.CAP_V4L2, True
    if device.startswith('/dev/'):
        return device, cv2.CAP_V4L2, True
    return device, cv2.CAP_ANY, False


def fourcc_code(text: str) -> int:
    """``'MJPG'`` -> OpenCV's integer code; shorter codes are space-padded (``'Y16'``)."""
    if not 1 <= len(text) <= 4 or not text.isascii():
        raise ValueError(f'fourcc {text!r}: expected 1-4 ASCII characters like MJPG, YUYV, Y16')
    return cv2.VideoWriter_fourcc(*text.ljust(4))


def fourcc_text(code: float) -> str:
    """OpenCV's FOURCC property (a float) back to text, e.g. ``'MJPG'``; '' when unknown."""
    value = int(code)
    if value <= 0:
        return ''
    text = value.to_bytes(4, 'little').decode('ascii', errors='replace')
    return text.rstrip('\x00 ')


def bgr_to_rgb8(frame: np.ndarray) -> np.ndarray:
    """An OpenCV colour frame -> (H, W, 3) uint8 RGB (a new array).

    Accepts (H, W, 3) BGR, (H, W, 4) BGRA and (H, W) grey, all uint8; raises ``ValueError``
    describing anything else (the wrong-pixel-format case).
    """
    if frame.dtype != np.uint8:
        raise ValueError(f'got a {frame.shape} {frame.dtype} frame: expected 8-bit colour '
                         '(is this a 16-bit/thermal device?)')
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)  # (H, W, 3)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    if frame.ndim == 2 and frame.shape[0] > 1:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    raise ValueError(f'got a {frame.shape} {frame.dtype} frame: expected (H, W, 3) BGR '
                     '(a (1, N) frame is an undecoded compressed buffer)')


class OpenCvSource:
    """A ``cv2.VideoCapture`` opened from a :class:`CaptureSpec`; ``convert`` maps each frame.

    Raises :class:`SourceError` when the device cannot be opened. ``read`` raises it when no frame
    comes (unplugged, end of file) or when ``convert`` rejects the frame with ``ValueError``.
    """

    def __init__(self, spec: CaptureSpec, convert: Callable[[np.ndarray], Any]):
        target, api, self.live = parse_device(spec.device)
        self.spec = spec
        self._convert = convert
        self._check_exists(spec.device, target)
        self._cap = cv2.VideoCapture(target, api)
        if not self._cap.isOpened():
            self._cap.release()
            raise SourceError(f'OpenCV could not open {spec.device!r} (busy, not a video device, '
                              'or an unreadable file)')
        if spec.fourcc:
            self._cap.set(cv2.CAP_PROP_FOURCC, fourcc_code(spec.fourcc))
        if self.live:
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, spec.width)
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, spec.height)
            self._cap.set(cv2.CAP_PROP_FPS, spec.fps)
        self._cap.set(cv2.CAP_PROP_CONVERT_RGB, 1.0 if spec.convert_rgb else 0.0)
        self.description = self._describe()
        self._period = 0.0 if self.live else 1.0 / spec.fps  # files play back in real time
        self._next_t = 0.0

    @staticmethod
    def _check_exists(device: str, target: int | str) -> None:
        """A clearer message than OpenCV's for the common case: nothing at that path."""
        path = f'/dev/video{target}' if isinstance(target, int) else target
        if '://' not in path and not os.path.exists(path):
            kind = 'device' if path.startswith('/dev/') else 'file'
            raise SourceError(f'no such {kind} {path!r}'
                              + (' (unplugged? see ls /dev/v4l/by-id)' if kind == 'device'
                                 else ''))

    def _describe(self) -> str:
        cap, spec = self._cap, self.spec
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = cap.get(cv2.CAP_PROP_FPS)
        fourcc = fourcc_text(cap.get(cv2.CAP_PROP_FOURCC)) or '?'
        text = f'{spec.device} {width}x{height} {fourcc} @ {fps:g} fps ({cap.getBackendName()})'
        wanted_fourcc = spec.fourcc.strip()
        if self.live and ((width, height) != (spec.width, spec.height)
                          or (wanted_fourcc and fourcc != wanted_fourcc)):
            text += (f' [asked for {spec.width}x{spec.height} {wanted_fourcc or "any"}: '
                     'the camera does not offer that mode]')
        return text

    def read(self) -> Any:
        if self._period:  # a file: wait for the frame's slot in real time
            now = time.monotonic()
            if self._next_t > now:
                time.sleep(self._next_t - now)
            self._next_t = max(self._next_t, now) + self._period
        ok, frame = self._cap.read()
        if not ok or frame is None:
            raise SourceError('no frame: ' + ('device unplugged or stalled' if self.live
                                              else 'end of file'))
        try:
            return self._convert(frame)
        except ValueError as exc:
            raise SourceError(f'wrong pixel format from {self.spec.device!r}: {exc}') from None

    def close(self) -> None:
        self._cap.release()
