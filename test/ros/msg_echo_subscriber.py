"""Child process for test_msgs_roundtrip: subscribes to both interface topics and prints each
received message as one JSON line on stdout, then exits after ``count`` messages per topic."""

import json
import sys

import rclpy
from rclpy.node import Node

from pi05_moe_msgs.msg import ActionChunk, RoutingWeights


def to_plain(msg):
    """A message as JSON-able nested dicts (arrays become lists)."""
    if hasattr(msg, 'get_fields_and_field_types'):
        return {f: to_plain(getattr(msg, f)) for f in msg.get_fields_and_field_types()}
    if isinstance(msg, (list, tuple)) or hasattr(msg, 'tolist'):
        return [to_plain(x) for x in (msg.tolist() if hasattr(msg, 'tolist') else msg)]
    return msg


def main() -> None:
    count = int(sys.argv[1])
    rclpy.init()
    node = Node('msg_echo_subscriber')
    seen = {'chunk': 0, 'routing': 0}

    def emit(kind):
        def cb(msg):
            seen[kind] += 1
            print(json.dumps({'kind': kind, 'msg': to_plain(msg)}), flush=True)
        return cb

    node.create_subscription(ActionChunk, '/test/action_chunk', emit('chunk'), 10)
    node.create_subscription(RoutingWeights, '/test/routing', emit('routing'), 10)
    print(json.dumps({'kind': 'ready'}), flush=True)
    while rclpy.ok() and min(seen.values()) < count:
        rclpy.spin_once(node, timeout_sec=0.1)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == '__main__':
    main()
