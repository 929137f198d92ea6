"""policy_node: cameras + /joint_states + prompt -> ActionChunk and RoutingWeights.

Callbacks only check messages (core.input_checks) and store the latest per stream (a bad one is
dropped with a rate-limited warning). A worker thread builds an observation from the newest ones
(core.snapshot: age and skew on header stamps, sim-time aware), runs ``Policy.infer`` (with
``rtc``: on the rows of its last chunk the executor still runs, core.rtc.RtcPlanner and
nodes.executor_watch) and publishes. Parameters: ``nodes.config.PolicyNodeConfig``.
"""

from __future__ import annotations

import time
from functools import partial

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState

from pi05_moe_msgs.msg import ActionChunk, RoutingWeights
from pi05_moe_policy.core.image_codec import ImageCodecError
from pi05_moe_policy.core.input_checks import JointStateCheck, check_frame
from pi05_moe_policy.core.policy_inputs import (
    JOINTS,
    diagnostic_values,
    plan_inputs,
    snapshot_images,
    startup_line,
    truncation_line,
)
from pi05_moe_policy.core.rate_limited_log import FirstSeen, RateLimitedLog
from pi05_moe_policy.core.rtc import RtcPlanner
from pi05_moe_policy.core.snapshot import Skip
from pi05_moe_policy.core.stats import RateMeter, RunningStats
from pi05_moe_policy.core.worker import Worker
from pi05_moe_policy.inference_process import PolicyProcess, open_policy
from pi05_moe_policy.nodes import qos
from pi05_moe_policy.nodes.config import PolicyNodeConfig
from pi05_moe_policy.nodes.executor_watch import watch_executor
from pi05_moe_policy.nodes.main import run_node
from pi05_moe_policy.nodes.msg_convert import (
    make_action_chunk,
    make_diagnostics,
    make_routing,
    stamp_to_sec,
)
from pi05_moe_policy.nodes.prompt import PromptInput
from pi05_moe_policy.nodes.ros_params import declare_config


class PolicyNode(Node):
    def __init__(self) -> None:
        super().__init__('policy_node')
        self.cfg = cfg = declare_config(self, PolicyNodeConfig)
        hz = cfg.max_inference_hz  # the worker starts at the end of __init__
        self._worker = Worker(self._infer_once, 1.0 / hz if hz else 0.0, self._on_error,
                              name='policy_worker')
        # A bad checkpoint: CheckpointError (a ValueError), one fatal line. In a child process
        # with inference_process (its own GIL), else here.
        p = open_policy(cfg.load_kwargs(), cfg.inference_kwargs(), cfg.inference_process)
        self.policy, self.process = p, p if isinstance(p, PolicyProcess) else None
        self.plan = plan = plan_inputs(cfg, p)
        self.joint_names, self.topics, self.kinds = plan.joint_names, plan.topics, plan.kinds
        self.buffer = plan.buffer(cfg)
        self.warn = RateLimitedLog(self.get_logger().warning, cfg.warn_period)
        self.joint_check = JointStateCheck(cfg, self.joint_names)
        self.rtc = RtcPlanner(cfg, p.control_period_s, p.action_horizon) if cfg.rtc else None
        if self.rtc and cfg.rtc_executor_status:  # no prefix while the executor runs nothing
            watch_executor(self, cfg.diagnostics_topic, cfg.rtc_executor_status, self.rtc)
        self.once = FirstSeen()  # extra joint sets, truncated prompts: said once each
        p.set_truncation_handler(self._on_truncate)  # prompts cut to max_token_len: logged here
        self.rates, self.infer_ms = {n: RateMeter() for n in self.topics}, RunningStats()
        self.prompt_in_use = cfg.prompt
        self.prompt_input = PromptInput(self, cfg.prompt_topic, cfg.prompt_in_use_topic,
                                        cfg.prompt, cfg.max_prompt_chars, self.warn)
        self.chunk_id, self.last_timing, self.last_skip = 0, {}, ''
        for name, topic in plan.cameras.items():
            self.create_subscription(Image, topic, partial(self._on_image, name), qos.SENSOR)
        self.create_subscription(JointState, cfg.joint_states_topic, self._on_joints, qos.SENSOR)
        self.chunk_pub = self.create_publisher(ActionChunk, cfg.action_chunk_topic, qos.COMMAND)
        self.routing_pub = self.create_publisher(RoutingWeights, cfg.routing_topic, qos.STATUS)
        self.diag_pub = self.create_publisher(DiagnosticArray, cfg.diagnostics_topic, qos.STATUS)
        self.create_timer(cfg.diagnostics_period, self._publish_diagnostics)
        self.get_logger().info(startup_line(cfg.checkpoint, plan, p))
        if plan.without:
            self.get_logger().warning(f'expert camera(s) {plan.without} have no topic in '
                                      'parameter cameras: the policy runs without them')
        if self.process is None:  # Ctrl-C ends even a long inference within 2 s
            self._worker.abort_modules(p.model)
        self._worker.start()
        self.context.on_shutdown(self._on_shutdown)  # Ctrl-C: no more publishing

    # ------------------------------------------------------------------ callbacks: store only
    def _on_image(self, name: str, msg: Image) -> None:
        try:
            check_frame(msg, self.kinds[name], self.topics[name], self.cfg.min_image_size,
                        self.cfg)
        except ImageCodecError as exc:
            self.warn((self.topics[name], 'image'), f'dropping frame: {exc}')
            return
        self.buffer.put(name, stamp_to_sec(msg.header.stamp), msg)
        self.rates[name].tick()
        self._worker.wake()

    def _on_joints(self, msg: JointState) -> None:
        topic = self.cfg.joint_states_topic
        verdict = self.joint_check(msg.name, msg.position)
        if verdict.extra and self.once.first(('extra', verdict.extra)):  # often normal
            self.get_logger().warning(f'{topic}: ignoring joints not in joint_names: '
                                      f'{list(verdict.extra)}')
        if verdict.positions is None:
            self.warn((topic, verdict.problem), f'{topic}: {verdict.text}')
            return
        self.buffer.put(JOINTS, stamp_to_sec(msg.header.stamp),
                        (msg.header.stamp, verdict.positions))  # (D,) float32
        self.rates[JOINTS].tick()
        self._worker.wake()

    def _on_truncate(self, text: str, n_ids: int) -> None:
        prompt = self.prompt_in_use
        if self.once.first(('truncated', prompt)):
            self.get_logger().warning(truncation_line(
                prompt, n_ids, self.policy.data_config.max_token_len))

    # ------------------------------------------------------------------ the worker
    def _on_error(self, exc: Exception) -> bool:
        if not self.context.ok():
            return False  # Ctrl-C shut the context down while an inference was running
        self.warn(('policy', type(exc).__name__), f'inference failed: {exc!r}')
        return True

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
        images, left_out, base_problem = snapshot_images(snap.values, snap.left_out, self.plan)
        base = self.plan.base_camera
        if base_problem:
            self._skip(base, 'decode', base_problem)
            return
        for name, why in left_out.items():
            self.warn(('left_out', name), f'expert camera {name!r} left out: {why}')
        prompt = self.prompt_in_use = self.prompt_input.prompt
        newest = snap.values[snap.newest]  # the header stamp itself, not a float round trip
        stamp = newest[0] if snap.newest == JOINTS else newest.header.stamp
        rtc = self.rtc.infer_kwargs(stamp_to_sec(stamp)) if self.rtc else {}
        out = self.policy.infer({'images': images, 'state': snap.values[JOINTS][1],
                                 'prompt': prompt}, **rtc)
        if self._worker.stopping.is_set():
            return  # Ctrl-C came during the last layer: the publishers are going away
        ms = (time.perf_counter() - t0) * 1e3
        self.infer_ms.add(ms)
        self.last_timing, self.last_skip = out['timing'], ''
        self.chunk_id += 1
        routing = out['routing']
        if self.rtc:  # node clock: under sim time and bag replay the delay is in their time
            self.rtc.published(stamp_to_sec(stamp), self.get_clock().now().nanoseconds * 1e-9,
                               out['actions'])
        self.chunk_pub.publish(make_action_chunk(
            stamp, self.chunk_id, self.joint_names, out['actions'],
            self.policy.control_period_s, ms, prompt, routing))
        if routing:
            self.routing_pub.publish(make_routing(stamp, self.chunk_id, routing,
                                                  [n in images for n in routing], base))

    # ------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        now = self.get_clock().now()
        values = diagnostic_values(
            self.chunk_id, self.prompt_input.prompt, self.infer_ms.summary(), self.last_timing,
            {n: self.rates[n].rate(now.nanoseconds * 1e-9) for n in self.topics}, self.warn.total)
        level = DiagnosticStatus.WARN if self.last_skip else DiagnosticStatus.OK
        self.diag_pub.publish(make_diagnostics(
            now.to_msg(), f'{self.get_name()}: inference', level,
            self.last_skip or f'chunk {self.chunk_id}', values))

    def _on_shutdown(self) -> None:  # a running inference in a child process is cut off
        self._worker.stopping.set()
        if getattr(self, 'process', None) is not None:  # none yet if the checkpoint failed
            self.process.close()

    def destroy_node(self) -> None:
        self._on_shutdown()
        self._worker.stop(timeout=1.0)  # a running inference aborts at its next layer
        super().destroy_node()


def main(args=None) -> int:
    return run_node(PolicyNode, 'policy_node', args)


if __name__ == '__main__':
    main()
