"""One validated config dataclass per camera driver; their fields are the nodes' ROS parameters.

Pure (no rclpy): the nodes declare them with ``ros_params.declare_config`` and the bringup YAML
is checked against them. Topics are not parameters; remap them (defaults in each node module).
"""

from __future__ import annotations

from dataclasses import dataclass

from pi05_moe_bringup.drivers.grabber import ReconnectConfig
from pi05_moe_bringup.drivers.thermal_colormap import COLORMAPS
from pi05_moe_bringup.drivers.thermal_decode import SENSORS
from pi05_moe_bringup.drivers.uvc_capture import fourcc_code, parse_device
from pi05_moe_policy.params import check, param


def _check_device(cfg, name: str = 'device') -> None:
    try:
        parse_device(getattr(cfg, name))
    except ValueError:
        check(False, cfg, name, "an index like '0', a /dev/... path or a video file")


def _check_size_rate(cfg, width: str, height: str, fps: str) -> None:
    check(getattr(cfg, width) > 0, cfg, width, 'a positive number of pixels')
    check(getattr(cfg, height) > 0, cfg, height, 'a positive number of pixels')
    check(getattr(cfg, fps) > 0, cfg, fps, 'a positive frame rate')


@dataclass
class UvcCameraConfig:
    """uvc_camera_node: a UVC (or any V4L2/OpenCV) colour camera, published as rgb8."""

    device: str = param('/dev/video0', "V4L2 index ('0'), /dev path (prefer /dev/v4l/by-id/...), "
                        'or a video file played in real time')
    width: int = param(640, 'requested image width (the camera may pick the nearest mode)')
    height: int = param(480, 'requested image height')
    fps: float = param(30.0, 'requested frame rate; also the playback rate of a video file')
    fourcc: str = param('MJPG', "requested pixel format (MJPG, YUYV, ...); '' keeps the "
                        "camera's default")
    frame_id: str = param('wrist_camera_optical_frame', 'header.frame_id of image and info')
    camera_info_file: str = param('', "camera_calibration YAML for camera_info; '' publishes "
                                  'only the image size (uncalibrated)')
    reconnect: ReconnectConfig = param(ReconnectConfig(), 'retry timing for a lost camera')

    def __post_init__(self):
        _check_device(self)
        _check_size_rate(self, 'width', 'height', 'fps')
        if self.fourcc:
            try:
                fourcc_code(self.fourcc)
            except ValueError:
                check(False, self, 'fourcc', "1-4 ASCII characters like 'MJPG', or ''")


@dataclass
class ThermalCameraConfig:
    """thermal_camera_node: Y16 over UVC (Lepton/PureThermal), mono16 + an rgb8 preview."""

    device: str = param('/dev/video0', "V4L2 index, /dev path (prefer /dev/v4l/by-id/usb-"
                        "GroupGets_PureThermal...), or a 16-bit video file (FFV1)")
    width: int = param(160, 'requested width (Lepton 3.x: 160, Lepton 2.x: 80)')
    height: int = param(120, 'requested height (Lepton 3.x: 120, Lepton 2.x: 60)')
    fps: float = param(9.0, 'requested frame rate (a Lepton delivers ~8.7 Hz)')
    sensor: str = param('lepton_radiometric', 'lepton_radiometric: values are centi-Kelvin, '
                        '°C = (v - 27315) / 100; boson_raw16: RAW16 counts, NOT temperatures')
    preview_min_c: float = param(15.0, 'preview colour window: this °C and colder is darkest')
    preview_max_c: float = param(45.0, 'preview colour window: this °C and hotter is brightest')
    preview_auto_range: bool = param(False, 'auto-range the preview per frame instead (always '
                                     'so for boson_raw16)')
    colormap: str = param('inferno', f'preview colormap: {", ".join(COLORMAPS)}')
    frame_id: str = param('thermal_optical_frame', 'header.frame_id of all thermal messages')
    camera_info_file: str = param('', "camera_calibration YAML for camera_info; '' publishes "
                                  'only the image size (uncalibrated)')
    reconnect: ReconnectConfig = param(ReconnectConfig(), 'retry timing for a lost camera')

    def __post_init__(self):
        _check_device(self)
        _check_size_rate(self, 'width', 'height', 'fps')
        check(self.sensor in SENSORS, self, 'sensor', f'one of {", ".join(SENSORS)}')
        check(self.preview_max_c > self.preview_min_c, self, 'preview_max_c',
              f'> preview_min_c ({self.preview_min_c})')
        check(self.colormap in COLORMAPS, self, 'colormap', f'one of {", ".join(COLORMAPS)}')

    @property
    def preview_window_c(self) -> tuple[float, float] | None:
        """The fixed preview window in °C, or None for auto-ranging."""
        if self.preview_auto_range or self.sensor != 'lepton_radiometric':
            return None
        return (self.preview_min_c, self.preview_max_c)


@dataclass
class L515CameraConfig:
    """l515_camera_node: an Intel RealSense L515 through pyrealsense2 2.54.x."""

    serial: str = param('', "serial number of the camera; '' takes the first L515")
    color_width: int = param(1280, 'colour width (L515: 1920, 1280 or 960)')
    color_height: int = param(720, 'colour height (L515: 1080, 720 or 540)')
    depth_width: int = param(640, 'depth width (L515: 1024, 640 or 320)')
    depth_height: int = param(480, 'depth height (L515: 768, 480 or 240)')
    fps: int = param(30, 'frame rate of both streams')
    align_depth: bool = param(False, 'align depth to the colour camera (depth then has the '
                              "colour image's size, intrinsics and frame_id)")
    color_frame_id: str = param('l515_color_optical_frame', 'header.frame_id of colour')
    depth_frame_id: str = param('l515_depth_optical_frame', 'header.frame_id of depth')
    frame_timeout_ms: int = param(2000, 'a frameset not arriving within this counts as a lost '
                                  'camera (reconnect)')
    reconnect: ReconnectConfig = param(ReconnectConfig(), 'retry timing for a lost camera')

    def __post_init__(self):
        _check_size_rate(self, 'color_width', 'color_height', 'fps')
        _check_size_rate(self, 'depth_width', 'depth_height', 'fps')
        check(self.frame_timeout_ms > 0, self, 'frame_timeout_ms', 'a positive number of ms')
