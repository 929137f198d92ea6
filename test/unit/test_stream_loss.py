"""Loss upstream of the recorder: header-stamp gaps and received vs expected rate (pure)."""

import json

import numpy as np
import pytest
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray

from pi05_moe_training.bags.episode_meta import EpisodeMeta
from pi05_moe_training.bags.reader import BagReader
from pi05_moe_training.bags.typestore import make_typestore
from pi05_moe_training.record.recording import STREAMS_KEY, EpisodeRecorder, RecorderConfig
from pi05_moe_training.record.stream_loss import (
    StreamMonitor,
    header_stamp_ns,
    parse_expected_hz,
)

S = 1_000_000_000


def feed(monitor: StreamMonitor, stamps_ns, receive_offset: int = 5_000_000) -> StreamMonitor:
    for t in stamps_ns:
        monitor.add(t + receive_offset, t)
    return monitor


def test_header_stamp_is_read_from_cdr_bytes():
    msg = Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1234, 567_890_123
    assert header_stamp_ns(serialize_message(msg)) == 1234 * S + 567_890_123
    assert header_stamp_ns(b'\x07\x07garbage-bytes') is None


def test_learned_period_finds_every_gap_including_while_learning():
    stamps = [100 * S + k * S // 30 for k in range(300)]  # 30 Hz, 10 s
    dropped = {3, 50, 51, 52, 200}  # one during learning, a run of three, one more
    kept = [t for k, t in enumerate(stamps) if k not in dropped]
    report = feed(StreamMonitor(), kept).report()
    assert report['period_source'] == 'stamps' and report['expected_hz'] == pytest.approx(30, 1e-3)
    assert report['received'] == 295 and report['expected'] == 300
    assert report['missing'] == 5 and report['gaps'] == 3
    assert report['received_hz'] == pytest.approx(294 / (299 / 30), rel=1e-3)


def test_jitter_is_not_loss_and_nothing_lost_reports_zero():
    rng = np.random.default_rng(0)
    stamps = [int(k * S / 100 + rng.normal(0, 0.1 * S / 100)) for k in range(1000)]  # 10% jitter
    report = feed(StreamMonitor(), sorted(stamps)).report()
    assert (report['missing'], report['gaps'], report['expected'], report['received']) == (
        0, 0, 1000, 1000)


def test_configured_rate_counts_loss_learning_cannot_see():
    # every other frame lost from the start: the stamps alone look like a clean 15 Hz stream
    stamps = [k * S // 15 for k in range(1, 151)]
    assert feed(StreamMonitor(), stamps).report()['missing'] == 0
    report = feed(StreamMonitor(expected_hz=30.0), stamps).report()
    assert report['period_source'] == 'configured'
    assert report['missing'] == 149 and report['gaps'] == 149 and report['expected'] == 299


def test_unstamped_stream_with_a_configured_rate_uses_receive_times():
    monitor = StreamMonitor(expected_hz=50.0)
    for k in range(0, 100, 2):  # 25 Hz received, 50 Hz expected, over ~2 s
        monitor.add(k * S // 50, None)
    report = monitor.report()
    assert not report['stamped'] and report['expected'] == 99 and report['missing'] == 49
    assert StreamMonitor().report()['expected'] is None  # unknown rate: no claim


def test_expected_hz_parsing_and_config_validation():
    assert parse_expected_hz(['/joint_states=100', '/a/b=29.97']) == {'/joint_states': 100.0,
                                                                        '/a/b': 29.97}
    for bad in ('joint_states=100', '/x=0', '/x=fast', '/x'):
        with pytest.raises(ValueError, match=repr(bad)):
            parse_expected_hz([bad])
    with pytest.raises(ValueError, match=r"RecorderConfig.expected_hz=\['/x=-1'\]"):
        RecorderConfig(expected_hz=['/x=-1'])
    with pytest.raises(ValueError, match='loss_warn_period_s=0'):
        RecorderConfig(loss_warn_period_s=0)


def test_episode_summary_and_bag_metadata_report_the_gaps(tmp_path):
    store = make_typestore()
    rec = EpisodeRecorder(tmp_path, EpisodeMeta(), store, expected_hz={'/cmd': 50.0},
                          loss_warn_period_s=3600)
    rec.add_topic('/cam', 'sensor_msgs/msg/Image')
    rec.add_topic('/joints', 'sensor_msgs/msg/JointState')
    rec.add_topic('/cmd', 'std_msgs/msg/Float64MultiArray')
    rec.start(0)
    for k in range(90):  # 30 Hz camera, frames 40..44 lost upstream
        if not 40 <= k < 45:
            img = Image()
            img.header.stamp.sec, img.header.stamp.nanosec = divmod(10 * S + k * S // 30, S)
            rec.write('/cam', 10 * S + k * S // 30 + 1000, serialize_message(img))
    for k in range(300):  # 100 Hz joints, nothing lost
        js = JointState()
        js.header.stamp.sec, js.header.stamp.nanosec = divmod(10 * S + k * S // 100, S)
        rec.write('/joints', 10 * S + k * S // 100, serialize_message(js))
    for k in range(0, 150, 3):  # commands: no header, a third of the configured 50 Hz
        rec.write('/cmd', 10 * S + k * S // 50, serialize_message(Float64MultiArray()))
    assert rec.status()['missing'] == {'/cam': 5, '/cmd': 98}
    alert = rec.loss_alert()
    assert "'/cam': 5" in alert and "'/cmd'" not in alert  # stamp gaps only
    assert rec.loss_alert() is None  # rate-limited, and nothing new
    summary = rec.stop()
    cam, joints, cmd = (summary.streams[t] for t in ('/cam', '/joints', '/cmd'))
    assert (cam['received'], cam['expected'], cam['missing'], cam['gaps']) == (85, 90, 5, 1)
    assert (joints['received'], joints['expected'], joints['missing']) == (300, 300, 0)
    assert (cmd['received'], cmd['expected'], cmd['missing']) == (50, 148, 98)
    assert summary.to_json()['streams'] == summary.streams
    with BagReader(summary.path) as bag:
        assert json.loads(bag.info.custom_data[STREAMS_KEY]) == summary.streams
        assert bag.episode_meta() is not None  # our other custom_data still parses
    rec.start(0)  # a new episode starts counting afresh
    assert rec.loss_report() == {}
    rec.stop(discard=True)
