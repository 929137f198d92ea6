"""The executor's command publishers: one output, or one per output group (needs rclpy).

Without ``output_groups`` the whole command goes to ``/<controller>/commands`` (or
``/joint_trajectory``), and to ``preview_topic`` while actuation is disabled. With groups, each
group's joints go, mapped to the controller's units (:mod:`pi05_moe_policy.core.output_groups`),
to that group's controller, and to ``<preview_topic>/<group>`` while disabled.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rclpy.node import Node
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from pi05_moe_policy.core.output_groups import plan_groups
from pi05_moe_policy.nodes import qos
from pi05_moe_policy.nodes.msg_convert import make_command

MSG_TYPES = {'commands': Float64MultiArray, 'joint_trajectory': JointTrajectory}


class CommandOutputs:
    def __init__(self, node: Node, cfg, joint_names: Sequence[str] | None) -> None:
        self.groups = plan_groups(cfg, joint_names or [])
        # (output, joints (None: all), group (None: no map), command topic, preview topic)
        if self.groups:
            self._outs = [(g.output, g.joints, g, g.topic, f'{cfg.preview_topic}/{g.name}')
                          for g in self.groups]
        else:
            self._outs = [(cfg.output, None, None, cfg.command_topic, cfg.preview_topic)]
        self._pubs = [(node.create_publisher(MSG_TYPES[o], topic, qos.COMMAND),
                       node.create_publisher(MSG_TYPES[o], preview, qos.COMMAND))
                      for o, _, _, topic, preview in self._outs]

    def topics(self, enabled: bool) -> str:
        """Where commands go now (for log lines and diagnostics)."""
        return ', '.join(out[3 if enabled else 4] for out in self._outs)

    def publish(self, command: np.ndarray, joint_names: Sequence[str], enabled: bool,
                period: float) -> None:
        """Publish the (D,) command (policy units, after the safety filter)."""
        for (output, joints, group, _, _), pubs in zip(self._outs, self._pubs):
            values = command if group is None else group.command(command)  # (G,)
            msg = make_command(output, joints or joint_names, values, period)
            pubs[0 if enabled else 1].publish(msg)
