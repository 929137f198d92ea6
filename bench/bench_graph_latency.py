"""Latency through the real policy + executor graph (``preset:tiny``), and executor tick jitter.

    source env.sh && python bench/bench_graph_latency.py [--seconds 15] [--num-threads 1]

Starts ``pi05-moe up`` on a private ROS domain and measures, from a probe node in this process:

1. camera -> chunk: a chunk's arrival time minus its header stamp. The probe stamps every input
   with the time it publishes it, and the chunk carries its observation's stamp, so this is
   snapshot wait + decode + inference + DDS, end to end. ``inference_ms`` (the node's own
   snapshot -> chunk time) is shown beside it.
2. executor tick period and jitter at 50 Hz: the arrival intervals of ``/arm_controller/commands``
   at the probe (so DDS delivery jitter is included), and |interval - 20 ms|.
3. chunk -> command: with the executor alone (``--only executor_node``, mode ``latest``, no
   velocity limit), the probe publishes chunks whose rows all hold a new value and times the
   first command carrying it (DDS there and back plus the wait for the next tick).

``--sim``: the live simulated graph instead (``pi05-moe up sim``: sim_node rendering its three
cameras at 30/30/9 Hz, the shipped checkpoint, the executor, on sim time at real time). Each
``--variant NAME=NODE.PARAM=VALUE,...`` (default: the graph as shipped, and ``10 steps`` =
policy_node num_steps 10 with every camera encoded) runs ``--rounds`` times, alternating, for
``--seconds`` each; printed per variant: camera -> chunk (``/clock`` at the chunk's arrival
minus its observation stamp: snapshot wait + decode + inference + DDS, in sim time = wall time
at real-time factor 1), the node's inference_ms, and its per-stage times (/diagnostics).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, Header, String

from pi05_moe_msgs.msg import ActionChunk
from pi05_moe_policy import topics
from pi05_moe_policy.core.image_codec import numpy_to_image
from pi05_moe_policy.nodes import qos
from pi05_moe_policy.nodes.config import ExecutorNodeConfig, PolicyNodeConfig
from pi05_moe_policy.nodes.msg_convert import make_action_chunk, stamp_to_sec

JOINTS = [f'joint_{i}' for i in range(7)]
CAMERAS = dict(topics.CAMERAS)
HZ = 50.0


def graph_yaml(path: Path, num_threads: int, inference_hz: float) -> Path:
    policy = dict(checkpoint='preset:tiny', num_threads=num_threads, joint_names=JOINTS,
                  max_inference_hz=inference_hz)
    executor = dict(control_hz=HZ, enabled=True, mode='latest', joint_names=JOINTS,
                    lower_limits=[-10.0],
                    upper_limits=[10.0], max_velocity=[1e6], stale_timeout=2.0)
    PolicyNodeConfig(**policy)
    ExecutorNodeConfig(**executor)  # a misspelt parameter fails here, not silently in ROS
    path.write_text(yaml.safe_dump({
        'pi05_moe_graph': {'description': 'latency benchmark', 'nodes': {
            n: {'package': 'pi05_moe_policy', 'executable': n}
            for n in ('policy_node', 'executor_node')}},
        'policy_node': {'ros__parameters': policy},
        'executor_node': {'ros__parameters': executor}}))
    return path


class Probe(Node):
    """Publishes inputs (cameras + joints at ``input_hz``) and timestamps what comes back."""

    def __init__(self, context, input_hz: float):
        super().__init__('latency_probe', context=context)
        self.lock = threading.Lock()
        self.chunks: list[tuple[float, ActionChunk]] = []  # (arrival s, msg)
        self.commands: list[tuple[float, np.ndarray]] = []  # (arrival s, (D,))
        self.publish_inputs = False
        self.images = {n: self.create_publisher(Image, t, qos.SENSOR) for n, t in CAMERAS.items()}
        self.joints = self.create_publisher(JointState, topics.JOINT_STATES, qos.SENSOR)
        self.chunk_pub = self.create_publisher(ActionChunk, topics.ACTION_CHUNK,
                                               qos.COMMAND)
        self.create_publisher(String, topics.PROMPT, qos.PROMPT).publish(
            String(data='lift the red cube'))
        self.create_subscription(ActionChunk, topics.ACTION_CHUNK, self._on_chunk,
                                 qos.COMMAND)
        self.create_subscription(Float64MultiArray, topics.COMMANDS,
                                 self._on_command, qos.COMMAND)
        rgb = np.random.default_rng(0).integers(0, 255, (224, 224, 3), dtype=np.uint8)
        self.frames = {'wrist': numpy_to_image(rgb, 'rgb8', Image()),
                       'l515': numpy_to_image(rgb, 'rgb8', Image()),
                       'thermal': numpy_to_image(np.full((120, 160), 30315, np.uint16),
                                                 'mono16', Image())}
        self.create_timer(1.0 / input_hz, self._publish)

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _publish(self):
        stamp = self.get_clock().now().to_msg()
        self.joints.publish(JointState(header=Header(stamp=stamp), name=JOINTS,
                                       position=[0.0] * len(JOINTS)))
        if self.publish_inputs:
            for name, msg in self.frames.items():
                msg.header.stamp = stamp
                self.images[name].publish(msg)

    def _on_chunk(self, msg):
        with self.lock:
            self.chunks.append((self.now(), msg))

    def _on_command(self, msg):
        with self.lock:
            self.commands.append((self.now(), np.array(msg.data)))


def pct(values, unit='ms') -> str:
    v = np.asarray(values)
    if v.size == 0:
        return 'no samples'
    return (f'p50 {np.percentile(v, 50):7.2f} {unit}  p99 {np.percentile(v, 99):7.2f} {unit}  '
            f'mean {v.mean():7.2f} {unit}  max {v.max():7.2f} {unit}  (n={v.size})')


def start_graph(graph: Path, log: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(['pi05-moe', 'up', str(graph), '--no-color', *extra],
                            stdout=log.open('w'), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop_graph(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, 2)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()


def wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f'timed out waiting for {what}')
        time.sleep(0.05)


def full_graph(probe: Probe, graph: Path, log: Path, seconds: float) -> None:
    proc = start_graph(graph, log)
    try:
        probe.publish_inputs = True
        wait(lambda: len(probe.chunks) >= 3, 90, 'the first chunks (see ' + str(log) + ')')
        time.sleep(1.0)  # warm-up
        with probe.lock:
            probe.chunks.clear()
            probe.commands.clear()
        time.sleep(seconds)
        with probe.lock:
            chunks, commands = list(probe.chunks), list(probe.commands)
    finally:
        probe.publish_inputs = False
        stop_graph(proc)
    latency = [(t - stamp_to_sec(m.header.stamp)) * 1e3 for t, m in chunks]
    period = np.diff([t for t, _ in commands]) * 1e3
    print(f'full graph, {seconds:g} s, {len(chunks) / seconds:.1f} chunks/s')
    print(f'  camera -> chunk        {pct(latency)}')
    print(f'  inference_ms (node)    {pct([m.inference_ms for _, m in chunks])}')
    print(f'  executor tick period   {pct(period)}')
    print(f'  |period - 20 ms|       {pct(np.abs(period - 1e3 / HZ))}')
    print(f'  command rate           {len(period) / (commands[-1][0] - commands[0][0]):.2f} Hz')


def chunk_to_command(probe: Probe, graph: Path, log: Path, count: int) -> None:
    proc = start_graph(graph, log, '--only', 'executor_node')
    latencies = []
    try:
        wait(lambda: len(probe.commands) > 10, 30, 'executor commands (see ' + str(log) + ')')
        for k in range(count):
            value = float(np.float32(1.0 + 0.01 * k))  # exactly what the float32 chunk carries
            stamp = probe.get_clock().now()
            msg = make_action_chunk(stamp.to_msg(), k + 1, JOINTS, np.full((50, 7), value),
                                    1.0 / HZ, 0.0, 'bench', {})
            sent = stamp.nanoseconds * 1e-9
            probe.chunk_pub.publish(msg)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                with probe.lock:
                    hit = [t for t, c in probe.commands if t >= sent and c[0] == value]
                if hit:
                    latencies.append((hit[0] - sent) * 1e3)
                    break
                time.sleep(0.001)
            time.sleep(0.2)
    finally:
        stop_graph(proc)
    print(f'executor alone, {count} chunks (mode latest)')
    print(f'  chunk -> command       {pct(latencies)}')


class SimProbe(Node):
    """Times the chunks of the live sim graph against /clock; keeps policy_node's stages."""

    def __init__(self, context):
        super().__init__('sim_latency_probe', context=context)
        self.lock = threading.Lock()
        self.clock = 0.0
        self.rows: list[tuple[float, float]] = []  # (age s, inference_ms)
        self.stages: dict[str, list[float]] = {}
        self.recording = False
        self.chunks_seen = 0
        self.create_subscription(Clock, topics.CLOCK, self._on_clock, qos.CLOCK)
        self.create_subscription(ActionChunk, topics.ACTION_CHUNK, self._on_chunk, qos.COMMAND)
        self.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self._on_diag, qos.STATUS)

    def _on_clock(self, msg):
        self.clock = msg.clock.sec + msg.clock.nanosec * 1e-9

    def _on_chunk(self, msg):
        with self.lock:
            self.chunks_seen += 1
            if self.recording:
                self.rows.append((self.clock - stamp_to_sec(msg.header.stamp), msg.inference_ms))

    def _on_diag(self, msg):
        with self.lock:
            if not self.recording:
                return
            for status in msg.status:
                if 'policy_node' in status.name:
                    for kv in status.values:
                        if kv.key.startswith('stage_ms_'):
                            self.stages.setdefault(kv.key[9:], []).append(float(kv.value))


def sim_variants(items: list[str]) -> dict[str, list[str]]:
    if not items:
        return {'as shipped': [], '10 steps, every camera': [
            'policy_node.num_steps=10', 'policy_node.sparse_routing_threshold=0.0']}
    out = {}
    for item in items:
        name, sep, sets = item.partition('=')
        if not sep:
            raise SystemExit(f'--variant {item!r}: expected NAME=NODE.PARAM=VALUE,...')
        out[name] = [x for x in sets.split(',') if x]
    return out


def sim_graph(probe: SimProbe, name: str, sets: list[str], log: Path, seconds: float
              ) -> tuple[list[tuple[float, float]], dict[str, list[float]]]:
    extra = [a for s in sets for a in ('--set', s)]
    proc = start_graph(Path('sim'), log, *extra)
    try:
        probe.chunks_seen = 0
        # The first chunk comes after the model's load and warm-up (with torch_compile: its
        # compilation); the first few are not the steady state.
        wait(lambda: probe.chunks_seen > 0, 240, 'the first chunk (see ' + str(log) + ')')
        time.sleep(4.0)
        with probe.lock:
            probe.rows, probe.stages, probe.recording = [], {}, True
        time.sleep(seconds)
        with probe.lock:
            probe.recording = False
            return list(probe.rows), dict(probe.stages)
    finally:
        stop_graph(proc)
        probe.clock = 0.0


def run_sim(context, args) -> None:
    probe = SimProbe(context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(probe)
    threading.Thread(target=executor.spin, daemon=True).start()
    variants = sim_variants(args.variant)
    rows: dict[str, list] = {n: [] for n in variants}
    stages: dict[str, dict[str, list[float]]] = {n: {} for n in variants}
    loads = []
    with tempfile.TemporaryDirectory(prefix='bench_graph_') as tmp:
        try:
            for r in range(args.rounds):
                for name, sets in variants.items():
                    got, st = sim_graph(probe, name, sets, Path(tmp) / 'sim.log', args.seconds)
                    loads.append(os.getloadavg()[0])
                    rows[name] += got
                    for k, v in st.items():
                        stages[name].setdefault(k, []).extend(v)
                    print(f'  round {r + 1} {name}: {len(got)} chunks', flush=True)
        finally:
            executor.shutdown()
            probe.destroy_node()
    print(f'live sim graph, {args.rounds} x {args.seconds:g} s per variant, load average '
          f'during the runs {min(loads):.2f}-{max(loads):.2f}')
    base = None
    for name, got in rows.items():
        age = [a * 1e3 for a, _ in got]
        p50 = float(np.percentile(age, 50)) if age else float('nan')
        base = p50 if base is None else base
        print(f'{name} ({", ".join(variants[name]) or "sim.yaml"}):')
        print(f'  camera -> chunk        {pct(age)}  ({p50 / base:.2f}x the first variant)')
        print(f'  inference_ms (node)    {pct([ms for _, ms in got])}')
        print('  stages (node, medians) ' + ', '.join(
            f'{k} {np.median(v):.1f}' for k, v in sorted(stages[name].items())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sim', action='store_true',
                        help='measure the live sim graph (pi05-moe up sim) instead')
    parser.add_argument('--variant', action='append', default=[],
                        metavar='NAME=NODE.PARAM=VALUE,...', help='--sim: a graph variant')
    parser.add_argument('--rounds', type=int, default=2, help='--sim: rounds per variant (2)')
    parser.add_argument('--seconds', type=float, default=15.0, help='measuring window')
    parser.add_argument('--num-threads', type=int, default=1, help='torch threads (policy)')
    parser.add_argument('--inference-hz', type=float, default=10.0, help='max_inference_hz')
    parser.add_argument('--input-hz', type=float, default=30.0, help='camera/joint rate')
    parser.add_argument('--chunks', type=int, default=50, help='chunks for chunk -> command')
    args = parser.parse_args()
    domain = random.randint(1, 101)  # test/domains.py: above 101 DDS ports collide
    os.environ.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    if args.sim:
        print(f'ROS_DOMAIN_ID={domain}, {os.cpu_count()} CPUs, load average '
              f'{os.getloadavg()[0]:.2f} at the start', flush=True)
        try:
            run_sim(context, args)
        finally:
            context.try_shutdown()
        return
    probe = Probe(context, args.input_hz)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(probe)
    threading.Thread(target=executor.spin, daemon=True).start()
    print(f'ROS_DOMAIN_ID={domain}, {os.cpu_count()} CPUs, load average '
          f'{os.getloadavg()[0]:.2f}, torch threads {args.num_threads}, inputs '
          f'{args.input_hz:g} Hz (3 cameras 224x224 / 160x120), max_inference_hz '
          f'{args.inference_hz:g}')
    with tempfile.TemporaryDirectory(prefix='bench_graph_') as tmp:
        graph = graph_yaml(Path(tmp) / 'graph.yaml', args.num_threads, args.inference_hz)
        try:
            full_graph(probe, graph, Path(tmp) / 'full.log', args.seconds)
            chunk_to_command(probe, graph, Path(tmp) / 'executor.log', args.chunks)
        finally:
            executor.shutdown()
            probe.destroy_node()
            context.try_shutdown()


if __name__ == '__main__':
    main()
