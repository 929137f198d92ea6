"""recorder_node loses nothing: three 224x224 image streams at 30 Hz plus joint states at 100 Hz,
published for 20 s by another process over DDS, all end up in the episode bag, with metadata.

Three processes (see recorder_harness.py): the publisher, the real ``recorder_node`` executable,
and this test, which drives the recorder through its services and reads the bag back.
"""

import json
import os
import random
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest
from recorder_harness import HERE, end, record, spawn

from pi05_moe_training.bags.reader import BagReader

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
    env = dict(os.environ, ROS_DOMAIN_ID=str(random.randint(1, 200)))
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
