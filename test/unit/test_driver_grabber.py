"""grabber.py: backoff, the drop-oldest slot and the capture thread over real OpenCV sources."""

import logging
import threading
import time

import numpy as np
import pytest

from pi05_moe_bringup.drivers.grabber import (
    Backoff,
    FrameGrabber,
    LatestSlot,
    ReconnectConfig,
)
from pi05_moe_bringup.drivers.recordings import write_color_video
from pi05_moe_bringup.drivers.uvc_capture import CaptureSpec, OpenCvSource, bgr_to_rgb8

FAST = ReconnectConfig(initial_s=0.05, max_s=0.2)


class Records(logging.Handler):
    """Keeps the grabber's log lines."""

    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append((record.levelname, record.getMessage()))

    def warnings(self):
        return [text for level, text in self.lines if level == 'WARNING']


@pytest.fixture
def log():
    logger = logging.getLogger(f'grabber-test-{time.monotonic_ns()}')
    logger.setLevel(logging.INFO)
    records = Records()
    logger.addHandler(records)
    logger.records = records
    return logger


def wait_until(predicate, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, 'timed out'
        time.sleep(0.01)


def video(path, n=6):
    frames = [np.full((24, 32, 3), 8 * i % 256, np.uint8) for i in range(n)]
    write_color_video(path, frames, fps=30)
    return path


def file_source(path, fps=60.0):
    spec = CaptureSpec(str(path), 32, 24, fps)
    return lambda: OpenCvSource(spec, bgr_to_rgb8)


def test_backoff_doubles_up_to_the_cap_and_resets():
    backoff = Backoff(ReconnectConfig(initial_s=0.5, max_s=5.0))
    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_reconnect_config_quotes_bad_values():
    with pytest.raises(ValueError, match=r'ReconnectConfig.initial_s=0.0'):
        ReconnectConfig(initial_s=0.0)
    with pytest.raises(ValueError, match=r'max_s=0.1: expected >= initial_s'):
        ReconnectConfig(initial_s=0.5, max_s=0.1)


def test_latest_slot_keeps_only_the_newest():
    slot = LatestSlot()
    assert slot.take() is None
    for i in range(5):
        slot.put(i)
    assert slot.take() == 4 and slot.take() is None and slot.dropped == 4
    slot.put('a')
    assert slot.take() == 'a' and slot.dropped == 4


def test_streams_a_file_and_reopens_it_at_its_end(tmp_path, log):
    woken = threading.Event()
    grabber = FrameGrabber('cam', file_source(video(tmp_path / 'a.avi')), log, FAST,
                           on_frame=woken.set).start()
    try:
        assert woken.wait(5.0)
        wait_until(lambda: grabber.frames >= 15)  # 6 frames per pass: reopened at least twice
    finally:
        grabber.stop()
    assert grabber.failures >= 2 and not grabber._thread.is_alive()
    assert any('end of file' in w and 'retrying in 0.05 s' in w for w in log.records.warnings())
    assert sum('streaming from' in text for _, text in log.records.lines) >= 3
    frame = grabber.take()
    assert frame is None or frame.data.shape == (24, 32, 3)


def test_keeps_only_the_newest_frame_for_a_slow_consumer(tmp_path, log):
    grabber = FrameGrabber('cam', file_source(video(tmp_path / 'a.avi', n=30), fps=200), log,
                           FAST).start()
    try:
        wait_until(lambda: grabber.frames >= 20)
        frame = grabber.take()
    finally:
        grabber.stop()
    assert frame.seq >= 19 and grabber.dropped >= 18  # older frames were replaced, not queued
    assert frame.t_mono <= time.monotonic()


def test_waits_for_a_missing_device_with_backoff_then_streams(tmp_path, log):
    path = tmp_path / 'late.avi'
    grabber = FrameGrabber('cam', file_source(path), log, FAST).start()
    try:
        wait_until(lambda: grabber.failures >= 4)
        assert not grabber.connected and grabber.frames == 0
        video(path)  # the camera is plugged in
        wait_until(lambda: grabber.frames >= 1)
    finally:
        grabber.stop()
    warnings = log.records.warnings()
    assert 'no such file' in warnings[0] and 'retrying in 0.05 s (failure 1)' in warnings[0]
    delays = [float(w.split('retrying in ')[1].split(' s')[0]) for w in warnings[:4]]
    assert delays == [0.05, 0.1, 0.2, 0.2]  # doubling, capped at max_s


def test_unexpected_errors_are_logged_with_their_type_and_retried(log):
    spec = CaptureSpec('', 32, 24, 30.0)  # an empty device: parse_device raises ValueError
    grabber = FrameGrabber('cam', lambda: OpenCvSource(spec, bgr_to_rgb8), log, FAST).start()
    try:
        wait_until(lambda: grabber.failures >= 2)
    finally:
        grabber.stop()
    assert 'cannot open the camera: ValueError: device is empty' in log.records.warnings()[0]
