"""Write videos that the camera drivers can play back as a device (``device:=<file>``).

Tests use them to drive the real OpenCV capture path without a camera; they also make offline
demos possible. Colour goes to MJPG in AVI (what a UVC camera sends); 16-bit thermal goes to FFV1
in Matroska, which is lossless, so centi-Kelvin values come back exactly.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np


def _write(path: Path, frames: Iterable[np.ndarray], fps: float, fourcc: str,
           params: list[int]) -> int:
    """Write to a temporary name and rename: a reader never sees a half-written file."""
    frames = list(frames)
    if not frames:
        raise ValueError(f'{path}: no frames to write')
    height, width = frames[0].shape[:2]
    tmp = path.with_name(f'.{path.stem}.tmp{path.suffix}')
    writer = cv2.VideoWriter(str(tmp), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), fps,
                             (width, height), params)
    if not writer.isOpened():
        raise OSError(f'{path}: OpenCV cannot write {fourcc} video here')
    try:
        for frame in frames:
            if frame.shape[:2] != (height, width):
                raise ValueError(f'{path}: frame of shape {frame.shape}, expected '
                                 f'{height}x{width}')
            writer.write(frame)
    finally:
        writer.release()
    os.replace(tmp, path)
    return len(frames)


def write_color_video(path: str | Path, frames_rgb: Iterable[np.ndarray],
                      fps: float = 30.0) -> int:
    """(H, W, 3) uint8 RGB frames -> an MJPG ``.avi``; returns the number of frames."""
    return _write(Path(path), (cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in frames_rgb), fps,
                  'MJPG', [])


def write_y16_video(path: str | Path, frames: Iterable[np.ndarray], fps: float = 9.0) -> int:
    """(H, W) uint16 frames -> a lossless 16-bit FFV1 ``.mkv``; returns the number of frames."""
    def checked(frame: np.ndarray) -> np.ndarray:
        if frame.ndim != 2 or frame.dtype != np.uint16:
            raise ValueError(f'{path}: Y16 frames must be (H, W) uint16, got {frame.shape} '
                             f'{frame.dtype}')
        return frame

    return _write(Path(path), map(checked, frames), fps, 'FFV1',
                  [cv2.VIDEOWRITER_PROP_DEPTH, cv2.CV_16U, cv2.VIDEOWRITER_PROP_IS_COLOR, 0])
