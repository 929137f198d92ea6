"""Message <-> numpy for the policy and executor nodes. Needs message classes, not rclpy.init.

Times are float seconds on the node's clock throughout the core (about 0.24 us resolution at
epoch scale). Outgoing header stamps are copied from the input message, never rebuilt from a
float, so a chunk's stamp equals its observation's stamp to the nanosecond.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Float64MultiArray, MultiArrayDimension
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from pi05_moe_msgs.msg import ActionChunk, RoutingWeights
from pi05_moe_policy.core.stamps import sec_nanosec, stamp_to_sec


def sec_to_stamp(t: float) -> Time:
    sec, nanosec = sec_nanosec(t)
    return Time(sec=sec, nanosec=nanosec)


def make_action_chunk(stamp: Time, chunk_id: int, joint_names: Sequence[str],
                      actions: np.ndarray, period: float, inference_ms: float, prompt: str,
                      routing: Mapping[str, float]) -> ActionChunk:
    """An ActionChunk from ``actions`` (H, A) in robot units."""
    horizon, dim = actions.shape
    msg = ActionChunk(chunk_id=int(chunk_id), joint_names=list(joint_names), horizon=horizon,
                      action_dim=dim, period=float(period), inference_ms=float(inference_ms),
                      prompt=prompt, expert_names=list(routing),
                      routing_weights=[float(w) for w in routing.values()])
    msg.header.stamp = stamp
    msg.actions = np.ascontiguousarray(actions, dtype=np.float32).ravel()  # (H * A,)
    return msg


def parse_action_chunk(msg: ActionChunk, topic: str) -> tuple[float, float, np.ndarray]:
    """(stamp s, period s, actions (H, A) float64); ``ValueError`` naming the topic if bad."""
    h, a = int(msg.horizon), int(msg.action_dim)
    n = len(msg.actions)
    if h * a != n or len(msg.joint_names) != a:
        raise ValueError(f'{topic}: chunk {msg.chunk_id} is inconsistent: horizon {h} x '
                         f'action_dim {a} vs {n} actions and {len(msg.joint_names)} joint names')
    actions = np.asarray(msg.actions, dtype=np.float64).reshape(h, a)  # (H, A)
    return stamp_to_sec(msg.header.stamp), float(msg.period), actions


def make_routing(stamp: Time, chunk_id: int, routing: Mapping[str, float],
                 present: Sequence[bool], base_camera: str) -> RoutingWeights:
    msg = RoutingWeights(expert_names=list(routing), weights=[float(w) for w in routing.values()],
                         present=[int(bool(p)) for p in present], base_camera=base_camera,
                         chunk_id=int(chunk_id))
    msg.header.stamp = stamp
    return msg


def make_command(output: str, joint_names: Sequence[str], command: np.ndarray,
                 period: float) -> Float64MultiArray | JointTrajectory:
    """The controller message for ``command`` (D,): forward-command array or a one-point
    trajectory reached after one control period (header stamp zero = start now)."""
    if output == 'commands':
        msg = Float64MultiArray(data=[float(v) for v in command])
        msg.layout.dim = [MultiArrayDimension(label='joints', size=len(command), stride=1)]
        return msg
    sec, nanosec = sec_nanosec(period)
    point = JointTrajectoryPoint(positions=[float(v) for v in command],
                                 time_from_start=Duration(sec=sec, nanosec=nanosec))
    return JointTrajectory(joint_names=list(joint_names), points=[point])


def make_diagnostics(stamp: Time, name: str, level: bytes, message: str,
                     values: Mapping[str, object]) -> DiagnosticArray:
    """One DiagnosticStatus (level: DiagnosticStatus.OK/WARN/ERROR) in a DiagnosticArray."""
    def text(v: object) -> str:
        return f'{v:.3f}' if isinstance(v, float) else str(v)

    status = DiagnosticStatus(level=level, name=name, message=message,
                              hardware_id='pi05_moe',
                              values=[KeyValue(key=k, value=text(v)) for k, v in values.items()])
    msg = DiagnosticArray(status=[status])
    msg.header.stamp = stamp
    return msg
