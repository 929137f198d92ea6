"""uvc_camera_node: a UVC colour camera (the wrist camera) -> /wrist/image_raw rgb8 + camera_info.

Capture runs in a thread (:class:`.uvc_capture.OpenCvSource` inside a
:class:`.grabber.FrameGrabber`); this node only publishes. A missing or unplugged camera, or
frames of the wrong format, give one warning per retry and a reconnect with backoff.

    uvc_camera_node --ros-args -p device:=/dev/v4l/by-id/usb-...-video-index0 -p width:=640
"""

from __future__ import annotations

from typing import Any

from builtin_interfaces.msg import Time

from pi05_moe_bringup.drivers.camera_info import load_calibration
from pi05_moe_bringup.drivers.config import UvcCameraConfig
from pi05_moe_bringup.drivers.ros_camera import CameraDriverNode, ImagePublisher, run
from pi05_moe_bringup.drivers.uvc_capture import CaptureSpec, OpenCvSource, bgr_to_rgb8
from pi05_moe_policy.topics import WRIST_IMAGE, WRIST_INFO


class UvcCameraNode(CameraDriverNode):
    """Publishes every captured frame as rgb8 with a camera_info of the same stamp."""

    def __init__(self, **kwargs: Any):
        super().__init__('uvc_camera_node', UvcCameraConfig, **kwargs)
        cfg: UvcCameraConfig = self.cfg
        calibration = load_calibration(cfg.camera_info_file) if cfg.camera_info_file else None
        self._out = ImagePublisher(self, WRIST_IMAGE, WRIST_INFO, 'rgb8', cfg.frame_id,
                                   calibration)
        spec = CaptureSpec(cfg.device, cfg.width, cfg.height, cfg.fps, cfg.fourcc)
        self.start_capture(WRIST_IMAGE, lambda: OpenCvSource(spec, bgr_to_rgb8), cfg.reconnect)

    def publish_frame(self, data: Any, stamp: Time) -> None:
        self._out.publish(data, stamp)  # (H, W, 3) uint8 RGB


def main(args: list[str] | None = None) -> int:
    return run(UvcCameraNode, 'uvc_camera_node', args)


if __name__ == '__main__':
    raise SystemExit(main())
