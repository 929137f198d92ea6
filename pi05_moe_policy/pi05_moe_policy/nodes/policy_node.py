"""policy_node: cameras + /joint_states + prompt -> ActionChunk and RoutingWeights.

Callbacks only check headers and store the latest message per stream (a bad frame is rejected
with a rate-limited warning and never replaces a good one). A worker thread builds an observation
from the newest messages (:mod:`pi05_moe_policy.core.snapshot`: age and skew on header stamps,
sim-time aware), runs ``Policy.infer`` and publishes; while it runs, newer messages replace older
ones. Parameters: :class:`pi05_moe_policy.nodes.config.PolicyNodeConfig`.
"""

from __future__ import annotations

import threading
import time
from functools import partial

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String

from pi05_moe_msgs.msg import ActionChunk, RoutingWeights
from pi05_moe_policy.core.image_codec import ImageCodecError
from pi05_moe_policy.core.joint_state import reorder_joints, resolve_joint_names
from pi05_moe_policy.core.observation import (
    RGB,
    THERMAL,
    check_image_header,
    clean_prompt,
    decode_cameras,
)
from pi05_moe_policy.core.rate_limited_log import RateLimitedLog
from pi05_moe_policy.core.snapshot import Skip, SnapshotBuffer
from pi05_moe_policy.core.stats import RateMeter, RunningStats
from pi05_moe_policy.nodes import qos
from pi05_moe_policy.nodes.config import PolicyNodeConfig
from pi05_moe_policy.nodes.main import run_node
from pi05_moe_policy.nodes.msg_convert import (
    make_action_chunk,
    make_diagnostics,
    make_routing,
    stamp_to_sec,
)
from pi05_moe_policy.nodes.ros_params import declare_config

JOINTS = 'joint_states'  # the snapshot's stream name for the joint state


def load_policy(cfg: PolicyNodeConfig):
    """The policy ``cfg.checkpoint`` names (:mod:`pi05_moe_policy.checkpoints`)."""
    from pi05_moe_policy import checkpoints

    return checkpoints.load_policy(cfg.checkpoint, device=cfg.device, seed=cfg.seed,
                       joint_names=cfg.joint_names, num_threads=cfg.num_threads or None)


class PolicyNode(Node):
    def __init__(self) -> None:
        super().__init__('policy_node')
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self.cfg = cfg = declare_config(self, PolicyNodeConfig)
        self.policy = load_policy(cfg)
        p = self.policy
        self.joint_names = resolve_joint_names(cfg.joint_names, p.joint_names,
                                               p.robot_action_dim)
        if p.robot_state_dim != len(self.joint_names):
            raise ValueError(f'the checkpoint has state dim {p.robot_state_dim} but action dim '
                             f'{p.robot_action_dim}: one joint_names list cannot order both')
        topics = {n: t for n, t in cfg.cameras.items() if t and n in p.camera_names}
        if p.base_camera not in topics:
            raise ValueError(f'parameter cameras={cfg.cameras!r} gives no topic for the base '
                             f'camera {p.base_camera!r} of the checkpoint')
        self.topics = {**topics, JOINTS: cfg.joint_states_topic}
        self.kinds = {n: THERMAL if n in p.thermal_cameras else RGB for n in topics}
        self.buffer = SnapshotBuffer(
            cfg, required={n: self.topics[n] for n in (p.base_camera, JOINTS)},
            optional={n: t for n, t in topics.items() if n != p.base_camera})
        self.warn = RateLimitedLog(self.get_logger().warning, cfg.warn_period)
        self.rates = {n: RateMeter() for n in self.topics}
        self.infer_ms = RunningStats()
        self.prompt = cfg.prompt
        self.chunk_id = 0
        self.last_timing: dict[str, float] = {}
        self.last_skip = ''
        self.extra_joints: set[tuple[str, ...]] = set()
        for name, topic in topics.items():
            self.create_subscription(Image, topic, partial(self._on_image, name), qos.SENSOR)
        self.create_subscription(JointState, cfg.joint_states_topic, self._on_joints, qos.SENSOR)
        self.create_subscription(String, cfg.prompt_topic, self._on_prompt, qos.PROMPT)
        self.chunk_pub = self.create_publisher(ActionChunk, cfg.action_chunk_topic, qos.COMMAND)
        self.routing_pub = self.create_publisher(RoutingWeights, cfg.routing_topic, qos.STATUS)
        self.diag_pub = self.create_publisher(DiagnosticArray, cfg.diagnostics_topic, qos.STATUS)
        self.create_timer(cfg.diagnostics_period, self._publish_diagnostics)
        self.get_logger().info(
            f'{cfg.checkpoint}: cameras {topics} (base {p.base_camera!r}), '
            f'{len(self.joint_names)} joints, horizon {p.action_horizon} x '
            f'{p.control_period_s:g} s; ignored (not in the checkpoint): '
            f'{sorted(set(cfg.cameras) - set(p.camera_names))}')
        without = [n for n in p.expert_cameras if n not in topics]
        if without:
            self.get_logger().warning(f'expert camera(s) {without} have no topic in parameter '
                                      'cameras: the policy runs without them')
        self._worker = threading.Thread(target=self._run, name='policy_worker', daemon=True)
        self._worker.start()
        self.context.on_shutdown(self._stop.set)  # Ctrl-C: the worker must not publish any more

    # ------------------------------------------------------------------ callbacks: store only
    def _on_image(self, name: str, msg: Image) -> None:
        try:
            check_image_header(msg, self.kinds[name], self.topics[name], self.cfg.min_image_size)
        except ImageCodecError as exc:
            self.warn((self.topics[name], 'image'), f'dropping frame: {exc}')
            return
        self.buffer.put(name, stamp_to_sec(msg.header.stamp), msg)
        self.rates[name].tick()
        self._wake.set()

    def _on_joints(self, msg: JointState) -> None:
        topic = self.cfg.joint_states_topic
        try:
            match = reorder_joints(msg.name, msg.position, self.joint_names)
        except ValueError as exc:
            self.warn((topic, 'malformed'), f'{topic}: dropping message: {exc}')
            return
        if match.extra and match.extra not in self.extra_joints:  # once per set: often normal
            self.extra_joints.add(match.extra)
            self.get_logger().warning(f'{topic}: ignoring joints not in joint_names: '
                                      f'{list(match.extra)}')
        if match.missing:
            self.warn((topic, 'missing'), f'{topic}: dropping message without joints '
                      f'{list(match.missing)} (joint_names {self.joint_names})')
            return
        if match.nonfinite:
            self.warn((topic, 'nan'), f'{topic}: dropping message with NaN/inf positions for '
                      f'{list(match.nonfinite)}')
            return
        self.buffer.put(JOINTS, stamp_to_sec(msg.header.stamp),
                        (msg.header.stamp, match.positions.astype(np.float32)))  # (D,)
        self.rates[JOINTS].tick()
        self._wake.set()

    def _on_prompt(self, msg: String) -> None:
        prompt, problem = clean_prompt(msg.data, self.cfg.max_prompt_chars)
        if problem:
            self.warn((self.cfg.prompt_topic, 'prompt'), f'{self.cfg.prompt_topic}: {problem}')
        if prompt and prompt != self.prompt:
            self.prompt = prompt
            self.get_logger().info(f'prompt: {prompt[:80]!r}')

    # ------------------------------------------------------------------ the worker
    def _run(self) -> None:
        min_interval = 1.0 / self.cfg.max_inference_hz if self.cfg.max_inference_hz else 0.0
        next_start = 0.0
        while not self._stop.is_set():
            # Throttle, then wait for news (or time out to notice streams going stale).
            self._stop.wait(max(0.0, next_start - time.monotonic()))
            self._wake.wait(timeout=0.25)
            self._wake.clear()
            if self._stop.is_set():
                break
            next_start = time.monotonic() + min_interval
            try:
                self._infer_once()
            except Exception as exc:  # noqa: BLE001 - the worker must outlive one bad inference
                if self._stop.is_set() or not self.context.ok():
                    break  # Ctrl-C shut the context down while an inference was running
                self.warn(('policy', type(exc).__name__), f'inference failed: {exc!r}')

    def _skip(self, stream: str, reason: str, text: str) -> None:
        self.last_skip = f'{reason}: {text}'
        self.warn(('skip', stream, reason), f'skipping inference: {text}')

    def _infer_once(self) -> None:
        t0 = time.perf_counter()
        snap = self.buffer.build(self.get_clock().now().nanoseconds * 1e-9)
        if snap is None:
            return
        if isinstance(snap, Skip):
            self._skip(snap.stream, snap.reason, snap.text)
            return
        for name, why in snap.left_out.items():
            self.warn(('left_out', name), f'expert camera {name!r} left out: {why}')
        cams = {n: m for n, m in snap.values.items() if n != JOINTS}
        images, problems = decode_cameras(cams, self.kinds, self.topics)
        base = self.policy.base_camera
        if base in problems:
            self._skip(base, 'decode', problems[base])
            return
        for name, why in problems.items():
            self.warn(('left_out', name), f'expert camera {name!r} left out: {why}')
        prompt = self.prompt
        out = self.policy.infer({'images': images, 'state': snap.values[JOINTS][1],
                                 'prompt': prompt})
        ms = (time.perf_counter() - t0) * 1e3
        self.infer_ms.add(ms)
        self.last_timing = out['timing']
        self.last_skip = ''
        self.chunk_id += 1
        routing = out['routing']
        newest = snap.values[snap.newest]  # the header stamp itself, not a float round trip
        stamp = newest[0] if snap.newest == JOINTS else newest.header.stamp
        self.chunk_pub.publish(make_action_chunk(
            stamp, self.chunk_id, self.joint_names, out['actions'],
            self.policy.control_period_s, ms, prompt, routing))
        if routing:
            self.routing_pub.publish(make_routing(stamp, self.chunk_id, routing,
                                                  [n in images for n in routing], base))

    # ------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        now = self.get_clock().now()
        t = now.nanoseconds * 1e-9
        values: dict[str, object] = {'chunks_published': self.chunk_id, 'prompt': self.prompt}
        values.update({f'inference_ms_{k}': v for k, v in self.infer_ms.summary().items()})
        values.update({f'stage_ms_{k}': v for k, v in self.last_timing.items()})
        values.update({f'rate_hz_{n}': self.rates[n].rate(t) for n in self.topics})
        for reason in ('missing', 'future', 'stale', 'skew', 'decode', 'clock_jump'):
            values[f'skipped_{reason}'] = self.warn.total(
                lambda key, r=reason: key[0] == 'skip' and key[-1] == r)
        values['warnings'] = self.warn.total()
        level = DiagnosticStatus.WARN if self.last_skip else DiagnosticStatus.OK
        self.diag_pub.publish(make_diagnostics(
            now.to_msg(), f'{self.get_name()}: inference', level,
            self.last_skip or f'chunk {self.chunk_id}', values))

    def destroy_node(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._worker is not None:
            self._worker.join(timeout=10.0)
        super().destroy_node()


def main(args=None) -> int:
    return run_node(PolicyNode, 'policy_node', args)


if __name__ == '__main__':
    main()
