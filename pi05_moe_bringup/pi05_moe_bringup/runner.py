"""Start a node graph from a bringup config: `ros2 launch` for machines without launch.

Every node of the config (see pi05_moe_bringup.description) runs as a child process in its own
process group, with `--ros-args -r __node:=<name> --params-file <its own params> [-r a:=b ...]`.
Each output line is prefixed with `[node_name]`. Ctrl-C (or SIGTERM) sends SIGINT to every child,
then SIGTERM and SIGKILL to those still running after --stop-timeout; the exit code is then 0.
When a child exits on its own the others are stopped and the exit code is 1, naming the node and
its exit code (unless the node is `on_exit: shutdown` and exited with 0, or `on_exit: respawn`).

examples:
  pi05-moe up sim                                  # the installed config/sim.yaml
  pi05-moe up robot --arg checkpoint=runs/robot/best --arg l515_driver=realsense
  pi05-moe up replay --arg bag=bags/episode_0001 --dry-run   # lists replay's arguments too
  pi05-moe up sim --set policy_node.checkpoint=runs/sim/best --skip executor_node
  pi05-moe up my_graph.yaml --dry-run              # print the commands and parameters only
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

import yaml

from pi05_moe_bringup.description import (
    GraphError,
    GraphSpec,
    NodeSpec,
    describe_exit,
    executable_path,
    exit_outcome,
    load_graph,
    params_yaml,
    resolve_arguments,
    resolve_executables,
    ros_arguments,
    select,
    share_config,
    uses_sim_time,
    write_params_file,
)

_COLOURS = ('36', '33', '35', '32', '34', '31', '96', '93', '95', '92')
_KILL_WAIT_S = 3.0  # after SIGTERM, before SIGKILL


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `pi05-moe up`."""
    parser.add_argument('config', help='a bringup YAML file, or the name of an installed one '
                        '(sim, robot, replay)')
    parser.add_argument('--arg', action='append', default=[], metavar='NAME=VALUE',
                        help='set a graph argument (what `ros2 launch` takes as name:=value)')
    parser.add_argument('--set', action='append', default=[], metavar='NODE.PARAM=VALUE',
                        help='override one parameter; VALUE is YAML (true, 3, 0.5, [a, b])')
    parser.add_argument('--use-sim-time', action='store_true',
                        help='every ROS node that does not set use_sim_time itself uses /clock')
    parser.add_argument('--only', action='append', default=[], metavar='NODE',
                        help='start only these nodes (repeat, or comma-separated)')
    parser.add_argument('--skip', action='append', default=[], metavar='NODE',
                        help='do not start these nodes (repeat, or comma-separated)')
    parser.add_argument('--dry-run', action='store_true',
                        help='print each command and its parameters, start nothing')
    parser.add_argument('--stop-timeout', type=float, default=10.0, metavar='S',
                        help='seconds a node gets to exit after SIGINT (default 10)')
    parser.add_argument('--no-color', action='store_true', help='plain log prefixes')


@dataclass
class Plan:
    """One process to start: its node, full command line and environment."""

    node: NodeSpec
    cmd: list[str]
    env: dict[str, str]


def main(args: argparse.Namespace) -> int:
    """`pi05-moe up`; returns the exit code."""
    out = _Printer(sys.stdout, colour=not args.no_color and sys.stdout.isatty()
                   and 'NO_COLOR' not in os.environ)
    with tempfile.TemporaryDirectory(prefix='pi05_moe_up_') as tmp:
        try:
            graph = load_graph(_config_path(args.config))
            nodes = _choose(graph, args)
            if not args.dry_run:
                resolve_executables(nodes)  # every missing one named, before anything starts
            plans = [_plan(graph, node, Path(tmp), args.use_sim_time or None, out, args.dry_run)
                     for node in nodes]
        except (GraphError, FileNotFoundError, KeyError, ValueError) as exc:
            out.line('up', f'error: {exc.args[0] if isinstance(exc, KeyError) else exc}')
            return 2
        if args.dry_run:
            _print_plans(graph, plans, out)
            return 0
        return _Supervisor(plans, out, args.stop_timeout).run()


def _config_path(text: str) -> Path:
    """A file path as given, else the installed config of that name."""
    path = Path(text)
    if path.is_file() or os.sep in text:
        return path
    installed = share_config(text)
    if not installed.is_file():
        known = sorted(p.stem for p in installed.parent.glob('*.yaml'))
        raise FileNotFoundError(f'no file {text!r} and no installed config {installed.name!r} '
                                f'(installed: {", ".join(known) or "none"})')
    return installed


def _split(values: list[str]) -> list[str]:
    return [v for item in values for v in item.split(',') if v]


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition('=')
        if not sep or not key:
            raise ValueError(f'{what} {item!r}: expected NAME=VALUE')
        out[key] = value
    return out


def _choose(graph: GraphSpec, args: argparse.Namespace) -> list[NodeSpec]:
    """The nodes to start: selected by the arguments, filtered by --only/--skip, --set applied."""
    nodes = select(graph, resolve_arguments(graph, _pairs(args.arg, '--arg')))
    running = {n.name for n in nodes}
    for name in _split(args.only) + _split(args.skip):
        graph.node(name)  # KeyError for a name that is not in the file at all
    for name in _split(args.only):
        if name not in running:
            raise ValueError(f'--only {name}: not started with these arguments '
                             f'(enabled/when in {graph.path.name})')
    if args.only:
        nodes = [n for n in nodes if n.name in _split(args.only)]
    nodes = [n for n in nodes if n.name not in _split(args.skip)]
    for target, value in _pairs(args.set, '--set').items():
        node_name, _, param = target.partition('.')
        graph.node(node_name)
        if not param:
            raise ValueError(f'--set {target}: expected NODE.PARAM=VALUE')
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ValueError(f'--set {target}: {value!r} is not a YAML value') from None
        nodes = [replace(n, params={**n.params, param: parsed})
                 if n.name == node_name else n for n in nodes]
    if not nodes:
        raise ValueError(f'{graph.path.name}: no node left to start')
    return nodes


def _plan(graph: GraphSpec, node: NodeSpec, tmp: Path, sim_default: bool | None,
          out: _Printer, dry_run: bool) -> Plan:
    """Resolve the executable and write the node's own params file into ``tmp``.

    A dry run also shows nodes whose package is not installed here (e.g. realsense2_camera).
    """
    try:
        exe = str(executable_path(node))
    except FileNotFoundError as exc:
        if not dry_run:
            raise
        out.line('up', f'warning: {exc}')
        exe = f'$(ros2 pkg prefix {node.package})/lib/{node.package}/{node.executable}'
    params_file = write_params_file(node, tmp) if node.ros_args else None
    cmd = [exe, *node.arguments,
           *ros_arguments(node, params_file, uses_sim_time(graph, node, sim_default))]
    # Unbuffered Python output, so that log lines arrive when they are written.
    return Plan(node, cmd, {**os.environ, 'PYTHONUNBUFFERED': '1', **node.env})


def _print_plans(graph: GraphSpec, plans: list[Plan], out: _Printer) -> None:
    out.line('up', f'{graph.path}: {graph.description}')
    for arg in graph.arguments.values():
        default = 'required' if arg.default is None else f'default {arg.default!r}'
        choices = f'{"|".join(arg.choices)}, ' if arg.choices else ''
        out.line('up', f'--arg {arg.name}=... ({choices}{default}): {arg.help}')
    for plan in plans:
        node = plan.node
        extra = ' '.join(f'{k}={shlex.quote(v)}' for k, v in node.env.items())
        out.line('up', f'{node.name} (on_exit: {node.on_exit}): '
                 f'{extra + " " if extra else ""}{shlex.join(plan.cmd)}')
        if node.ros_args:
            for text in params_yaml(node).splitlines():
                out.line('up', f'    {text}')


class _Printer:
    """Thread-safe line output with a ``[name]`` prefix per source."""

    def __init__(self, stream: IO[str], colour: bool):
        self._stream: IO[str] | None = stream
        self._colour = colour
        self._lock = threading.Lock()
        self._codes: dict[str, str] = {}
        self.width = 0

    def line(self, source: str, text: str) -> None:
        tag = f'[{source}]'.ljust(self.width + 2)
        if self._colour:
            code = self._codes.setdefault(source, _COLOURS[len(self._codes) % len(_COLOURS)])
            tag = f'\033[{code}m{tag}\033[0m'
        with self._lock:
            if self._stream is None:
                return
            try:
                self._stream.write(f'{tag} {text}\n')
                self._stream.flush()
            except BrokenPipeError:  # e.g. `| head` exited: keep running, drop the output
                self._stream = None


class _Child:
    """One running process and the thread that prefixes its output."""

    def __init__(self, plan: Plan, out: _Printer):
        self.plan, self.name = plan, plan.node.name
        self.proc = subprocess.Popen(plan.cmd, env=plan.env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)  # own group (Python 3.10 too)
        self._reader = threading.Thread(target=self._pump, args=(out,), daemon=True,
                                        name=f'log-{self.name}')
        self._reader.start()

    def _pump(self, out: _Printer) -> None:
        for raw in self.proc.stdout:
            out.line(self.name, raw.decode('utf-8', errors='replace').rstrip('\r\n'))

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the child's whole process group (if it is still running)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        """Wait for the last output lines (a grandchild may hold the pipe: do not hang)."""
        self._reader.join(timeout=2.0)
        if not self._reader.is_alive():
            self.proc.stdout.close()


class _Supervisor:
    """Starts the plans, watches them, and stops them all (see the module docstring)."""

    def __init__(self, plans: list[Plan], out: _Printer, stop_timeout: float):
        self.plans, self.out, self.stop_timeout = plans, out, stop_timeout
        out.width = max(len(p.node.name) for p in plans)
        self.children: dict[str, _Child] = {}
        self.respawn_at: dict[str, float] = {}
        self.signals = 0

    def _on_signal(self, signum: int, _frame) -> None:
        self.signals += 1

    def run(self) -> int:
        handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for plan in self.plans:
                self._start(plan)
            code = self._watch()
        except OSError as exc:  # an executable that cannot be run
            self.out.line('up', f'error: {exc}')
            code = 1
        finally:
            self._stop_all()
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        return code

    def _start(self, plan: Plan) -> None:
        child = _Child(plan, self.out)
        self.children[plan.node.name] = child
        self.out.line('up', f'started {child.name} (pid {child.proc.pid})')

    def _watch(self) -> int:
        """Poll until a signal arrives (0) or a child exits (0 or 1, see the docstring)."""
        while not self.signals:
            now = time.monotonic()
            for name, at in list(self.respawn_at.items()):
                if now >= at:
                    del self.respawn_at[name]
                    self._start(self.children[name].plan)
            for child in list(self.children.values()):
                code = child.proc.poll()
                if code is None or child.name in self.respawn_at:
                    continue
                outcome = exit_outcome(child.plan.node, code)
                if outcome == 'respawn':
                    delay = child.plan.node.respawn_delay_s
                    self.out.line('up', f'{child.name} {describe_exit(code)}; respawning in '
                                  f'{delay:g} s')
                    child.close()
                    self.respawn_at[child.name] = now + delay
                elif outcome == 'finished':
                    self.out.line('up', f'{child.name} finished; stopping the graph')
                    return 0
                else:
                    self.out.line('up', f'error: {child.name} {describe_exit(code)}; stopping '
                                  'the graph')
                    return 1
            time.sleep(0.05)
        self.out.line('up', 'interrupted; stopping the graph')
        return 0

    def _stop_all(self) -> None:
        """SIGINT to all, then SIGTERM and SIGKILL to what is left; a 2nd Ctrl-C skips ahead."""
        running = [c for c in self.children.values() if c.proc.poll() is None]
        signals_before = self.signals
        for child in running:
            child.signal(signal.SIGINT)
        self._wait(running, self.stop_timeout, signals_before)
        for sig, wait in ((signal.SIGTERM, _KILL_WAIT_S), (signal.SIGKILL, _KILL_WAIT_S)):
            left = [c for c in running if c.proc.poll() is None]
            if not left:
                break
            self.out.line('up', f'sending {sig.name} to {", ".join(c.name for c in left)}')
            for child in left:
                child.signal(sig)
            self._wait(left, wait, self.signals)
        for child in running:
            self.out.line('up', f'{child.name} {describe_exit(child.proc.wait())}')
        for child in self.children.values():
            child.close()

    def _wait(self, children: list[_Child], timeout: float, signals_before: int) -> None:
        deadline = time.monotonic() + timeout
        while (any(c.proc.poll() is None for c in children) and time.monotonic() < deadline
               and self.signals == signals_before):
            time.sleep(0.05)
