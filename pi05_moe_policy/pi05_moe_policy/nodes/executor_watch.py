"""policy_node's view of the executor for real-time chunking: executor_node's DiagnosticStatus
(published at every enable, reset and status change, and periodically) says whether it runs the
chunks it is sent. While it does not, the RtcPlanner gives no prefix (core.rtc)."""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node

from pi05_moe_policy.core.rtc import RtcPlanner, executor_executes
from pi05_moe_policy.nodes import qos


def watch_executor(node: Node, topic: str, status_name: str, planner: RtcPlanner) -> None:
    """Subscribe ``node`` to ``topic`` and pass the status named ``status_name`` to
    ``planner.executor_state`` (other statuses on the topic are ignored)."""
    def on_diagnostics(msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == status_name:
                planner.executor_state(executor_executes({kv.key: kv.value
                                                          for kv in status.values}))

    node.create_subscription(DiagnosticArray, topic, on_diagnostics, qos.STATUS)
