"""executor_node: ActionChunks -> ensembled, safety-filtered commands for ros2_control.

A control-rate timer (node clock, so sim time under ``use_sim_time``) asks the temporal
ensembler for the action for *now* and passes it through the safety filter (joint limits,
velocity limits, stale-chunk watchdog, NaN rejection). Actuation is off by default: commands go
to the preview topic until ``~/enable`` (std_srvs/SetBool) is called; enabling restarts the rate
limiter from the measured joint positions. ``~/reset`` (std_srvs/Trigger) drops every chunk.
Parameters: :class:`pi05_moe_policy.nodes.config.ExecutorNodeConfig`.
"""

from __future__ import annotations

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from pi05_moe_msgs.msg import ActionChunk
from pi05_moe_policy.core.ensembler import TemporalEnsembler
from pi05_moe_policy.core.joint_state import reorder_joints
from pi05_moe_policy.core.rate_limited_log import RateLimitedLog
from pi05_moe_policy.core.safety import NO_REFERENCE, OK, SafetyFilter
from pi05_moe_policy.nodes import qos
from pi05_moe_policy.nodes.config import ExecutorNodeConfig
from pi05_moe_policy.nodes.main import run_node
from pi05_moe_policy.nodes.msg_convert import make_command, make_diagnostics, parse_action_chunk
from pi05_moe_policy.nodes.ros_params import declare_config


class ExecutorNode(Node):
    def __init__(self) -> None:
        super().__init__('executor_node')
        self.cfg = cfg = declare_config(self, ExecutorNodeConfig)
        self.dt = 1.0 / cfg.control_hz
        self.ensembler = TemporalEnsembler(cfg)
        self.warn = RateLimitedLog(self.get_logger().warning, cfg.warn_period)
        # A lambda, not the bound method: rclpy fixes one severity per calling line.
        self.log_status = RateLimitedLog(lambda text: self.get_logger().info(text),
                                         cfg.warn_period)
        self.joint_names: list[str] | None = None
        self.safety: SafetyFilter | None = None
        if cfg.joint_names:
            self._set_joints(list(cfg.joint_names))
        self.enabled = cfg.enabled
        self.measured: np.ndarray | None = None  # (D,) latest joint positions
        self.newest_stamp: float | None = None  # observation time of the newest chunk kept
        self.last_now: float | None = None
        self.status = NO_REFERENCE
        self.chunks = {'received': 0, 'late': 0, 'rejected': 0}
        msg_type = Float64MultiArray if cfg.output == 'commands' else JointTrajectory
        self.command_pub = self.create_publisher(msg_type, cfg.command_topic, qos.COMMAND)
        self.preview_pub = self.create_publisher(msg_type, cfg.preview_topic, qos.COMMAND)
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
        return self.cfg.command_topic if self.enabled else self.cfg.preview_topic

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _set_joints(self, names: list[str]) -> None:
        self.safety = SafetyFilter(self.cfg, len(names))  # raises on limits of the wrong length
        self.joint_names = names

    # ------------------------------------------------------------------ inputs
    def _on_chunk(self, msg: ActionChunk) -> None:
        topic = self.cfg.action_chunk_topic
        now = self._now()
        try:
            stamp, period, actions = parse_action_chunk(msg, topic)
            if self.joint_names is None:
                self._set_joints(list(msg.joint_names))
            elif list(msg.joint_names) != self.joint_names:
                raise ValueError(f'{topic}: chunk joint names {list(msg.joint_names)} differ '
                                 f'from {self.joint_names}')
            passed = self.ensembler.add(stamp, period, actions, now)
        except ValueError as exc:
            self.chunks['rejected'] += 1
            self.warn((topic, 'rejected'), f'rejecting chunk {msg.chunk_id}: {exc}')
            return
        self.chunks['received'] += 1
        if passed == len(actions):
            self.chunks['late'] += 1
            self.warn((topic, 'late'), f'{topic}: chunk {msg.chunk_id} came {now - stamp:.3f} s '
                      f'after its observation: all {len(actions)} rows had passed')
            return
        self.newest_stamp = stamp if self.newest_stamp is None else max(stamp, self.newest_stamp)

    def _on_joints(self, msg: JointState) -> None:
        if self.joint_names is None:
            return
        topic = self.cfg.joint_states_topic
        try:
            match = reorder_joints(msg.name, msg.position, self.joint_names)
        except ValueError as exc:
            self.warn((topic, 'malformed'), f'{topic}: {exc}')
            return
        if not match.ok:
            self.warn((topic, 'unusable'), f'{topic}: missing {list(match.missing)}, NaN/inf '
                      f'{list(match.nonfinite)}: not used as the hold position')
            return
        self.measured = match.positions
        self.safety.seed(self.measured)

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response):
        if request.data and not self.enabled and self.safety is not None:
            self.safety.reset(self.measured)  # move on from where the robot *is*
        self.enabled = bool(request.data)
        response.success = True
        response.message = (f'actuation {"enabled" if self.enabled else "disabled"}: commands '
                            f'go to {self._out_topic()}')
        if self.enabled and self.measured is None:
            response.message += f'; waiting for {self.cfg.joint_states_topic} to start'
        self.get_logger().info(response.message)
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response):
        self._reset()
        response.success = True
        response.message = 'chunks dropped; holding the measured position until a new chunk'
        return response

    def _reset(self) -> None:
        self.ensembler.reset()
        self.newest_stamp = None
        if self.safety is not None:
            self.safety.reset(self.measured)
        self.get_logger().info('reset: chunks dropped')

    # ------------------------------------------------------------------ the control tick
    def _tick(self) -> None:
        now = self._now()
        if self.last_now is not None and now < self.last_now:
            self.get_logger().warning(f'clock went back from {self.last_now:.3f} s to '
                                      f'{now:.3f} s (bag or simulator restart?)')
            self._reset()
        self.last_now = now
        if self.safety is None:
            return
        out = self.safety.step(now, self.ensembler.action_at(now), self.newest_stamp, self.dt)
        if out.status != self.status:
            self.status = out.status
            self.log_status(out.status, f'status {out.status} ({self._age_text(now)})')
            self._publish_diagnostics()  # transitions are reported at once
        if out.command is not None:
            msg = make_command(self.cfg.output, self.joint_names, out.command, self.dt)
            (self.command_pub if self.enabled else self.preview_pub).publish(msg)

    # ------------------------------------------------------------------ reporting
    def _age_text(self, now: float) -> str:
        if self.newest_stamp is None:
            return 'no chunk yet'
        return f'newest chunk {now - self.newest_stamp:.3f} s old'

    def _values(self) -> dict[str, object]:
        now = self._now()
        values: dict[str, object] = {
            'enabled': self.enabled, 'output_topic': self._out_topic(), 'mode': self.cfg.mode,
            'status': self.status, 'chunk_age_s': (
                now - self.newest_stamp if self.newest_stamp is not None else 'none'),
            'chunks_held': self.ensembler.num_chunks,
            **{f'chunks_{k}': v for k, v in self.chunks.items()}}
        if self.safety is not None:
            c = self.safety.counts
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
