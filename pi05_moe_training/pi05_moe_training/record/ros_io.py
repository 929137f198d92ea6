"""The recorder's ROS-side helpers: its status QoS, message classes and subscription QoS.

Kept apart from ``recorder_node`` so the node stays a thin translation of parameters, services
and callbacks onto :class:`~pi05_moe_training.record.recording.EpisodeRecorder`.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.interfaces import Qos

from pi05_moe_training.bags.writer import make_qos
from pi05_moe_training.record.recording import subscription_qos

STATUS_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                        reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)


def message_class(msgtype: str) -> type:
    """The rclpy class of ``'pkg/msg/Name'`` (raises ValueError naming the type)."""
    pkg, kind, name = msgtype.split('/')
    try:
        return getattr(importlib.import_module(f'{pkg}.{kind}'), name)
    except (ImportError, AttributeError):
        raise ValueError(f'message type {msgtype!r} is not importable in this environment '
                         '(is its package built and sourced?)') from None


def offered_qos(publishers: Sequence[Any]) -> tuple[str, str, list[Qos]]:
    """From ``Node.get_publishers_info_by_topic``: the (reliability, durability) to subscribe
    with, as ``ros2 bag record`` chooses them, and the offered QoS to store in the bag."""
    offered = [(p.qos_profile.reliability.name.lower(), p.qos_profile.durability.name.lower(),
                max(0, p.qos_profile.depth)) for p in publishers]
    reliability, durability = subscription_qos([(r, d) for r, d, _ in offered])
    return reliability, durability, [make_qos(r, d, depth) for r, d, depth in offered]


def subscription_profile(reliability: str, durability: str, depth: int) -> QoSProfile:
    """A KEEP_LAST ``depth`` profile with rosbag2's lower-case policy names."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy[reliability.upper()],
                      durability=DurabilityPolicy[durability.upper()])
