"""Runs one recording across processes: stream_publisher.py -> recorder_node -> a bag.

Shared by test_recorder.py and bench/bench_recorder.py. Three processes talk over DDS on a
private ROS_DOMAIN_ID: the publisher, the real ``recorder_node`` executable, and the caller, which
drives the recorder through its services (rclpy must not be initialised by the caller).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import rclpy
from domains import private_domain_id
from rclpy.node import Node
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from pi05_moe_policy.nodes import qos
from pi05_moe_training.record.ros_io import STATUS_QOS

HERE = Path(__file__).parent


@dataclass
class Recording:
    published: dict[str, list[int]]  # topic -> header stamps sent (ns)
    bag: Path
    summary: dict  # the ~/stop reply: bag, duration_s, counts, dropped, streams
    publisher: dict  # the publisher's report: late_ms, elapsed_s, skipped
    recorder_log: str = ''  # what recorder_node wrote to stderr (its log)


def _call(node: Node, client, request, timeout: float = 20.0):
    if not client.wait_for_service(timeout_sec=timeout):
        raise RuntimeError(f'{client.srv_name} not available')
    future = client.call_async(request)
    rclpy.spin_until_future_complete(node, future, timeout_sec=timeout)
    if not future.done():
        raise RuntimeError(f'{client.srv_name} did not answer')
    return future.result()


def _status_listener(node: Node) -> dict:
    """The recorder's latest ~/status, kept up to date while ``node`` spins. Subscribed before
    the streams start, so that discovery is not counted in the drain time."""
    status: dict = {}
    node.create_subscription(String, '/recorder/status',
                             lambda m: status.update(json.loads(m.data)), STATUS_QOS)
    return status


def _wait_recorded(node: Node, status: dict, published: dict[str, list[int]],
                   timeout: float = 15.0) -> float:
    """Seconds until the recorder's ~/status counts reach what was published (or timeout);
    ~/status comes every status_period_s (0.5 s), so the figure is that coarse."""
    start = time.monotonic()
    want = {t: len(v) for t, v in published.items()}
    while time.monotonic() - start < timeout:
        counts = status.get('counts', {})
        if all(counts.get(t, 0) >= n for t, n in want.items()):
            break
        rclpy.spin_once(node, timeout_sec=0.05)
    drain = time.monotonic() - start
    time.sleep(0.3)  # anything in flight beyond the counts (there should be nothing)
    return round(drain, 2)


def spawn(cmd: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def end(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def record(out_dir: Path, cameras: list[str], joint_topic: str, *, image_hz: float,
           joint_hz: float, seconds: float, size: int = 224, reliability: str = 'reliable',
           metadata: dict | None = None, success: bool | None = None,
           publisher_args: tuple[str, ...] = ()) -> Recording:
    """Publish for ``seconds`` while one episode is recorded; return what was sent and the bag."""
    recorder_exe = shutil.which('recorder_node')
    if not recorder_exe:
        raise RuntimeError('recorder_node not on PATH: run `make setup` and `source env.sh`')
    saved_domain = os.environ.get('ROS_DOMAIN_ID')
    os.environ['ROS_DOMAIN_ID'] = str(private_domain_id())  # for this process's rclpy too
    env = dict(os.environ)
    topics = '[' + ','.join(f"'{t}'" for t in [*cameras, joint_topic]) + ']'
    recorder = spawn([recorder_exe, '--ros-args', '-p', f'out_dir:={out_dir}',
                       '-p', f'topics:={topics}', '-p', 'discovery_period_s:=0.2'], env)
    publisher = spawn([sys.executable, str(HERE / 'stream_publisher.py'), '--cameras', *cameras,
                        '--joint-topic', joint_topic, '--image-hz', str(image_hz),
                        '--joint-hz', str(joint_hz), '--seconds', str(seconds),
                        '--size', str(size), '--reliability', reliability,
                        *publisher_args], env)
    rclpy.init()
    try:
        node = Node('recorder_harness')
        start = node.create_client(Trigger, '/recorder/start')
        stop = node.create_client(Trigger, '/recorder/stop')
        verdict = node.create_client(SetBool, '/recorder/set_success')
        meta_pub = node.create_publisher(String, '/recorder/set_metadata', qos.PROMPT)
        status = _status_listener(node)
        ready = json.loads(publisher.stdout.readline() or '{}')
        if not ready.get('ready'):
            raise RuntimeError(f'publisher failed: {publisher.stderr.read()}')
        if metadata:
            meta_pub.publish(String(data=json.dumps(metadata)))
        reply = _call(node, start, Trigger.Request())
        if not reply.success:
            raise RuntimeError(f'~/start failed: {reply.message}')
        bag = Path(reply.message)
        publisher.stdin.write('go\n')
        publisher.stdin.flush()
        line = publisher.stdout.readline()
        if not line:
            raise RuntimeError(f'publisher died: {publisher.stderr.read()}')
        report = json.loads(line)
        report['drain_s'] = _wait_recorded(node, status, report['published'])
        if success is not None:
            _call(node, verdict, SetBool.Request(data=success))
        reply = _call(node, stop, Trigger.Request())
        if not reply.success:
            raise RuntimeError(f'~/stop failed: {reply.message}')
        publisher.stdin.write('exit\n')
        publisher.stdin.flush()
        node.destroy_node()
    finally:
        rclpy.shutdown()
        end(publisher)
        end(recorder)
        recorder_log = recorder.stderr.read()
        if saved_domain is None:
            os.environ.pop('ROS_DOMAIN_ID')
        else:
            os.environ['ROS_DOMAIN_ID'] = saved_domain
    published = report.pop('published')
    return Recording(published, bag, json.loads(reply.message), report, recorder_log)
