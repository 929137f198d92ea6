"""ActionChunk and RoutingWeights cross a process boundary over DDS with every field intact."""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import rclpy
from rclpy.node import Node

from pi05_moe_msgs.msg import ActionChunk, RoutingWeights

HERE = Path(__file__).parent


def make_chunk() -> ActionChunk:
    m = ActionChunk()
    m.header.stamp.sec, m.header.stamp.nanosec = 1700000000, 123456789
    m.header.frame_id = ''
    m.chunk_id = 2**40 + 7
    m.joint_names = ['shoulder', 'elbow', 'gripper']
    m.horizon, m.action_dim, m.period = 2, 3, 0.02
    m.actions = [0.5, -1.25, 1.0, 0.25, 3.5, 0.0]
    m.inference_ms = 41.5
    m.prompt = 'lift the hot cube — ünïcode'
    m.expert_names = ['l515', 'thermal']
    m.routing_weights = [0.25, 0.75]
    return m


def make_routing() -> RoutingWeights:
    m = RoutingWeights()
    m.header.stamp.sec, m.header.stamp.nanosec = 1700000000, 123456789
    m.expert_names = ['l515', 'thermal']
    m.weights = [0.25, 0.75]
    m.present = [1, 0]
    m.base_camera = 'wrist'
    m.chunk_id = 2**40 + 7
    return m


@pytest.fixture
def subscriber_process():
    proc = subprocess.Popen(
        [sys.executable, str(HERE / 'msg_echo_subscriber.py'), '1'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def test_messages_round_trip_between_processes(subscriber_process):
    lines: list[dict] = []
    reader = threading.Thread(
        target=lambda: lines.extend(json.loads(x) for x in subscriber_process.stdout),
        daemon=True)
    reader.start()

    rclpy.init()
    try:
        node = Node('msg_roundtrip_publisher')
        pub_c = node.create_publisher(ActionChunk, '/test/action_chunk', 10)
        pub_r = node.create_publisher(RoutingWeights, '/test/routing', 10)
        deadline = time.monotonic() + 30.0
        while subscriber_process.poll() is None and time.monotonic() < deadline:
            pub_c.publish(make_chunk())
            pub_r.publish(make_routing())
            rclpy.spin_once(node, timeout_sec=0.2)
        node.destroy_node()
    finally:
        rclpy.shutdown()
    subscriber_process.wait(timeout=10)
    reader.join(timeout=5)
    assert subscriber_process.returncode == 0, subscriber_process.stderr.read()

    got = {x['kind']: x['msg'] for x in lines if x['kind'] != 'ready'}
    assert set(got) == {'chunk', 'routing'}, lines
    chunk, routing = got['chunk'], got['routing']
    assert chunk['header'] == {'stamp': {'sec': 1700000000, 'nanosec': 123456789}, 'frame_id': ''}
    assert chunk['chunk_id'] == 2**40 + 7
    assert chunk['joint_names'] == ['shoulder', 'elbow', 'gripper']
    assert (chunk['horizon'], chunk['action_dim'], chunk['period']) == (2, 3, 0.02)
    assert chunk['actions'] == [0.5, -1.25, 1.0, 0.25, 3.5, 0.0]
    assert chunk['inference_ms'] == 41.5
    assert chunk['prompt'] == 'lift the hot cube — ünïcode'
    assert chunk['expert_names'] == ['l515', 'thermal']
    assert chunk['routing_weights'] == [0.25, 0.75]
    assert routing['expert_names'] == ['l515', 'thermal']
    assert routing['weights'] == [0.25, 0.75]
    assert routing['present'] == [1, 0]
    assert routing['base_camera'] == 'wrist'
    assert routing['chunk_id'] == 2**40 + 7
    assert routing['header']['stamp'] == {'sec': 1700000000, 'nanosec': 123456789}
