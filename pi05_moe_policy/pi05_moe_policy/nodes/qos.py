"""Named QoS profiles shared by every pi05_moe node (needs rclpy).

Publishers and subscribers pick a profile by what the data *is*, never by ad-hoc numbers:
- ``SENSOR``: camera images and joint states. Best effort, shallow: a late frame is worthless, and
  a best-effort subscriber also matches reliable publishers (e.g. joint_state_broadcaster).
- ``COMMAND``: action chunks and joint commands. Reliable: every command counts.
- ``PROMPT``: the task prompt. Reliable + transient-local, depth 1: a late joiner gets the current
  prompt.
- ``PROMPT_VOLATILE``: the prompt as a volatile publisher sends it (``ros2 topic pub`` from Jazzy
  on); the policy subscribes with both prompt profiles (see ``nodes/prompt.py``).
- ``STATUS``: diagnostics, routing weights, episode status. Reliable, moderate depth.
- ``CLOCK``: ``/clock`` from the simulator or bag replay. Best effort, depth 1 (as rclpy's time
  source subscribes), published fast.
"""

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)

SENSOR = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=5,
    reliability=ReliabilityPolicy.BEST_EFFORT,
    durability=DurabilityPolicy.VOLATILE,
)

COMMAND = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)

PROMPT = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)

PROMPT_VOLATILE = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)

STATUS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)

CLOCK = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.BEST_EFFORT,
    durability=DurabilityPolicy.VOLATILE,
)

# /joint_states as joint_state_broadcaster publishes it (rclcpp::SystemDefaultsQoS: reliable,
# volatile, keep last 10), not sensor-data QoS: a reliable (default) subscriber would get nothing
# from a best-effort publisher. Best-effort subscribers (the policy, the executor) still match.
JOINT_STATES = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
