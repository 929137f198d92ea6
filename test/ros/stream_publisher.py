"""Child process for the recorder tests and bench: publishes image + joint-state streams.

Protocol on stdin/stdout (one JSON object per line):
- prints ``{"ready": true}`` once every publisher has a subscriber;
- waits for a line on stdin ("go"), publishes for ``--seconds``, then prints
  ``{"published": {topic: [stamp_ns, ...]}, "late_ms": ...}`` (the header stamps sent);
- waits for another line on stdin (or EOF) before exiting, so reliable writers can finish
  delivering what they sent.
- ``--skip-every N`` stamps every stream on its ideal grid (start + i / rate) and never sends
  every Nth message (i % N == N - 1): loss as DDS makes it, which the recorder must notice
  (``"skipped": {topic: n}`` in the report).

Usage: stream_publisher.py --cameras /a/image_raw /b/image_raw --image-hz 30 --joint-hz 100
       --seconds 20 [--size 224] [--reliability reliable|best_effort]
"""

import argparse
import json
import sys
import time

import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import Image, JointState


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument('--cameras', nargs='+', required=True)
    p.add_argument('--joint-topic', default='/joint_states')
    p.add_argument('--image-hz', type=float, default=30.0)
    p.add_argument('--joint-hz', type=float, default=100.0)
    p.add_argument('--seconds', type=float, default=20.0)
    p.add_argument('--size', type=int, default=224, help='square images of this side')
    p.add_argument('--width', type=int, help='image width (default --size)')
    p.add_argument('--height', type=int, help='image height (default --size)')
    p.add_argument('--reliability', choices=('reliable', 'best_effort'), default='reliable')
    p.add_argument('--depth', type=int, default=100)
    p.add_argument('--wait-s', type=float, default=60.0, help='give up waiting for subscribers')
    p.add_argument('--skip-every', type=int, default=0, help='never send every Nth message')
    return p.parse_args()


def main() -> None:
    args = parse()
    rclpy.init()
    node = Node('stream_publisher')
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=args.depth,
                     reliability=ReliabilityPolicy[args.reliability.upper()],
                     durability=DurabilityPolicy.VOLATILE)
    image_pubs = {t: node.create_publisher(Image, t, qos) for t in args.cameras}
    joint_pub = node.create_publisher(JointState, args.joint_topic, qos)
    rng = np.random.default_rng(0)
    images = {}
    width, height = args.width or args.size, args.height or args.size
    for topic in args.cameras:
        msg = Image(height=height, width=width, encoding='rgb8', step=3 * width)
        msg.data = rng.integers(0, 256, width * height * 3, dtype=np.uint8).tobytes()
        images[topic] = msg
    joints = JointState(name=[f'joint{i}' for i in range(7)])

    pubs = [*image_pubs.values(), joint_pub]
    deadline = time.monotonic() + args.wait_s
    while min(p.get_subscription_count() for p in pubs) < 1:
        if time.monotonic() > deadline:
            print(json.dumps({'ready': False, 'error': 'no subscriber'}), flush=True)
            sys.exit(1)
        time.sleep(0.05)
    print(json.dumps({'ready': True}), flush=True)
    sys.stdin.readline()

    periods = {t: 1.0 / args.image_hz for t in args.cameras}
    periods[args.joint_topic] = 1.0 / args.joint_hz
    published: dict[str, list[int]] = {t: [] for t in periods}
    sent = dict.fromkeys(periods, 0)  # messages due so far per topic, sent or skipped
    start = time.monotonic()
    t0 = node.get_clock().now().nanoseconds
    due = dict.fromkeys(periods, start)
    late = 0.0
    while True:
        topic = min(due, key=due.get)
        if due[topic] - start >= args.seconds:
            break
        wait = due[topic] - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        late = max(late, -wait)
        stamp = node.get_clock().now()
        index, sent[topic] = sent[topic], sent[topic] + 1
        due[topic] += periods[topic]
        if args.skip_every:
            stamp = Time(nanoseconds=t0 + round(index * periods[topic] * 1e9))
            if index % args.skip_every == args.skip_every - 1:
                continue
        if topic == args.joint_topic:
            joints.header.stamp = stamp.to_msg()
            joints.position = [float(len(published[topic]))] * 7
            joint_pub.publish(joints)
        else:
            images[topic].header.stamp = stamp.to_msg()
            image_pubs[topic].publish(images[topic])
        published[topic].append(stamp.nanoseconds)
    skipped = {t: sent[t] - len(published[t]) for t in periods}
    print(json.dumps({'published': published, 'skipped': skipped,
                      'late_ms': round(late * 1e3, 1),
                      'elapsed_s': round(time.monotonic() - start, 3)}), flush=True)
    sys.stdin.readline()
    node.destroy_node()
    rclpy.shutdown()


if __name__ == '__main__':
    main()
