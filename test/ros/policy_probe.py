"""A probe for policy_node alone: publishes its inputs, records its outputs (test/ros helpers).

``start_policy_node`` spawns the console script with a params file written through
``PolicyNodeConfig`` (a misspelt parameter fails in the test, not silently in ROS).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import yaml
from rclpy.duration import Duration
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String

from pi05_moe_msgs.msg import ActionChunk, RoutingWeights
from pi05_moe_policy.core.image_codec import numpy_to_image
from pi05_moe_policy.nodes import qos
from pi05_moe_policy.nodes.config import PolicyNodeConfig
from pi05_moe_policy.nodes.msg_convert import sec_to_stamp

JOINTS = ['waist', 'shoulder', 'elbow', 'forearm_roll', 'wrist_pitch', 'wrist_roll', 'gripper']
CAMERAS = {'wrist': '/wrist/image_raw', 'l515': '/l515/color/image_raw',
           'thermal': '/thermal/image_raw'}
GOOD_JOINTS = [0.1 * i for i in range(len(JOINTS))]
POLICY = dict(checkpoint='preset:tiny', num_threads=1, joint_names=JOINTS, max_inference_hz=8.0,
              warn_period=1.0, diagnostics_period=0.5,
              joint_lower_limits=[-1.0] * len(JOINTS), joint_upper_limits=[1.0] * len(JOINTS),
              joint_limit_margin=0.05)


def start_policy_node(spawn, path, **overrides):
    params = dict(POLICY, **overrides)
    PolicyNodeConfig(**params)
    path.write_text(yaml.safe_dump({'policy_node': {'ros__parameters': params}}))
    proc = spawn(['policy_node', '--ros-args', '--params-file', str(path)])
    proc.wait_for(r'\[policy_node\]: preset:tiny: cameras', timeout=60)
    return proc


class PolicyProbe:
    """Publishes the cameras and joint states at 20 Hz (each stream can be replaced by a
    function of the stamp), and records chunks and routing with their arrival times."""

    def __init__(self, ros, name='policy_probe'):
        self.node = node = ros.node(name)
        self._lock = threading.Lock()
        self.joints = lambda stamp: (JOINTS, GOOD_JOINTS)
        rgb = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
        self.frames = {'wrist': lambda: (rgb, 'rgb8'), 'l515': lambda: (rgb[::-1].copy(), 'rgb8'),
                       'thermal': lambda: (np.full((60, 80), 30315, np.uint16), 'mono16')}
        self.sent: dict[str, list[tuple[int, int]]] = {'joints': []}
        self.chunks: list[tuple[float, ActionChunk]] = []
        self.routing: list[tuple[float, RoutingWeights]] = []
        self.image_pubs = {n: node.create_publisher(Image, t, qos.SENSOR)
                           for n, t in CAMERAS.items()}
        self.joint_pub = node.create_publisher(JointState, '/joint_states', qos.SENSOR)
        self.prompt_pub = node.create_publisher(String, '/pi05_moe/prompt', qos.PROMPT)
        node.create_subscription(ActionChunk, '/pi05_moe/action_chunk',
                                 self._keep(self.chunks), qos.COMMAND)
        node.create_subscription(RoutingWeights, '/pi05_moe/routing', self._keep(self.routing),
                                 qos.STATUS)
        self.prompt_pub.publish(String(data='lift the red cube'))
        self.on = True
        node.create_timer(0.05, self._publish)

    def _keep(self, into):
        def keep(msg):
            with self._lock:
                into.append((time.monotonic(), msg))
        return keep

    def _publish(self):
        if not self.on:
            return
        now = self.node.get_clock().now()
        stamp = now.to_msg()
        # Images 1 ms older than the joints: an observation is stamped by its newest stream, so
        # a chunk carries a joint state's stamp only if that joint state was used.
        image_stamp = (now - Duration(nanoseconds=1_000_000)).to_msg()
        for name, frame in self.frames.items():
            array, encoding = frame()
            msg = numpy_to_image(array, encoding, Image(), CAMERAS[name])
            msg.header.stamp = image_stamp
            self.image_pubs[name].publish(msg)
        names, positions = self.joints(stamp)
        msg = JointState(name=list(names), position=[float(p) for p in positions])
        msg.header.stamp = stamp
        self.joint_pub.publish(msg)
        with self._lock:
            self.sent['joints'].append((stamp.sec, stamp.nanosec))

    def chunks_since(self, t: float) -> list[ActionChunk]:
        with self._lock:
            return [m for at, m in self.chunks if at > t]

    def routing_since(self, t: float) -> list[RoutingWeights]:
        with self._lock:
            return [m for at, m in self.routing if at > t]


def stamp_key(stamp) -> tuple[int, int]:
    return (stamp.sec, stamp.nanosec)


__all__ = ['CAMERAS', 'GOOD_JOINTS', 'JOINTS', 'POLICY', 'PolicyProbe', 'sec_to_stamp',
           'stamp_key', 'start_policy_node']
