"""l515_frames.py: the L515 driver's pure parts, on plain numbers and buffers (no camera)."""

import importlib.util

import numpy as np
import pytest

from pi05_moe_bringup.drivers.config import L515CameraConfig
from pi05_moe_bringup.drivers.grabber import SourceError
from pi05_moe_bringup.drivers.l515_frames import (
    DeviceInfo,
    L515Error,
    camera_info_from_intrinsics,
    check_librealsense_version,
    depth_to_mm,
    load_pyrealsense2,
    parse_version,
    profile_hint,
    select_device,
    video_frame_to_array,
)

L515 = DeviceInfo('Intel RealSense L515', 'f0140727', 'L500', '01.05.08.01')
D435 = DeviceInfo('Intel RealSense D435', '831612073525', 'D400', '05.13.00.50')
HAS_PYREALSENSE2 = importlib.util.find_spec('pyrealsense2') is not None


def test_version_check_accepts_2_54_and_older_only():
    assert parse_version('2.54.2.5684') == (2, 54, 2, 5684)
    for ok in ('2.54.2.5684', '2.54.1', '2.50.0'):
        check_librealsense_version(ok)
    for too_new in ('2.55.1.6486', '2.59.1.11053', '3.0.0'):
        with pytest.raises(L515Error) as err:
            check_librealsense_version(too_new)
        text = str(err.value)
        assert too_new in text and '2.54' in text and 'pip install "pyrealsense2==2.54.*"' in text
    with pytest.raises(ValueError, match="'2.x'"):
        parse_version('2.x')


@pytest.mark.skipif(HAS_PYREALSENSE2, reason='pyrealsense2 is installed here')
def test_missing_library_says_how_to_install_it():
    with pytest.raises(L515Error) as err:
        load_pyrealsense2()
    text = str(err.value)
    assert 'pyrealsense2 is not importable' in text
    assert 'pyrealsense2==2.54.*' in text and 'realsense2_camera 4.54.1' in text


def test_select_device():
    assert select_device([D435, L515]) == L515
    assert select_device([D435, L515], serial='831612073525') == D435
    with pytest.raises(SourceError, match='no RealSense device found'):
        select_device([])
    with pytest.raises(SourceError) as err:
        select_device([D435])
    assert 'no L515' in str(err.value) and 'D435 (serial 831612073525)' in str(err.value)
    with pytest.raises(SourceError, match=r"serial '123'; found: Intel RealSense L515"):
        select_device([L515], serial='123')


def test_video_frame_to_array_crops_row_padding_and_copies():
    width, height, stride = 3, 2, 16  # 3 RGB pixels = 9 bytes per row, padded to 16
    buf = bytearray(stride * height)
    for y in range(height):
        for x in range(width * 3):
            buf[y * stride + x] = 10 * y + x
    rgb = video_frame_to_array(buf, width, height, stride, np.uint8, 3)
    assert rgb.shape == (2, 3, 3)
    np.testing.assert_array_equal(rgb[1, 2], [16, 17, 18])
    buf[0] = 99  # librealsense reuses the frame memory: the array must not change
    assert rgb[0, 0, 0] == 0


def test_video_frame_to_array_depth_and_size_checks():
    depth = np.array([[1, 2], [3, 65535]], np.uint16)
    out = video_frame_to_array(depth.tobytes(), 2, 2, 4, np.uint16)
    np.testing.assert_array_equal(out, depth)
    with pytest.raises(ValueError, match='too small'):
        video_frame_to_array(b'\0' * 7, 2, 2, 4, np.uint16)


def test_depth_to_mm():
    raw = np.array([[0, 3, 4, 4000, 65535]], np.uint16)
    # L515: 0.25 mm per unit; 0 = no data stays 0
    np.testing.assert_array_equal(depth_to_mm(raw, 0.00025), [[0, 1, 1, 1000, 16384]])
    np.testing.assert_array_equal(depth_to_mm(raw, 0.001), raw)  # D400: already mm
    np.testing.assert_array_equal(depth_to_mm(np.array([[7000]], np.uint16), 0.01), [[65535]])
    assert depth_to_mm(raw, 0.00025).dtype == np.uint16
    with pytest.raises(ValueError, match='positive'):
        depth_to_mm(raw, 0.0)


def test_intrinsics_to_camera_info():
    info = camera_info_from_intrinsics(1280, 720, 908.2, 908.5, 641.1, 362.7,
                                       'inverse_brown_conrady', [0.1, -0.2, 0.001, 0.002, 0.05])
    assert info.distortion_model == 'plumb_bob' and len(info.d) == 5
    assert info.k == (908.2, 0.0, 641.1, 0.0, 908.5, 362.7, 0.0, 0.0, 1.0)
    assert info.p[:4] == (908.2, 0.0, 641.1, 0.0) and info.matches(1280, 720)
    depth = camera_info_from_intrinsics(640, 480, 457.0, 457.1, 320.0, 240.0, 'none', [0] * 5)
    assert depth.d == (0.0,) * 5 and depth.calibrated
    fisheye = camera_info_from_intrinsics(848, 800, 286.0, 286.0, 424.0, 400.0,
                                          'kannala_brandt4', [-0.01, 0.04, -0.04, 0.007, 0.0])
    assert fisheye.distortion_model == 'equidistant' and len(fisheye.d) == 4


def test_profile_hint_lists_the_l515_modes():
    hint = profile_hint((640, 480), (640, 480), 30)
    assert 'color 640x480' in hint and '1280x720' in hint and '1024x768' in hint


def test_config_validation():
    cfg = L515CameraConfig()
    assert (cfg.color_width, cfg.depth_width, cfg.fps) == (1280, 640, 30)
    with pytest.raises(ValueError, match=r'L515CameraConfig.depth_height=0'):
        L515CameraConfig(depth_height=0)
    with pytest.raises(ValueError, match=r'frame_timeout_ms=-1'):
        L515CameraConfig(frame_timeout_ms=-1)
