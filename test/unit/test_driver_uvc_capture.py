"""uvc_capture.py through real OpenCV capture of files written by the test (no camera needed)."""

import time

import cv2
import numpy as np
import pytest

from pi05_moe_bringup.drivers.grabber import SourceError
from pi05_moe_bringup.drivers.recordings import write_color_video, write_y16_video
from pi05_moe_bringup.drivers.uvc_capture import (
    CaptureSpec,
    OpenCvSource,
    bgr_to_rgb8,
    fourcc_code,
    fourcc_text,
    parse_device,
)

RED, BLUE = (230, 20, 20), (20, 20, 230)  # RGB


def red_blue_frames(n=10, width=64, height=48):
    """Left half red, right half blue: tells RGB from BGR after a JPEG round trip."""
    frame = np.zeros((height, width, 3), np.uint8)
    frame[:, : width // 2] = RED
    frame[:, width // 2:] = BLUE
    return [frame] * n


def spec(device, fps=30.0, **kw):
    return CaptureSpec(str(device), 64, 48, fps, **kw)


def test_parse_device():
    assert parse_device('0') == (0, cv2.CAP_V4L2, True)
    assert parse_device('/dev/v4l/by-id/usb-cam-video-index0')[1:] == (cv2.CAP_V4L2, True)
    assert parse_device('/data/wrist.avi') == ('/data/wrist.avi', cv2.CAP_ANY, False)
    with pytest.raises(ValueError, match='empty'):
        parse_device('  ')


def test_fourcc_round_trip():
    assert fourcc_text(fourcc_code('MJPG')) == 'MJPG'
    assert fourcc_code('Y16') == cv2.VideoWriter_fourcc('Y', '1', '6', ' ')
    assert fourcc_text(fourcc_code('Y16')) == 'Y16' and fourcc_text(0.0) == ''
    with pytest.raises(ValueError, match='MJPG'):
        fourcc_code('TOOLONG')


def test_bgr_to_rgb8_orders_channels_and_rejects_other_formats():
    bgr = np.zeros((2, 3, 3), np.uint8)
    bgr[..., 0] = 255  # blue in OpenCV's order
    rgb = bgr_to_rgb8(bgr)
    assert rgb.shape == (2, 3, 3) and (rgb[..., 2] == 255).all() and not rgb[..., 0].any()
    grey = bgr_to_rgb8(np.full((2, 3), 7, np.uint8))
    assert grey.shape == (2, 3, 3) and (grey == 7).all()
    with pytest.raises(ValueError, match='16-bit'):
        bgr_to_rgb8(np.zeros((2, 3), np.uint16))
    with pytest.raises(ValueError, match='compressed'):
        bgr_to_rgb8(np.zeros((1, 500), np.uint8))


def test_reads_a_colour_video_as_rgb(tmp_path):
    path = tmp_path / 'wrist.avi'
    write_color_video(path, red_blue_frames(5))
    source = OpenCvSource(spec(path), bgr_to_rgb8)
    try:
        assert '64x48 MJPG' in source.description and not source.live
        frames = [source.read() for _ in range(5)]
        with pytest.raises(SourceError, match='end of file'):
            source.read()
    finally:
        source.close()
    for rgb in frames:
        assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8
        left, right = rgb[:, :24].mean(axis=(0, 1)), rgb[:, 40:].mean(axis=(0, 1))
        assert left[0] > 180 > 60 > left[2] and right[2] > 180 > 60 > right[0]


def test_a_file_plays_back_in_real_time(tmp_path):
    path = tmp_path / 'wrist.avi'
    write_color_video(path, red_blue_frames(11))
    source = OpenCvSource(spec(path, fps=50.0), bgr_to_rgb8)
    start = time.monotonic()
    for _ in range(11):
        source.read()
    elapsed = time.monotonic() - start
    source.close()
    assert 0.19 <= elapsed < 1.0  # 10 frame periods of 20 ms after the first frame


def test_reads_y16_exactly_with_rgb_conversion_off(tmp_path):
    path = tmp_path / 'thermal.mkv'
    frames = [(np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) + 29315 + i)
              for i in range(3)]
    write_y16_video(path, frames)
    source = OpenCvSource(spec(path, fourcc='Y16', convert_rgb=False), lambda f: f)
    try:
        for expected in frames:
            got = source.read()
            assert got.dtype == np.uint16 and got.shape == (48, 64)
            np.testing.assert_array_equal(got, expected)
    finally:
        source.close()


def test_wrong_pixel_format_is_a_source_error(tmp_path):
    path = tmp_path / 'thermal.mkv'
    write_y16_video(path, [np.full((48, 64), 30000, np.uint16)])
    source = OpenCvSource(spec(path, convert_rgb=False), bgr_to_rgb8)
    with pytest.raises(SourceError, match=r'wrong pixel format .*16-bit'):
        source.read()
    source.close()


def test_missing_devices_and_files_are_source_errors(tmp_path):
    with pytest.raises(SourceError, match=r"no such device '/dev/video97'.*unplugged"):
        OpenCvSource(spec('97'), bgr_to_rgb8)
    with pytest.raises(SourceError, match='no such file'):
        OpenCvSource(spec(tmp_path / 'missing.avi'), bgr_to_rgb8)
    junk = tmp_path / 'junk.avi'
    junk.write_bytes(b'not a video at all' * 10)
    with pytest.raises(SourceError, match='could not open'):
        OpenCvSource(spec(junk), bgr_to_rgb8)
