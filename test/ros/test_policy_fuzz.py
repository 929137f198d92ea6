"""A bounded fuzz of policy_node's inputs over DDS (#17): fixed seed, well-typed messages.

For ``FUZZ_S`` seconds (env ``PI05_POLICY_FUZZ_S``, default 20) a publisher sends random images
(random sizes up to and beyond max_image_size, random and unknown encodings, data lengths that
lie, 0 K and saturated thermal frames), joint states (random names and lengths, NaN, inf, 1e30,
duplicates) and prompts (random unicode, surrogates excepted: DDS strings are UTF-8) to a
``preset:tiny`` policy_node. The node must stay alive, and valid chunks must resume once valid
input comes back. The node's RSS is sampled and printed (``-s``) as the evidence for #17 item 8.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from policy_probe import CAMERAS, GOOD_JOINTS, JOINTS, PolicyProbe, start_policy_node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String

from pi05_moe_policy.nodes import qos

FUZZ_S = float(os.environ.get('PI05_POLICY_FUZZ_S', '20'))
MAX_IMAGE = int(os.environ.get('PI05_POLICY_FUZZ_MAX_IMAGE', '2048'))  # max_image_size
BIG = int(os.environ.get('PI05_POLICY_FUZZ_BIG', '1000'))  # the largest valid frame's side
# The node keeps the newest frame per camera, each bounded by max_image_size: its memory may
# rise to a high-water mark (allocator arenas, buffers of the largest frames seen) but not run
# away. Measured over 150 s here: 434 -> 532 MB (+58 MB in the first 20 s, +40 MB in the next
# 130 s). Issue #17 saw 450 -> 730-760 MB under its own fuzz, before frames were bounded.
MAX_GROWTH_MB = float(os.environ.get('PI05_POLICY_FUZZ_MAX_GROWTH_MB', '200'))
ENCODINGS = ['rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', '8UC1', '8UC3', 'mono16', '16UC1',
             '32FC1', 'yuv422', '', 'rgb8\x00']
BYTES = {'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 1, '8UC1': 1, '8UC3': 3,
         'mono16': 2, '16UC1': 2, '32FC1': 4}


def rss_mb(pid: int) -> float:
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return float('nan')


def random_text(rng: np.random.Generator) -> str:
    n = int(rng.integers(0, 700))
    points = rng.integers(1, 0x10FFFF, n)
    points = points[(points < 0xD800) | (points > 0xDFFF)]  # no surrogates
    mix = ''.join(map(chr, points))
    return rng.choice([mix, '³ lift ① the ² cube', 'lift ' * int(rng.integers(1, 200)), ''])


def random_image(rng: np.random.Generator, thermal: bool) -> Image:
    if rng.random() < 0.4:  # a valid frame of a random size: inference runs on it
        h, w = (int(v) for v in rng.integers(16, BIG + 1, 2))
        if thermal:
            return Image(height=h, width=w, encoding='mono16', step=2 * w,
                         data=np.full(h * w, 30315, np.uint16).tobytes())
        return Image(height=h, width=w, encoding='rgb8', step=3 * w,
                     data=rng.integers(0, 256, 3 * h * w, dtype=np.uint8).tobytes())
    encoding = str(rng.choice(ENCODINGS))
    h, w = (int(v) for v in rng.choice([1, 8, 17, 64, 240, 480, BIG, 5000], 2))
    pixel = BYTES.get(encoding, 3)
    step = w * pixel + int(rng.choice([0, 0, 0, 1, -1]))
    n = max(0, step * h) if rng.random() < 0.8 else int(rng.integers(0, 5000))
    n = min(n, 4 * BIG * BIG)  # 5000x5000 claims come with too little data: must not be read
    if encoding in ('mono16', '16UC1') and rng.random() < 0.5:
        data = np.full(n // 2, rng.choice([0, 65535, 30315]), np.uint16).tobytes()
    else:
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    msg = Image(height=h, width=w, encoding=encoding, step=max(step, 0),
                is_bigendian=int(rng.random() < 0.2), data=data)
    return msg


def random_joints(rng: np.random.Generator) -> JointState:
    if rng.random() < 0.5:
        return JointState(name=JOINTS, position=GOOD_JOINTS)
    n = int(rng.integers(0, 12))
    pool = [*JOINTS, 'mystery', '', 'wäist', 'joint_0']
    names = [str(rng.choice(pool)) for _ in range(n)] if rng.random() < 0.5 \
        else list(rng.permutation(JOINTS))
    values = rng.choice([0.1, -0.5, np.nan, np.inf, -np.inf, 1e30, 100.0, 0.99],
                        max(0, len(names) + int(rng.choice([0, 0, 0, 1, -1]))))
    return JointState(name=names, position=[float(v) for v in values])


@pytest.mark.timeout(FUZZ_S + 100)
def test_policy_node_survives_fuzzed_inputs(ros, spawn, tmp_path, wait_until):
    proc = start_policy_node(spawn, tmp_path / 'policy.yaml', max_image_size=MAX_IMAGE)
    probe = PolicyProbe(ros, 'fuzz_probe')
    node = probe.node
    image_pubs = {n: node.create_publisher(Image, t, qos.SENSOR) for n, t in CAMERAS.items()}
    joint_pub = node.create_publisher(JointState, '/joint_states', qos.SENSOR)
    prompt_pub = node.create_publisher(String, '/pi05_moe/prompt', qos.PROMPT)
    try:
        wait_until(lambda: probe.chunks_since(0), 60, 'chunks before the fuzz', process=proc)
        probe.on = False
        rng = np.random.default_rng(17)
        samples = [(0.0, rss_mb(proc.proc.pid))]
        t0 = time.monotonic()
        sent, chunks_before = 0, len(probe.chunks_since(0))
        while time.monotonic() - t0 < FUZZ_S:
            stamp = node.get_clock().now().to_msg()
            for name, pub in image_pubs.items():
                if rng.random() < 0.7:
                    msg = random_image(rng, name == 'thermal')
                    msg.header.stamp = stamp
                    pub.publish(msg)
                    sent += 1
            msg = random_joints(rng)
            msg.header.stamp = stamp
            joint_pub.publish(msg)
            if rng.random() < 0.1:
                prompt_pub.publish(String(data=random_text(rng)))
            sent += 1
            if time.monotonic() - t0 > len(samples) * 2.0:
                samples.append((time.monotonic() - t0, rss_mb(proc.proc.pid)))
            assert proc.alive, proc.tail()
            time.sleep(0.01)
        samples.append((time.monotonic() - t0, rss_mb(proc.proc.pid)))
        print(f'\nfuzz: {sent} messages in {FUZZ_S:g} s, '
              f'{len(probe.chunks_since(0)) - chunks_before} chunks; policy_node RSS (s, MB): '
              + ', '.join(f'({t:.0f}, {m:.0f})' for t, m in samples))
        assert proc.alive, proc.tail()
        growth = max(m for _, m in samples) - samples[0][1]
        assert growth < MAX_GROWTH_MB, f'policy_node RSS grew by {growth:.0f} MB under the fuzz'

        probe.prompt_pub.publish(String(data='lift the red cube'))
        probe.joints = lambda stamp: (JOINTS, GOOD_JOINTS)
        probe.on = True
        t_valid = time.monotonic()
        wait_until(lambda: [c for c in probe.chunks_since(t_valid)
                            if c.prompt == 'lift the red cube'], 30,
                   'valid chunks after the fuzz', process=proc)
        chunk = probe.chunks_since(t_valid)[-1]
        assert list(chunk.joint_names) == JOINTS and np.isfinite(chunk.actions).all()
        assert not proc.matching(r'Traceback|inference failed'), proc.text
    finally:
        ros.remove(probe.node)
        assert proc.stop() == 0, proc.tail()
