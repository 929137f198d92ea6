"""l515_camera_node: Intel RealSense L515 through pyrealsense2 2.54.x (for distros after Humble).

Publishes ``/l515/color/image_raw`` (rgb8), ``/l515/depth/image_rect_raw`` (16UC1, millimetres,
converted from the L515's 0.25 mm unit) and both camera_info topics, filled from the device's
intrinsics. On ROS 2 Humble, realsense2_camera 4.54.1 is the alternative
(``config/realsense2_l515_humble.yaml``).

pyrealsense2 is imported when the node starts, not when this module is imported. If it is missing
or newer than 2.54.x (which dropped the L515) the node logs how to install the right version and
exits with status 1. No camera, a camera unplugged mid-run or a stream mode it cannot deliver are
retried with backoff and a warning per attempt.
"""

from __future__ import annotations

from typing import Any

from builtin_interfaces.msg import Time

from pi05_moe_bringup.drivers.config import L515CameraConfig
from pi05_moe_bringup.drivers.l515_capture import L515Source
from pi05_moe_bringup.drivers.l515_frames import L515Frame, load_pyrealsense2
from pi05_moe_bringup.drivers.ros_camera import CameraDriverNode, ImagePublisher, run
from pi05_moe_policy.topics import L515_COLOR, L515_COLOR_INFO, L515_DEPTH, L515_DEPTH_INFO


class L515CameraNode(CameraDriverNode):
    """Publishes each colour + depth frameset with one stamp."""

    def __init__(self, **kwargs: Any):
        super().__init__('l515_camera_node', L515CameraConfig, **kwargs)
        cfg: L515CameraConfig = self.cfg
        rs, version = load_pyrealsense2()  # raises L515Error: the node exits, no retry
        depth_frame = cfg.color_frame_id if cfg.align_depth else cfg.depth_frame_id
        self._color = ImagePublisher(self, L515_COLOR, L515_COLOR_INFO, 'rgb8',
                                     cfg.color_frame_id)
        self._depth = ImagePublisher(self, L515_DEPTH, L515_DEPTH_INFO, '16UC1', depth_frame)
        self.start_capture('L515', lambda: L515Source(rs, version, cfg), cfg.reconnect)

    def publish_frame(self, data: L515Frame, stamp: Time) -> None:
        self._color.publish(data.color, stamp, data.color_info)  # (H, W, 3) uint8
        self._depth.publish(data.depth_mm, stamp, data.depth_info)  # (h, w) uint16 mm


def main(args: list[str] | None = None) -> int:
    return run(L515CameraNode, 'l515_camera_node', args)


if __name__ == '__main__':
    raise SystemExit(main())
