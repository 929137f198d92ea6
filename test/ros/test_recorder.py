"""recorder_node loses nothing: three 224x224 image streams at 30 Hz plus joint states at 100 Hz,
published for 20 s by another process over DDS, all end up in the episode bag, with metadata.

Three processes (see recorder_harness.py): the publisher, the real ``recorder_node`` executable,
and this test, which drives the recorder through its services and reads the bag back.
"""

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest
import rclpy
from domains import private_domain_id
from private_mount import unshare_flags
from rclpy.node import Node
from recorder_harness import HERE, _call, end, record, spawn
from std_srvs.srv import Trigger

from pi05_moe_training.bags.reader import BagReader
from pi05_moe_training.record.recording import STREAMS_KEY

CAMERAS = ['/l515/color/image_raw', '/wrist/image_raw', '/thermal/image_raw']
JOINTS = '/joint_states'
SECONDS = 20.0


@pytest.mark.slow
def test_recorder_keeps_every_message(tmp_path):
    run = record(tmp_path, CAMERAS, JOINTS, image_hz=30, joint_hz=100, seconds=SECONDS,
                 metadata={'prompt': 'lift the hot cube', 'operator': 'test'}, success=True)
    assert run.summary['dropped'] == 0
    assert Path(run.summary['bag']) == run.bag and (run.bag / 'metadata.yaml').is_file()
    with BagReader(run.bag) as bag:
        recorded = {t: [] for t in run.published}
        for topic, _, msg in bag.messages(list(run.published)):
            recorded[topic].append(msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec)
        meta = bag.episode_meta()
        info = bag.info
    for topic, stamps in run.published.items():
        expected = (30 if topic in CAMERAS else 100) * SECONDS
        assert len(stamps) == pytest.approx(expected, abs=2), topic
        missing = sorted(set(stamps) - set(recorded[topic]))
        assert not missing, f'{topic}: {len(missing)} of {len(stamps)} messages not in the bag'
        assert len(recorded[topic]) == len(stamps), f'{topic}: duplicates in the bag'
    assert meta is not None and meta.prompt == 'lift the hot cube' and meta.success is True
    assert meta.operator == 'test'
    assert info.custom_data['pi05_moe.prompt'] == 'lift the hot cube'
    assert info.storage == 'mcap'


def test_sigint_closes_the_running_bag(tmp_path):
    """Ctrl-C (SIGINT) while recording leaves a complete bag with its metadata."""
    env = dict(os.environ, ROS_DOMAIN_ID=str(private_domain_id()))
    recorder = spawn([shutil.which('recorder_node'), '--ros-args', '-p', f'out_dir:={tmp_path}',
                      '-p', "topics:=['/wrist/image_raw','/joint_states']",
                      '-p', 'auto_start:=true', '-p', 'prompt:=wave', '-p',
                      'discovery_period_s:=0.2'], env)
    publisher = spawn([sys.executable, str(HERE / 'stream_publisher.py'), '--cameras',
                       '/wrist/image_raw', '--seconds', '2', '--size', '64'], env)
    try:
        assert json.loads(publisher.stdout.readline() or '{}').get('ready')
        publisher.stdin.write('go\n')
        publisher.stdin.flush()
        published = json.loads(publisher.stdout.readline())['published']
        time.sleep(0.5)
        recorder.send_signal(signal.SIGINT)
        assert recorder.wait(timeout=20) == 0, recorder.stderr.read()
    finally:
        end(publisher)
        end(recorder)
    bag, = [p for p in tmp_path.iterdir() if p.is_dir()]
    with BagReader(bag) as reader:
        counts = reader.info.counts
        assert reader.episode_meta().prompt == 'wave'
    for topic, stamps in published.items():
        assert counts[topic] == len(stamps), topic


def test_loss_in_dds_is_reported_in_the_summary_and_the_bag(tmp_path):
    """A real publisher in another process never sends every 7th message (its stamps keep the
    grid, as a camera's do when DDS loses frames): the recorder itself drops nothing, and yet the
    ~/stop summary and the bag's metadata.yaml name the missing messages per topic."""
    run = record(tmp_path, CAMERAS[:2], JOINTS, image_hz=30, joint_hz=100, seconds=3.0,
                 size=64, publisher_args=('--skip-every', '7'))
    assert run.summary['dropped'] == 0
    streams = run.summary['streams']
    for topic, stamps in run.published.items():
        period = 1e9 / (30 if topic in CAMERAS else 100)
        lost = [round((b - a) / period) - 1 for a, b in zip(stamps, stamps[1:])]
        missing, gaps = sum(lost), sum(1 for n in lost if n)
        assert run.publisher['skipped'][topic] - missing in (0, 1), topic  # a last one: unseen
        report = streams[topic]
        assert missing > 5 and report['missing'] == missing and report['gaps'] == gaps, topic
        assert report['received'] == len(stamps), topic
        assert report['expected'] == len(stamps) + missing, topic
        assert report['period_source'] == 'stamps', topic
        assert report['expected_hz'] == pytest.approx(1e9 / period, rel=0.01), topic
    with BagReader(run.bag) as bag:
        assert json.loads(bag.info.custom_data[STREAMS_KEY]) == streams
    # warned while recording (rate-limited: 3 s of loss, one warning per 5 s), and at the stop
    warnings = [line for line in run.recorder_log.splitlines()
                if 'messages lost before the recorder' in line]
    assert len(warnings) == 1 and any(t in warnings[0] for t in run.published), run.recorder_log
    assert 'lost before it (missing per topic)' in run.recorder_log


@pytest.mark.skipif(unshare_flags() is None, reason='no private mount namespace (unshare -m)')
def test_start_on_a_read_only_file_system_fails_the_call_not_the_node(tmp_path):
    """``out_dir`` under a real read-only tmpfs (private mount namespace): ~/start answers
    success=false with the directory and the cause, and the node keeps serving."""
    mount = tmp_path / 'ro'
    mount.mkdir()
    env = dict(os.environ, ROS_DOMAIN_ID=str(private_domain_id()))
    out_dir = mount / 'new' / 'bags'
    script = (f'mount -t tmpfs -o ro tmpfs {mount} && exec {shutil.which("recorder_node")} '
              f"--ros-args -p out_dir:={out_dir} -p topics:=['/joint_states']")
    recorder = spawn(['unshare', unshare_flags(), 'sh', '-c', script], env)
    saved = os.environ.get('ROS_DOMAIN_ID')
    os.environ['ROS_DOMAIN_ID'] = env['ROS_DOMAIN_ID']
    rclpy.init()
    try:
        node = Node('read_only_caller')
        start = node.create_client(Trigger, '/recorder/start')
        for _ in range(2):  # still up and answering after the first failure
            reply = _call(node, start, Trigger.Request())
            assert not reply.success
            assert reply.message == (f'cannot create the bag directory {mount / "new"}: '
                                     'Read-only file system'), reply.message
        assert recorder.poll() is None
        node.destroy_node()
    finally:
        rclpy.shutdown()
        if saved is None:
            os.environ.pop('ROS_DOMAIN_ID')
        else:
            os.environ['ROS_DOMAIN_ID'] = saved
        recorder.send_signal(signal.SIGINT)
        code = recorder.wait(timeout=20)
        err = recorder.stderr.read()
        end(recorder)
    assert code == 0, err
    assert 'Traceback' not in err and '~/start: cannot create the bag directory' in err, err
