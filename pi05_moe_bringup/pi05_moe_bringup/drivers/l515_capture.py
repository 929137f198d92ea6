"""The L515 through pyrealsense2, as a grabber :class:`Source`. No rclpy.

Only the calls into the library live here; what they return is handed straight to the pure
functions of :mod:`.l515_frames`. The module ``rs`` is passed in (see
:func:`.l515_frames.load_pyrealsense2`), so importing this file never needs pyrealsense2.
"""

from __future__ import annotations

import time
from types import ModuleType

import numpy as np

from pi05_moe_bringup.drivers.camera_info import CameraInfoData
from pi05_moe_bringup.drivers.config import L515CameraConfig
from pi05_moe_bringup.drivers.grabber import SourceError
from pi05_moe_bringup.drivers.l515_frames import (
    DeviceInfo,
    L515Frame,
    camera_info_from_intrinsics,
    depth_to_mm,
    profile_hint,
    select_device,
    video_frame_to_array,
)


def query_devices(rs: ModuleType, context) -> list[DeviceInfo]:
    """The connected RealSense devices, as plain :class:`DeviceInfo` records."""
    def info(device, field) -> str:
        return device.get_info(field) if device.supports(field) else ''

    return [DeviceInfo(name=info(d, rs.camera_info.name),
                       serial=info(d, rs.camera_info.serial_number),
                       product_line=info(d, rs.camera_info.product_line),
                       firmware=info(d, rs.camera_info.firmware_version))
            for d in context.query_devices()]


def _camera_info(stream_profile, camera_name: str) -> CameraInfoData:
    intr = stream_profile.as_video_stream_profile().get_intrinsics()
    return camera_info_from_intrinsics(intr.width, intr.height, intr.fx, intr.fy, intr.ppx,
                                       intr.ppy, intr.model.name, list(intr.coeffs), camera_name)


class L515Source:
    """An L515 streaming RGB8 colour and Z16 depth; ``read`` returns :class:`L515Frame`."""

    def __init__(self, rs: ModuleType, version: str, cfg: L515CameraConfig):
        self._rs = rs
        self._cfg = cfg
        context = rs.context()
        device = select_device(query_devices(rs, context), cfg.serial)
        config = rs.config()
        config.enable_device(device.serial)
        config.enable_stream(rs.stream.color, cfg.color_width, cfg.color_height, rs.format.rgb8,
                             cfg.fps)
        config.enable_stream(rs.stream.depth, cfg.depth_width, cfg.depth_height, rs.format.z16,
                             cfg.fps)
        self._pipeline = rs.pipeline(context)
        if not config.can_resolve(self._pipeline):
            raise SourceError(f'{device}: ' + profile_hint(
                (cfg.color_width, cfg.color_height), (cfg.depth_width, cfg.depth_height),
                cfg.fps))
        try:
            profile = self._pipeline.start(config)
        except RuntimeError as exc:
            raise SourceError(f'{device}: cannot start streaming: {exc}') from None
        try:
            self._depth_scale = profile.get_device().first_depth_sensor().get_depth_scale()
            self._color_info = _camera_info(profile.get_stream(rs.stream.color), 'l515_color')
            self._depth_info = (self._color_info if cfg.align_depth else
                                _camera_info(profile.get_stream(rs.stream.depth), 'l515_depth'))
        except RuntimeError as exc:  # the device went away while starting
            self.close()
            raise SourceError(f'{device}: cannot read the calibration: {exc}') from None
        self._align = rs.align(rs.stream.color) if cfg.align_depth else None
        self.description = (
            f'{device} firmware {device.firmware}, librealsense {version}: colour '
            f'{cfg.color_width}x{cfg.color_height}, depth {cfg.depth_width}x{cfg.depth_height}'
            f'{" aligned to colour" if cfg.align_depth else ""} @ {cfg.fps} fps, depth unit '
            f'{self._depth_scale * 1000:g} mm')

    def read(self) -> L515Frame:
        deadline = time.monotonic() + self._cfg.frame_timeout_ms / 1000.0
        while True:  # a frameset can lack one stream for a frame (sync): wait for a full one
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                raise SourceError(f'no complete colour + depth frameset for '
                                  f'{self._cfg.frame_timeout_ms} ms')
            try:
                frames = self._pipeline.wait_for_frames(remaining_ms)
            except RuntimeError as exc:
                raise SourceError(f'no frames: {exc}') from None
            if self._align is not None:
                frames = self._align.process(frames)
            color, depth = frames.get_color_frame(), frames.get_depth_frame()
            if color and depth:
                return self._convert(color, depth)

    def _convert(self, color, depth) -> L515Frame:
        rgb = video_frame_to_array(color.get_data(), color.get_width(), color.get_height(),
                                   color.get_stride_in_bytes(), np.uint8, 3)  # (H, W, 3)
        raw = video_frame_to_array(depth.get_data(), depth.get_width(), depth.get_height(),
                                   depth.get_stride_in_bytes(), np.uint16)  # (h, w)
        return L515Frame(rgb, depth_to_mm(raw, self._depth_scale), self._color_info,
                         self._depth_info)

    def close(self) -> None:
        try:
            self._pipeline.stop()
        except RuntimeError:  # never started, or the device is already gone
            pass
