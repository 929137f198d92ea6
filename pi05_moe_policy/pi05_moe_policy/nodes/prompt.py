"""The policy's prompt input: a topic any publisher can set, a parameter, and a latched echo.

Three ways in, one prompt (the newest wins; an empty one is refused and the old one kept):

- ``prompt_topic`` (std_msgs/String) with **two** subscriptions. A subscription's durability
  decides whom it matches: a transient-local one gets the prompt a latched publisher sent before
  the node started (the late-joiner case), but refuses volatile publishers, which is every
  ``ros2 topic pub`` from Jazzy on (Humble's offers transient-local). A volatile one matches both
  but gets no history. So the node subscribes with both (``qos.PROMPT`` and
  ``qos.PROMPT_VOLATILE``); a latched publisher's message then arrives twice, which is harmless
  (an unchanged prompt is ignored). The transient-local subscription's incompatible-QoS warning
  for volatile publishers is silenced here: the volatile one serves them. (The volatile
  publisher's own process still logs that one subscription requested an incompatible QoS; the
  prompt arrives all the same.)
- the ``prompt`` parameter, settable at run time through the node's standard
  ``~/set_parameters`` service (rcl_interfaces/srv/SetParameters): ``ros2 param set /policy_node
  prompt "lift the hot cube"``, or rqt_reconfigure. Chosen over a new service type because every
  ROS tool already speaks it, it reports a refusal (``reason``), and ``ros2 param get`` reads the
  prompt back.
- the prompt in use is republished, reliable + transient-local (depth 1), on
  ``prompt_in_use_topic`` (``/policy_node/prompt``), so a late joiner learns the current prompt
  however it was set (a volatile ``ros2 topic pub --once`` is gone for anyone who joins later).
  Not on ``prompt_topic`` itself: the node would hear its own echo, which can arrive after a newer
  prompt and undo it.
"""

from __future__ import annotations

from collections.abc import Callable

from rcl_interfaces.msg import SetParametersResult
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import String

from pi05_moe_policy.core.observation import clean_prompt
from pi05_moe_policy.nodes import qos


class PromptInput:
    """Keeps ``prompt`` (the newest accepted one) for ``node``; ``warn(key, text)`` logs the
    rate-limited problems of topic prompts (a parameter's are the service's reply)."""

    def __init__(self, node: Node, topic: str, in_use_topic: str, initial: str, max_chars: int,
                 warn: Callable[[object, str], None]) -> None:
        self.node, self.topic, self.max_chars, self.warn = node, topic, max_chars, warn
        self.prompt = initial
        self._pub = node.create_publisher(String, in_use_topic, qos.PROMPT)
        silent = SubscriptionEventCallbacks(incompatible_qos=lambda info: None)
        node.create_subscription(String, topic, self._on_msg, qos.PROMPT, event_callbacks=silent)
        node.create_subscription(String, topic, self._on_msg, qos.PROMPT_VOLATILE)
        node.add_on_set_parameters_callback(self._on_params)
        self._pub.publish(String(data=initial))

    def _on_msg(self, msg: String) -> None:
        prompt, problem = clean_prompt(msg.data, self.max_chars)
        if problem:
            self.warn((self.topic, 'prompt'), f'{self.topic}: {problem}')
        if self._set(prompt, self.topic):  # keep the parameter equal (ros2 param get)
            self.node.set_parameters([Parameter('prompt', value=prompt)])

    def _on_params(self, params: list) -> SetParametersResult:
        for p in params:
            if p.name != 'prompt':
                continue
            prompt, problem = clean_prompt(str(p.value), self.max_chars)
            if not prompt:
                return SetParametersResult(successful=False, reason=f'prompt: {problem}')
            self._set(prompt, 'parameter prompt')
        return SetParametersResult(successful=True)

    def _set(self, prompt: str, source: str) -> bool:
        """Take ``prompt`` if it is new; True when it was."""
        if not prompt or prompt == self.prompt:
            return False
        self.prompt = prompt
        self._pub.publish(String(data=prompt))
        self.node.get_logger().info(f'prompt ({source}): {prompt[:80]!r}')
        return True
