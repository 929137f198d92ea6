"""executor_node: ActionChunks -> ensembled, safety-filtered commands for ros2_control.

A control-rate timer (node clock, so sim time under ``use_sim_time``) asks the executor core
(:class:`pi05_moe_policy.core.executor.ExecutorCore`: chunk checks, temporal ensembling, joint
and velocity limits, the stale-chunk watchdog) for the command for *now*. Actuation is off by
default: commands go to the preview topic until ``~/enable`` (std_srvs/SetBool) is called, which
needs a fresh joint state and starts from it (the robot's measured position); ``~/reset``
(std_srvs/Trigger) drops every chunk, and chunks observed before it, and ramps from the last
command: neither jumps. Bad chunks are rejected with rate-limited warnings.
Parameters: :class:`pi05_moe_policy.nodes.config.ExecutorNodeConfig` (``joint_names`` is
required with ``output: commands`` or ``output_groups``: one controller per group of joints,
:mod:`pi05_moe_policy.nodes.command_out`).
"""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool, Trigger

from pi05_moe_msgs.msg import ActionChunk
from pi05_moe_policy.core.executor import ChunkRejectedError, ExecutorCore
from pi05_moe_policy.core.joint_state import reorder_joints
from pi05_moe_policy.core.rate_limited_log import RateLimitedLog
from pi05_moe_policy.core.safety import NO_REFERENCE, OK
from pi05_moe_policy.nodes import qos
from pi05_moe_policy.nodes.command_out import CommandOutputs
from pi05_moe_policy.nodes.config import ExecutorNodeConfig
from pi05_moe_policy.nodes.main import run_node
from pi05_moe_policy.nodes.msg_convert import make_diagnostics, parse_action_chunk
from pi05_moe_policy.nodes.ros_params import declare_config


class ExecutorNode(Node):
    def __init__(self) -> None:
        super().__init__('executor_node')
        self.cfg = cfg = declare_config(self, ExecutorNodeConfig)
        cfg.require_joint_names()
        self.core = ExecutorCore(cfg)
        self.dt = self.core.dt
        self.warn = RateLimitedLog(self.get_logger().warning, cfg.warn_period)
        # A lambda, not the bound method: rclpy fixes one severity per calling line.
        self.log_status = RateLimitedLog(lambda text: self.get_logger().info(text),
                                         cfg.warn_period)
        self.enabled = cfg.enabled
        self.last_now: float | None = None
        self.status = NO_REFERENCE
        # One output, or one per output group (its joints, mapped to the controller's units).
        self.outputs = CommandOutputs(self, cfg, self.core.joint_names)
        self.diag_pub = self.create_publisher(DiagnosticArray, cfg.diagnostics_topic, qos.STATUS)
        self.create_subscription(ActionChunk, cfg.action_chunk_topic, self._on_chunk,
                                 qos.COMMAND)
        self.create_subscription(JointState, cfg.joint_states_topic, self._on_joints, qos.SENSOR)
        self.create_service(SetBool, '~/enable', self._on_enable)
        self.create_service(Trigger, '~/reset', self._on_reset)
        self.create_timer(self.dt, self._tick)
        self.create_timer(cfg.diagnostics_period, self._publish_diagnostics)
        self.create_timer(cfg.log_period, self._log_counts)
        self.get_logger().info(
            f'{cfg.control_hz:g} Hz, mode {cfg.mode}, actuation '
            f'{"ENABLED" if self.enabled else "disabled"} -> {self._out_topic()}')

    def _out_topic(self) -> str:
        return self.outputs.topics(self.enabled)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # ------------------------------------------------------------------ inputs
    def _on_chunk(self, msg: ActionChunk) -> None:
        topic, now = self.cfg.action_chunk_topic, self._now()
        try:
            stamp, period, actions = parse_action_chunk(msg, topic)
            passed = self.core.add_chunk(stamp, period, list(msg.joint_names), actions, now)
        except ChunkRejectedError as exc:  # counted by the core
            self.warn((topic, exc.reason), f'rejecting chunk {msg.chunk_id}: {topic}: {exc}')
            return
        except ValueError as exc:  # sizes that do not add up; the text names the topic
            self.core.chunks['rejected'] += 1
            self.warn((topic, 'malformed'), f'rejecting chunk {msg.chunk_id}: {exc}')
            return
        if passed == len(actions):
            self.warn((topic, 'late'), f'{topic}: chunk {msg.chunk_id} came {now - stamp:.3f} s '
                      f'after its observation: all {len(actions)} rows had passed')

    def _on_joints(self, msg: JointState) -> None:
        if self.core.joint_names is None:
            return
        topic = self.cfg.joint_states_topic
        try:
            match = reorder_joints(msg.name, msg.position, self.core.joint_names)
        except ValueError as exc:
            self.warn((topic, 'malformed'), f'{topic}: {exc}')
            return
        if not match.ok:
            self.warn((topic, 'unusable'), f'{topic}: missing {list(match.missing)}, NaN/inf '
                      f'{list(match.nonfinite)}: not used as the hold position')
            return
        self.core.set_joint_state(match.positions, self._now())

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response):
        problem = None
        if request.data and not self.enabled:
            problem = self.core.enable(self._now())  # starts from the measured position
        if problem is None:
            self.enabled = bool(request.data)
        response.success = problem is None
        response.message = (f'actuation {"enabled" if self.enabled else "disabled"}: commands '
                            f'go to {self._out_topic()}')
        if problem is not None:
            response.message = f'refusing to enable: {problem}; ' + response.message
        self.get_logger().info(response.message)
        self._publish_diagnostics()  # at once: policy_node's RTC reads whether chunks run
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response):
        self._reset()
        response.success = True
        response.message = ('chunks dropped; ramping to the measured position (or holding) '
                            'until a new chunk')
        return response

    def _reset(self) -> None:
        self.core.reset(self._now())
        self.get_logger().info('reset: chunks dropped')
        self._publish_diagnostics()

    # ------------------------------------------------------------------ the control tick
    def _tick(self) -> None:
        now = self._now()
        if self.last_now is not None and now < self.last_now:
            self.get_logger().warning(f'clock went back from {self.last_now:.3f} s to '
                                      f'{now:.3f} s (bag or simulator restart?)')
            self._reset()
        self.last_now = now
        out = self.core.tick(now)
        if out is None:
            return
        if out.status != self.status:
            self.status = out.status
            self.log_status(out.status, f'status {out.status} ({self._age_text(now)})')
            self._publish_diagnostics()  # transitions are reported at once
        if out.command is not None:
            self.outputs.publish(out.command, self.core.joint_names, self.enabled, self.dt)

    # ------------------------------------------------------------------ reporting
    def _age_text(self, now: float) -> str:
        age = self.core.chunk_age(now)
        return 'no chunk yet' if age is None else f'newest chunk {age:.3f} s old'

    def _values(self) -> dict[str, object]:
        now = self._now()
        values: dict[str, object] = {
            'enabled': self.enabled, 'output_topic': self._out_topic(), 'mode': self.cfg.mode,
            'status': self.status, 'chunk_age_s': (
                'none' if (age := self.core.chunk_age(now)) is None else age),
            'chunks_held': self.core.ensembler.num_chunks,
            **{f'chunks_{k}': v for k, v in self.core.chunks.items()}}
        if self.core.safety is not None:
            c = self.core.safety.counts
            values.update({'executed': c.executed, 'clamped_position': c.clamped_position,
                           'clamped_velocity': c.clamped_velocity,
                           **{f'holds_{k[5:]}': v for k, v in c.holds.items()}})
        return values

    def _publish_diagnostics(self) -> None:
        level = DiagnosticStatus.OK if self.status == OK else DiagnosticStatus.WARN
        message = self.status if self.status != NO_REFERENCE else (
            f'no command yet: waiting for {self.cfg.action_chunk_topic} and '
            f'{self.cfg.joint_states_topic}')
        self.diag_pub.publish(make_diagnostics(
            self.get_clock().now().to_msg(), f'{self.get_name()}: control', level, message,
            self._values()))

    def _log_counts(self) -> None:
        self.get_logger().info(', '.join(f'{k} {v:.3f}' if isinstance(v, float) else f'{k} {v}'
                                         for k, v in self._values().items()))


def main(args=None) -> int:
    return run_node(ExecutorNode, 'executor_node', args)


if __name__ == '__main__':
    main()
