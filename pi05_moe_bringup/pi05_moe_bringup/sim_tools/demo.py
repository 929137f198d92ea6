"""run the simulated robot with the shipped checkpoint: a few episodes, a bag and a routing plot.

What `make demo` runs. It starts the sim.yaml graph (`pi05-moe up sim`: sim_node, policy_node
and executor_node, on sim time) with the shipped checkpoint (or preset:tiny, with a warning, when
none is installed) and the recorder (`pi05-moe record`) into one bag. Then, per episode, cycling
through the prompt families (--tasks):

  1. disable the executor, set sim_node's `task` and `seed`, call /sim_node/reset;
  2. wait for the policy's first chunk inferred from the new episode's observations;
  3. reset and enable the executor (/executor_node/reset, /executor_node/enable);
  4. wait for /sim/success, or --episode-timeout seconds of sim time;
  5. disable the executor and print
     `episode k: <prompt>: success=<bool> routing: l515=0.xx thermal=0.yy (...) chunk latency
     p50 <ms> ms (age on arrival <s> s), held <pct>% of the ticks`: the mean of
     /pi05_moe/routing over the episode, the median inference time of the episode's chunks
     (ActionChunk.inference_ms) and their age when they arrived (clock - header.stamp), and the
     share of the time the executor held the arm (from the status executor_node reports on
     /diagnostics at every transition): a run the checkpoint cannot keep up with shows here.

At the end it stops the recorder and the graph, plots the recorded routing weights
(`pi05-moe plot-routing`) and prints the success count with the median chunk latency and the
held share over all episodes, and where the bag and the PNG are. --out holds graph.log and
record.log (the processes' output), bags/<bag>/, routing.png and demo.json (the episodes).
Exit status 0 when every episode ran (succeeded or not), 1 when the graph or a step failed.

examples:
  pi05-moe demo --out demo_out
  pi05-moe demo --episodes 2 --episode-timeout 5 --checkpoint preset:tiny
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.srv import SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import Bool, String
from std_srvs.srv import SetBool, Trigger

from pi05_moe_bringup.sim_tools.evaluate import mean_weights
from pi05_moe_msgs.msg import ActionChunk, RoutingWeights
from pi05_moe_policy import topics
from pi05_moe_policy.checkpoints import shipped_checkpoint
from pi05_moe_policy.core.stamps import stamp_to_sec
from pi05_moe_policy.nodes import qos

RECORD_TOPICS = [topics.ROUTING, topics.ACTION_CHUNK, topics.PROMPT, topics.JOINT_STATES,
                 topics.COMMANDS, topics.SIM_SUCCESS]
IMAGE_TOPICS = [topics.WRIST_IMAGE, topics.L515_COLOR, topics.THERMAL_IMAGE]
EXECUTOR_STATUS = 'executor_node: control'  # executor_node's DiagnosticStatus name
OK = 'ok'  # the executor's status when it commands from a chunk (anything else holds the arm)
HELD_WARNING = 0.5  # warn when the arm was held longer than this share of the episodes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--out', default='demo_out', help='output directory (demo_out)')
    parser.add_argument('--checkpoint', help='checkpoint directory or preset:<name> (default: '
                        'the shipped checkpoint, else preset:tiny)')
    parser.add_argument('--config', default='sim', help='bringup config to run (sim)')
    parser.add_argument('--episodes', type=int, default=4, help='episodes to run (4)')
    parser.add_argument('--tasks', default='lift_red_cube,lift_hot_cube',
                        help='prompt families, cycled through (comma-separated)')
    parser.add_argument('--seed', type=int, default=1000, help='episode k uses seed + k (1000)')
    parser.add_argument('--episode-timeout', type=float, default=20.0,
                        help='sim seconds before an episode counts as failed (20)')
    parser.add_argument('--startup-timeout', type=float, default=180.0,
                        help='wall seconds for the graph to produce its first chunk (180)')
    parser.add_argument('--max-wall-s', type=float, default=480.0,
                        help='wall-clock budget of the episodes; later ones are skipped (480)')
    parser.add_argument('--set', action='append', default=[], metavar='NODE.PARAM=VALUE',
                        help='override a graph parameter, as `pi05-moe up --set` (e.g. '
                        'sim_node.real_time_factor=0.5 when inference is slow)')
    parser.add_argument('--record-images', action='store_true',
                        help=f'also record the camera images ({", ".join(IMAGE_TOPICS)})')


@dataclass
class EpisodeOutcome:
    index: int
    task: str
    seed: int
    prompt: str
    success: bool
    sim_time_s: float  # from enabling the executor to success or the timeout
    routing: dict[str, float]  # mean weight per expert over the episode
    routing_messages: int
    chunks: int = 0  # chunks observed during the episode
    latency_ms_median: float | None = None  # median ActionChunk.inference_ms (wall clock)
    chunk_age_s_median: float | None = None  # median clock - stamp when a chunk arrived
    held_share: float | None = None  # share of the episode the executor held the arm
    chunk_latencies_ms: list[float] = field(default_factory=list)  # per chunk, inference_ms
    chunk_ages_s: list[float] = field(default_factory=list)  # per chunk, age on arrival


@dataclass(frozen=True)
class ChunkSample:
    stamp: float  # observation time (s, sim)
    inference_ms: float  # the policy's wall-clock inference time
    age_s: float  # clock - stamp when it arrived (s, sim)


def held_share(statuses: list[tuple[float, str]], t0: float, t1: float) -> float | None:
    """Share of [t0, t1] in which the executor's status was not ``ok`` (it held the arm).

    ``statuses`` are (stamp, status) from its /diagnostics. The executor reports every
    transition at once, so between two samples the status is the earlier one's; ticks are
    evenly spaced, so the time share is the tick share. None without a sample by ``t1``.
    """
    statuses = sorted(statuses)
    before = [s for s in statuses if s[0] <= t0]
    points = before[-1:] + [s for s in statuses if t0 < s[0] <= t1]
    if not points or t1 <= t0:
        return None
    starts = [max(t, t0) for t, _ in points]  # (n,)
    spans = np.diff([*starts, t1])  # (n,) seconds each status lasted within [t0, t1]
    held = sum(span for span, (_, status) in zip(spans, points) if status != OK)
    return float(held / spans.sum()) if spans.sum() > 0 else None


def median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def latency_text(latency_ms: float | None, age_s: float | None, held: float | None) -> str:
    """`chunk latency p50 445 ms (age on arrival 0.470 s), held 83% of the ticks`."""
    latency = '-' if latency_ms is None else f'{latency_ms:.0f} ms'
    age = '-' if age_s is None else f'{age_s:.3f} s'
    share = '-' if held is None else f'{held:.0%}'
    return f'chunk latency p50 {latency} (age on arrival {age}), held {share} of the ticks'


class LoggedProcess:
    """A child process in its own session whose output goes to a log file."""

    def __init__(self, name: str, cmd: list[str], log_path: Path):
        self.name, self.log_path = name, log_path
        self._log: IO[bytes] = open(log_path, 'wb')  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     env={**os.environ, 'PYTHONUNBUFFERED': '1'})

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float) -> int:
        """Ctrl-C (SIGINT) to the process, SIGKILL to its group after ``timeout``; exit code."""
        if self.alive:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                print(f'demo: {self.name} did not stop in {timeout:g} s: killing it', flush=True)
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def tail(self, lines: int = 30) -> str:
        return '\n'.join(self.log_path.read_text(errors='replace').splitlines()[-lines:])


class DemoClient(Node):
    """The demo's view of the graph: service clients, and what the policy and the sim publish.

    Callbacks only store; the demo's main thread makes the calls and does the waiting.
    """

    def __init__(self) -> None:
        super().__init__('pi05_moe_demo',
                         parameter_overrides=[Parameter('use_sim_time', value=True)])
        self._lock = threading.Lock()
        self.prompt = ''
        self.newest_chunk: float | None = None  # observation time of the newest chunk (s)
        self.chunks: list[ChunkSample] = []
        self.statuses: list[tuple[float, str]] = []  # the executor's (stamp s, status)
        self.routing: list[tuple[float, dict[str, float]]] = []  # (stamp s, weights)
        self.success_at: float | None = None  # sim time of /sim/success True, while armed
        self._armed = False
        self.recorder: dict[str, Any] = {}  # the recorder's latest ~/status
        self.sim_params = self.create_client(SetParameters, '/sim_node/set_parameters')
        self.sim_reset = self.create_client(Trigger, '/sim_node/reset')
        self.executor_reset = self.create_client(Trigger, '/executor_node/reset')
        self.executor_enable = self.create_client(SetBool, '/executor_node/enable')
        self.record_start = self.create_client(Trigger, '/recorder/start')
        self.record_stop = self.create_client(Trigger, '/recorder/stop')
        self.create_subscription(String, topics.PROMPT, self._on_prompt, qos.PROMPT)
        self.create_subscription(Bool, topics.SIM_SUCCESS, self._on_success, qos.PROMPT)
        self.create_subscription(ActionChunk, topics.ACTION_CHUNK, self._on_chunk,
                                 qos.COMMAND)
        self.create_subscription(RoutingWeights, topics.ROUTING, self._on_routing,
                                 qos.STATUS)
        self.create_subscription(String, '/recorder/status', self._on_recorder, qos.PROMPT)
        self.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self._on_diagnostics,
                                 qos.STATUS)

    def now(self) -> float:
        """Sim time (s), from /clock."""
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_prompt(self, msg: String) -> None:
        self.prompt = msg.data

    def _on_recorder(self, msg: String) -> None:
        self.recorder = json.loads(msg.data)

    def recorder_ready(self, names: list[str]) -> bool:
        """The recorder has found every one of the topics ``names``."""
        return set(names) <= set(self.recorder.get('topics', ()))

    def _on_success(self, msg: Bool) -> None:
        with self._lock:
            if msg.data and self._armed and self.success_at is None:
                self.success_at = self.now()

    def _on_chunk(self, msg: ActionChunk) -> None:
        stamp = stamp_to_sec(msg.header.stamp)
        with self._lock:
            self.chunks.append(ChunkSample(stamp, float(msg.inference_ms), self.now() - stamp))
        self.newest_chunk = stamp if self.newest_chunk is None else max(stamp, self.newest_chunk)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name == EXECUTOR_STATUS:
                values = {kv.key: kv.value for kv in status.values}
                with self._lock:
                    self.statuses.append((stamp_to_sec(msg.header.stamp),
                                          values.get('status', '?')))

    def chunks_between(self, t0: float, t1: float) -> list[ChunkSample]:
        with self._lock:
            return [c for c in self.chunks if t0 <= c.stamp <= t1]

    def held_between(self, t0: float, t1: float) -> float | None:
        with self._lock:
            return held_share(list(self.statuses), t0, t1)

    def _on_routing(self, msg: RoutingWeights) -> None:
        stamp = stamp_to_sec(msg.header.stamp)
        with self._lock:
            self.routing.append((stamp, dict(zip(msg.expert_names, map(float, msg.weights)))))

    def arm_success(self, armed: bool) -> None:
        """Count /sim/success from now on (True), or stop counting (False)."""
        with self._lock:
            self._armed, self.success_at = armed, None if armed else self.success_at

    def routing_between(self, t0: float, t1: float) -> list[dict[str, float]]:
        with self._lock:
            return [w for stamp, w in self.routing if t0 <= stamp <= t1]

    # ------------------------------------------------------------------ calls (main thread)
    def call(self, client, request, timeout: float = 10.0):
        """Call a service and wait for the response; RuntimeError if it does not come."""
        if not client.wait_for_service(timeout_sec=timeout):
            raise RuntimeError(f'service {client.srv_name} is not available')
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _: done.set())
        if not done.wait(timeout):
            raise RuntimeError(f'no response from {client.srv_name} in {timeout:g} s')
        return future.result()

    def trigger(self, client) -> str:
        response = self.call(client, Trigger.Request())
        if not response.success:
            raise RuntimeError(f'{client.srv_name}: {response.message}')
        return response.message

    def enable(self, on: bool) -> None:
        self.call(self.executor_enable, SetBool.Request(data=on))

    def set_sim(self, **values: Any) -> None:
        request = SetParameters.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        for name, result in zip(values, self.call(self.sim_params, request).results):
            if not result.successful:
                raise RuntimeError(f'sim_node refused {name}={values[name]!r}: {result.reason}')


def wait_for(predicate, timeout: float, what: str, alive) -> None:
    """Poll ``predicate`` until true; RuntimeError after ``timeout`` s or when the graph died."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if not alive():
            raise RuntimeError(f'the graph stopped while waiting for {what}')
        if time.monotonic() > deadline:
            raise RuntimeError(f'no {what} after {timeout:g} s')
        time.sleep(0.05)


NEW_SCENE_S = 0.15  # s of sim time after a reset by which every camera has a new frame


def run_episode(node: DemoClient, index: int, task: str, seed: int, timeout: float,
                wall_cap: float, alive) -> EpisodeOutcome:
    """Steps 1-5 of the module docstring."""
    node.enable(False)
    node.set_sim(task=task, seed=seed)
    node.trigger(node.sim_reset)
    reset_at = node.now()
    # A chunk observed after every camera has sent a frame of the new scene (the thermal
    # camera's 9 Hz is the slowest): earlier ones mix frames of the old scene with the new
    # state. The executor's reset then refuses the chunks still in flight.
    wait_for(lambda: (node.newest_chunk or -1.0) >= reset_at + NEW_SCENE_S, 60.0,
             'chunk from the new episode', alive)
    node.trigger(node.executor_reset)
    node.arm_success(True)
    node.enable(True)
    start, wall_end = node.now(), time.monotonic() + wall_cap
    while (node.success_at is None and node.now() - start < timeout
           and time.monotonic() < wall_end and alive()):
        time.sleep(0.05)
    node.enable(False)
    end = node.now()
    node.arm_success(False)
    success = node.success_at is not None
    stop = node.success_at if success else end
    routings = node.routing_between(start, stop)
    chunks = node.chunks_between(start, stop)
    latencies = [round(c.inference_ms, 1) for c in chunks]
    ages = [round(c.age_s, 4) for c in chunks]
    return EpisodeOutcome(index, task, seed, node.prompt or task, success,
                          round(stop - start, 3), mean_weights(routings), len(routings),
                          len(chunks), median(latencies), median(ages),
                          node.held_between(start, stop), latencies, ages)


def resolve_checkpoint(given: str | None) -> str:
    if given:
        return given
    shipped = shipped_checkpoint()
    if shipped is not None:
        return str(shipped)
    print('demo: WARNING ' + '!' * 60 + '\ndemo: WARNING no shipped checkpoint '
          '(pi05_moe_policy/checkpoints/sim_small): running preset:tiny, RANDOM weights.\n'
          'demo: WARNING the arm will not do the task and the routing means nothing.\n'
          'demo: WARNING ' + '!' * 60, flush=True)
    return 'preset:tiny'


def plot(bag: Path, png: Path) -> int:
    """`pi05-moe plot-routing <bag> -o <png>`, in this process."""
    from pi05_moe_training.evaluate import plot_routing
    parser = argparse.ArgumentParser()
    plot_routing.add_arguments(parser)
    return plot_routing.main(parser.parse_args([str(bag), '-o', str(png)]))


def start_processes(args: argparse.Namespace, out: Path, checkpoint: str,
                    record_topics: list[str]) -> tuple[LoggedProcess, LoggedProcess]:
    """The graph (`pi05-moe up`) and the recorder (`pi05-moe record`), logging into ``out``."""
    overrides = [f'policy_node.checkpoint={checkpoint}', *args.set]
    graph = LoggedProcess('graph', ['pi05-moe', 'up', args.config, '--no-color',
                                    *(f'--set={o}' for o in overrides)], out / 'graph.log')
    recorder = LoggedProcess('recorder', [
        'pi05-moe', 'record', '--out', str(out / 'bags'), '--prefix', 'demo', '--no-keyboard',
        '--use-sim-time', '--task', 'demo', '--operator', 'pi05-moe demo',
        '--topics', *record_topics], out / 'record.log')
    return graph, recorder


def run_episodes(node: DemoClient, args: argparse.Namespace, tasks: list[str], started: float,
                 alive, episodes: list[EpisodeOutcome]) -> None:
    """Every episode that fits in --max-wall-s, each printed and appended to ``episodes`` as it
    ends (so the ones done before a failure are still reported)."""
    wall_cap = 3 * args.episode_timeout + 10.0  # the sim may run slower than real time
    for k in range(args.episodes):
        if time.monotonic() - started + wall_cap > args.max_wall_s:
            print(f'demo: --max-wall-s {args.max_wall_s:g} s reached: skipping episodes '
                  f'{k + 1}..{args.episodes}', flush=True)
            break
        e = run_episode(node, k + 1, tasks[k % len(tasks)], args.seed + k,
                        args.episode_timeout, wall_cap, alive)
        episodes.append(e)
        weights = ' '.join(f'{n}={w:.2f}' for n, w in e.routing.items()) or '(none)'
        print(f'episode {e.index}: {e.prompt}: success={e.success} routing: {weights} '
              f'({e.sim_time_s:.1f} s sim, {e.routing_messages} routing messages) '
              + latency_text(e.latency_ms_median, e.chunk_age_s_median, e.held_share),
              flush=True)


def record_session(node: DemoClient, args: argparse.Namespace, tasks: list[str],
                   record_topics: list[str], started: float, alive,
                   episodes: list[EpisodeOutcome]) -> str:
    """Wait for the graph and the recorder, record the episodes (appended to ``episodes``) into
    one bag and return its path; RuntimeError when a step fails."""
    wait_for(lambda: node.newest_chunk is not None, args.startup_timeout,
             'action chunk from policy_node', alive)
    wait_for(lambda: node.recorder_ready(record_topics), 30.0,
             f'recorder to find the topics {record_topics}', alive)
    # Started now, not with --auto-start: the recorder's clock is sim time by now.
    bag = node.trigger(node.record_start)
    print(f'demo: graph up in {time.monotonic() - started:.0f} s, recording {bag}', flush=True)
    run_episodes(node, args, tasks, started, alive, episodes)
    node.trigger(node.record_stop)
    return bag


def overall_figures(episodes: list[EpisodeOutcome]) -> dict[str, Any]:
    """Median chunk latency and age over every episode's chunks, and the share of the episodes'
    time (weighted by their length) the arm was held."""
    timed = [(e.held_share, e.sim_time_s) for e in episodes if e.held_share is not None]
    total = sum(t for _, t in timed)
    return {'chunks': sum(e.chunks for e in episodes),
            'latency_ms_median': median([x for e in episodes for x in e.chunk_latencies_ms]),
            'chunk_age_s_median': median([x for e in episodes for x in e.chunk_ages_s]),
            'held_share': sum(h * t for h, t in timed) / total if total > 0 else None}


def write_report(out: Path, args: argparse.Namespace, checkpoint: str,
                 episodes: list[EpisodeOutcome], started: float) -> None:
    """Print the success count with the latency figures and write ``demo.json``."""
    successes = sum(e.success for e in episodes)
    overall = overall_figures(episodes)
    if episodes:
        print(f'demo: {successes}/{len(episodes)} episodes succeeded; '
              + latency_text(overall['latency_ms_median'], overall['chunk_age_s_median'],
                             overall['held_share']), flush=True)
    if (overall['held_share'] or 0.0) > HELD_WARNING:
        print(f'demo: WARNING the executor held the arm {overall["held_share"]:.0%} of the time: '
              'the policy does not keep up with the real-time world (chunks arrive too late). '
              'Try a faster device, or --set sim_node.real_time_factor=0.5', flush=True)
    (out / 'demo.json').write_text(json.dumps({
        'checkpoint': checkpoint, 'config': args.config, 'episode_timeout_s': args.episode_timeout,
        'episodes': [asdict(e) for e in episodes], 'successes': successes, **overall,
        'wall_s': round(time.monotonic() - started, 1)}, indent=1))


def main(args: argparse.Namespace) -> int:
    tasks = [t for t in args.tasks.split(',') if t]
    if args.episodes < 1 or not tasks:
        print('demo: need --episodes >= 1 and at least one task', file=sys.stderr)
        return 2
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = resolve_checkpoint(args.checkpoint)
    started = time.monotonic()
    print(f'demo: {args.config} with {checkpoint}; logs in {out}', flush=True)
    record_topics = RECORD_TOPICS + (IMAGE_TOPICS if args.record_images else [])
    graph, recorder = start_processes(args, out, checkpoint, record_topics)
    episodes: list[EpisodeOutcome] = []
    bag = ''
    code = 0
    rclpy.init()
    node = DemoClient()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    try:
        bag = record_session(node, args, tasks, record_topics, started,
                             lambda: graph.alive and recorder.alive, episodes)
    except RuntimeError as exc:
        print(f'demo: error: {exc}', flush=True)
        code = 1
    finally:
        executor.shutdown(timeout_sec=2.0)
        node.destroy_node()
        rclpy.try_shutdown()
        recorder.stop(timeout=20.0)
        graph_code = graph.stop(timeout=25.0)
    if code:
        print(f'demo: the last lines of {graph.log_path}:\n{graph.tail()}', flush=True)
    elif graph_code != 0:
        print(f'demo: the graph exited with {graph_code}; see {graph.log_path}', flush=True)
        code = 1
    write_report(out, args, checkpoint, episodes, started)
    if not bag or not Path(bag, 'metadata.yaml').is_file():
        print(f'demo: no bag was written; see {recorder.log_path}', flush=True)
        return 1
    png = out / 'routing.png'
    if plot(Path(bag), png) != 0:
        code = 1
    print(f'demo: bag {bag}', flush=True)
    print(f'demo: routing plot {png}', flush=True)
    print(f'demo: done in {time.monotonic() - started:.0f} s', flush=True)
    return code
