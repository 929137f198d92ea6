"""thermal_camera_node: Y16 thermal camera -> /thermal/image_raw mono16 + image_color rgb8.

For a FLIR Lepton on a PureThermal board (radiometry on) ``image_raw`` holds centi-Kelvin,
published unchanged: °C = (v - 27315) / 100. ``image_color`` is a false-colour preview over a
fixed °C window (``preview_min_c``..``preview_max_c``) or auto-ranged. ``sensor: boson_raw16``
publishes a Boson's RAW16 *counts* unchanged; the node says so at start, since consumers that
expect centi-Kelvin (the policy) would misread them.

Capture and decoding (Y16 check, preview) run in the capture thread; this node only publishes.

    thermal_camera_node --ros-args -p device:=/dev/v4l/by-id/usb-GroupGets_PureThermal...-index0
"""

from __future__ import annotations

from typing import Any

from builtin_interfaces.msg import Time

from pi05_moe_bringup.drivers.camera_info import load_calibration
from pi05_moe_bringup.drivers.config import ThermalCameraConfig
from pi05_moe_bringup.drivers.ros_camera import CameraDriverNode, ImagePublisher, run
from pi05_moe_bringup.drivers.thermal_decode import SENSORS, ThermalDecoder, ThermalFrame
from pi05_moe_bringup.drivers.uvc_capture import CaptureSpec, OpenCvSource
from pi05_moe_policy.topics import THERMAL_COLOR, THERMAL_IMAGE, THERMAL_INFO

WARNING_PERIOD_S = 10.0  # radiometry warnings repeat at most this often


class ThermalCameraNode(CameraDriverNode):
    """Publishes the raw Y16 frame, its preview and camera_info, all with one stamp."""

    def __init__(self, **kwargs: Any):
        super().__init__('thermal_camera_node', ThermalCameraConfig, **kwargs)
        cfg: ThermalCameraConfig = self.cfg
        calibration = load_calibration(cfg.camera_info_file) if cfg.camera_info_file else None
        self._raw = ImagePublisher(self, THERMAL_IMAGE, THERMAL_INFO, 'mono16', cfg.frame_id,
                                   calibration)
        self._color = ImagePublisher(self, THERMAL_COLOR, None, 'rgb8', cfg.frame_id)
        window = cfg.preview_window_c
        decoder = ThermalDecoder(cfg.sensor, window, cfg.colormap)
        preview = (f'{window[0]:g}..{window[1]:g} °C' if window else 'auto-ranged per frame')
        log = self.get_logger().warning if cfg.sensor == 'boson_raw16' else self.get_logger().info
        log(f'{THERMAL_IMAGE} carries {SENSORS[cfg.sensor]}; {THERMAL_COLOR} preview: {preview}, '
            f'{cfg.colormap}')
        spec = CaptureSpec(cfg.device, cfg.width, cfg.height, cfg.fps, fourcc='Y16',
                           convert_rgb=False)
        self.start_capture(THERMAL_IMAGE, lambda: OpenCvSource(spec, decoder), cfg.reconnect)

    def publish_frame(self, data: ThermalFrame, stamp: Time) -> None:
        self._raw.publish(data.raw, stamp)  # (H, W) uint16
        self._color.publish(data.color, stamp)  # (H, W, 3) uint8
        if data.warning:
            self.get_logger().warning(f'{THERMAL_IMAGE}: {data.warning}',
                                      throttle_duration_sec=WARNING_PERIOD_S)


def main(args: list[str] | None = None) -> int:
    return run(ThermalCameraNode, 'thermal_camera_node', args)


if __name__ == '__main__':
    raise SystemExit(main())
