"""Camera driver nodes in their own processes, over real DDS, fed through OpenCV's real capture.

There is no camera here, so ``device`` points at video files the tests write: MJPG for the wrist
camera and lossless 16-bit FFV1 for the thermal camera. That exercises the whole node (parameters,
capture thread, reconnect, decoding, publishing) through ``cv2.VideoCapture`` with the FFmpeg
backend; only the V4L2 ioctls of a real device are not covered. The L515 node is checked for what
this machine has: no pyrealsense2 (a clear exit), or pyrealsense2 without a camera (it waits).
"""

import sys
import time
from collections import defaultdict

import numpy as np
import pytest
import yaml
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from pi05_moe_bringup.drivers.camera_info import calibration_document, from_intrinsics
from pi05_moe_bringup.drivers.l515_frames import L515Error, load_pyrealsense2
from pi05_moe_bringup.drivers.recordings import write_color_video, write_y16_video
from pi05_moe_bringup.drivers.thermal_colormap import colorize
from pi05_moe_bringup.drivers.thermal_decode import to_centi_kelvin
from pi05_moe_policy import topics
from pi05_moe_policy.core.image_codec import image_to_numpy
from pi05_moe_policy.nodes import qos

IMAGES = [topics.WRIST_IMAGE, topics.THERMAL_IMAGE, topics.THERMAL_COLOR, topics.L515_COLOR,
          topics.L515_DEPTH]
INFOS = [topics.WRIST_INFO, topics.THERMAL_INFO, topics.L515_COLOR_INFO, topics.L515_DEPTH_INFO]


class Probe(Node):
    """Records every message on the drivers' topics."""

    def __init__(self, context):
        super().__init__('driver_probe', context=context)
        self.msgs = defaultdict(list)  # emptied by each test: look the list up per message
        for msg_type, names in ((Image, IMAGES), (CameraInfo, INFOS)):
            for topic in names:
                self.create_subscription(msg_type, topic,
                                         lambda msg, t=topic: self.msgs[t].append(msg),
                                         qos.SENSOR)


@pytest.fixture(scope='module')
def probe(ros):
    return ros.add(Probe(ros.context))


@pytest.fixture
def msgs(probe):
    probe.msgs.clear()
    return probe.msgs


@pytest.fixture
def drivers(spawn_each):
    """``drivers(module, **params)``: one driver node process (``python -m``), stopped at the
    end of the test; ``a__b=v`` gives the parameter ``a.b:=v``."""
    def start(module, **params):
        args = []
        for name, value in params.items():
            args += ['-p', f'{name.replace("__", ".")}:={value}']
        return spawn_each([sys.executable, '-m', f'pi05_moe_bringup.drivers.{module}',
                           '--ros-args', *args])

    return start


def red_blue_video(path, width=96, height=64, n=15):
    """Left half red, right half blue: RGB vs BGR survives JPEG."""
    frame = np.zeros((height, width, 3), np.uint8)
    frame[:, : width // 2] = (230, 20, 20)
    frame[:, width // 2:] = (20, 20, 230)
    write_color_video(path, [frame] * n)


def stamp_s(msg):
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def test_uvc_node_publishes_rgb8_and_calibrated_camera_info(tmp_path, msgs, drivers,
                                                            wait_until):
    video = tmp_path / 'wrist.avi'
    red_blue_video(video)
    calibration = from_intrinsics(96, 64, 80.0, 81.0, 47.5, 31.5, [0.1, 0.0, 0.0, 0.0, 0.0])
    cal_file = tmp_path / 'wrist.yaml'
    cal_file.write_text(yaml.safe_dump(calibration_document(calibration)))
    node = drivers('uvc_camera_node', device=video, frame_id='test_wrist',
                   camera_info_file=cal_file)
    wait_until(lambda: len(msgs[topics.WRIST_IMAGE]) >= 5 and len(msgs[topics.WRIST_INFO]) >= 5,
               20.0, 'wrist images', process=node)
    images, infos = msgs[topics.WRIST_IMAGE][:5], msgs[topics.WRIST_INFO][:5]
    for msg in images:
        assert (msg.encoding, msg.width, msg.height) == ('rgb8', 96, 64)
        assert msg.header.frame_id == 'test_wrist'
        rgb = image_to_numpy(msg)
        left, right = rgb[:, :40].mean(axis=(0, 1)), rgb[:, 56:].mean(axis=(0, 1))
        assert left[0] > 180 and left[2] < 60 and right[2] > 180 and right[0] < 60
    stamps = [stamp_s(m) for m in images]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    assert abs(stamps[-1] - time.time()) < 30  # wall-clock ROS time, not zero
    info_by_stamp = {stamp_s(i): i for i in infos}
    info = info_by_stamp[stamps[0]]  # one camera_info per image, same stamp
    np.testing.assert_allclose(info.k, calibration.k)
    np.testing.assert_allclose(info.d, calibration.d)
    assert (info.width, info.height, info.header.frame_id) == (96, 64, 'test_wrist')
    assert node.stop() == 0, node.tail()


def test_uvc_node_waits_for_a_missing_camera_then_streams(tmp_path, msgs, drivers, wait_until):
    video = tmp_path / 'plugged_in_later.avi'
    node = drivers('uvc_camera_node', device=video, reconnect__initial_s=0.2,
                   reconnect__max_s=0.4)
    wait_until(lambda: node.text.count('no such file') >= 3, 20.0, 'retries in the log',
               process=node)
    assert node.alive and not msgs[topics.WRIST_IMAGE]
    assert 'retrying in' in node.text
    red_blue_video(video)
    wait_until(lambda: len(msgs[topics.WRIST_IMAGE]) >= 3, 20.0, 'images', process=node)
    assert node.alive and 'streaming from' in node.text
    assert node.stop() == 0, node.tail()


def test_thermal_node_publishes_centi_kelvin_and_a_preview(tmp_path, msgs, drivers,
                                                           wait_until):
    frame = np.empty((120, 160), np.uint16)
    frame[:, :80] = to_centi_kelvin(20.0)
    frame[:, 80:] = to_centi_kelvin(40.0)
    frame[50:60, 100:110] = to_centi_kelvin(60.0)  # a hot cube
    video = tmp_path / 'thermal.mkv'
    write_y16_video(video, [frame] * 10)
    node = drivers('thermal_camera_node', device=video, frame_id='test_thermal',
                   preview_min_c=15.0, preview_max_c=45.0)
    wait_until(lambda: len(msgs[topics.THERMAL_IMAGE]) >= 3
               and len(msgs[topics.THERMAL_COLOR]) >= 3 and msgs[topics.THERMAL_INFO],
               20.0, 'thermal images', process=node)
    raw_msg = msgs[topics.THERMAL_IMAGE][0]
    assert (raw_msg.encoding, raw_msg.width, raw_msg.height) == ('mono16', 160, 120)
    assert raw_msg.header.frame_id == 'test_thermal'
    np.testing.assert_array_equal(image_to_numpy(raw_msg), frame)  # centi-Kelvin, unchanged
    color_msg = next(m for m in msgs[topics.THERMAL_COLOR] if stamp_s(m) == stamp_s(raw_msg))
    assert color_msg.encoding == 'rgb8' and color_msg.header.frame_id == 'test_thermal'
    rgb = image_to_numpy(color_msg)
    np.testing.assert_array_equal(rgb, colorize(frame, *to_centi_kelvin(np.array([15.0, 45.0])),
                                                'inferno'))
    brightness = rgb.astype(int).sum(axis=2)
    assert brightness[0, 0] < brightness[0, 159] <= brightness[55, 105]  # 20 < 40 <= 60 °C
    info = msgs[topics.THERMAL_INFO][0]
    assert (info.width, info.height) == (160, 120) and not any(info.k)  # uncalibrated
    assert 'centi-Kelvin' in node.text
    assert node.stop() == 0, node.tail()


def test_thermal_node_rejects_8_bit_video_and_keeps_retrying(tmp_path, msgs, drivers,
                                                             wait_until):
    video = tmp_path / 'agc_8bit.avi'
    red_blue_video(video, width=160, height=120)
    node = drivers('thermal_camera_node', device=video, reconnect__initial_s=0.2,
                   reconnect__max_s=0.4)
    wait_until(lambda: node.text.count('wrong pixel format') >= 2, 20.0, 'format errors',
               process=node)
    assert 'expected (H, W) uint16 Y16' in node.text and 'retrying in' in node.text
    assert node.alive and not msgs[topics.THERMAL_IMAGE]
    assert node.stop() == 0, node.tail()


def library_problem():
    """None when pyrealsense2 2.54.x is importable here, else why not."""
    try:
        load_pyrealsense2()
    except L515Error as exc:
        return str(exc)
    return None


@pytest.mark.skipif(library_problem() is None, reason='a usable pyrealsense2 is installed')
def test_l515_node_without_a_usable_pyrealsense2_exits_with_instructions(drivers):
    node = drivers('l515_camera_node')
    node.proc.wait(timeout=30)
    assert node.stop() == 1  # it exited with 1; stop() also collects its last lines
    log = node.text
    assert 'pyrealsense2==2.54.*' in log and 'Traceback' not in log


@pytest.mark.skipif(library_problem() is not None, reason='no usable pyrealsense2 here')
def test_l515_node_streams_or_waits_for_the_camera(msgs, drivers, wait_until):
    node = drivers('l515_camera_node', reconnect__initial_s=0.2, reconnect__max_s=0.4)
    wait_until(lambda: 'streaming from' in node.text or 'no RealSense device' in node.text
               or 'no L515' in node.text, 20.0, 'the camera or its absence', process=node)
    if 'streaming from' in node.text:  # a robot with its L515 attached
        wait_until(lambda: msgs[topics.L515_COLOR] and msgs[topics.L515_DEPTH], 20.0, 'frames',
                   process=node)
        assert msgs[topics.L515_COLOR][0].encoding == 'rgb8'
        assert msgs[topics.L515_DEPTH][0].encoding == '16UC1'
    assert node.alive
    assert node.stop() == 0, node.tail()
