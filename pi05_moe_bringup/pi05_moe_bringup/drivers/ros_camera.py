"""rclpy plumbing shared by the camera driver nodes: capture wake-up, stamps, publishers, main().

A driver node subclasses :class:`CameraDriverNode`: it declares its config, creates
:class:`ImagePublisher` s and calls :meth:`CameraDriverNode.start_capture`. The capture thread
(:class:`.grabber.FrameGrabber`) triggers a guard condition for every new frame; the executor then
runs :meth:`CameraDriverNode.publish_frame` with the newest frame only. No callback ever waits on
the device.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from rclpy.duration import Duration
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from pi05_moe_bringup.drivers.camera_info import CameraInfoData, fill_camera_info, uncalibrated
from pi05_moe_bringup.drivers.grabber import FrameGrabber, ReconnectConfig, Source
from pi05_moe_bringup.drivers.l515_frames import L515Error
from pi05_moe_policy.core.image_codec import numpy_to_image
from pi05_moe_policy.nodes import qos
from pi05_moe_policy.nodes.main import run_node
from pi05_moe_policy.nodes.ros_params import declare_config


class ImagePublisher:
    """An Image topic and, optionally, its CameraInfo topic, stamped with one shared header."""

    def __init__(self, node: Node, image_topic: str, info_topic: str | None, encoding: str,
                 frame_id: str, calibration: CameraInfoData | None = None):
        self._node = node
        self.topic = image_topic
        self.encoding = encoding
        self.frame_id = frame_id
        self.calibration = calibration
        self._image_pub = node.create_publisher(Image, image_topic, qos.SENSOR)
        self._info_pub = (node.create_publisher(CameraInfo, info_topic, qos.SENSOR)
                          if info_topic else None)
        self._size_warned = False

    def publish(self, array: np.ndarray, stamp: Time,
                calibration: CameraInfoData | None = None) -> None:
        """Publish ``array`` (and camera_info: ``calibration``, else the fixed one, else only the
        image size)."""
        header = Header(stamp=stamp, frame_id=self.frame_id)
        msg = numpy_to_image(array, self.encoding, Image(), self.topic)
        msg.header = header
        self._image_pub.publish(msg)
        if self._info_pub is None:
            return
        info = calibration or self.calibration
        if info is not None and not info.matches(msg.width, msg.height):
            if not self._size_warned:
                self._node.get_logger().warning(
                    f'{self.topic}: the calibration is for {info.width}x{info.height} but the '
                    f'camera delivers {msg.width}x{msg.height}; publishing an uncalibrated '
                    'camera_info (recalibrate, or request the calibrated size)')
                self._size_warned = True
            info = None
        info_msg = fill_camera_info(CameraInfo(), info or uncalibrated(msg.width, msg.height))
        info_msg.header = header
        self._info_pub.publish(info_msg)


class CameraDriverNode(Node):
    """Base of the driver nodes: config from parameters, a capture thread, publishing on wake."""

    def __init__(self, name: str, config_cls: type, **kwargs: Any):
        super().__init__(name, **kwargs)
        self.cfg = declare_config(self, config_cls)
        self._grabber: FrameGrabber | None = None

    def start_capture(self, label: str, open_source: Callable[[], Source],
                      reconnect: ReconnectConfig) -> None:
        """Start reading in a thread; ``label`` (the main topic) prefixes its log lines."""
        wake = self.create_guard_condition(self._on_frame)
        self._grabber = FrameGrabber(label, open_source, self.get_logger(), reconnect,
                                     on_frame=wake.trigger).start()

    def publish_frame(self, data: Any, stamp: Time) -> None:
        """Publish one frame's payload (as returned by the source's ``read``)."""
        raise NotImplementedError

    def _on_frame(self) -> None:
        frame = self._grabber.take()
        if frame is not None:
            self.publish_frame(frame.data, self._stamp(frame.t_mono))

    def _stamp(self, t_mono: float) -> Time:
        """The ROS time at which the frame was read (now, minus how long it waited)."""
        waited_ns = int((time.monotonic() - t_mono) * 1e9)
        return (self.get_clock().now() - Duration(nanoseconds=waited_ns)).to_msg()

    def destroy_node(self) -> None:
        if self._grabber is not None:
            self._grabber.stop()
        super().destroy_node()


def run(node_cls: Callable[[], Node], name: str, args: list[str] | None = None) -> int:
    """Body of a driver's ``main()``; see :func:`pi05_moe_policy.nodes.main.run_node`.

    A bad parameter, calibration file or library stops the node at start with one clear line and
    status 1 (no retry can fix those); device problems never do, the capture thread retries them.
    """
    return run_node(node_cls, name, args, fatal=(L515Error, ValueError))
