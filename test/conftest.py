"""Fixtures for tests with real ROS 2 (test/ros, test/e2e): a private domain, an in-process
probe, child processes. Unit tests use none of them.

- ``ros_domain_id``: a random ROS_DOMAIN_ID (1..101, ``domains.py``) for the module, exported
  to the environment (so child processes inherit it) together with localhost-only discovery.
- ``ros``: a :class:`RosHarness` on that domain: ``ros.node(name)`` makes a test node spun by a
  background executor; ``ros.call(client, request)`` calls a service from the test thread.
- ``spawn``: ``spawn(cmd)`` starts a child process (a node, ``pi05-moe up ...``) and collects its
  output lines; ``proc.wait_for(regex)`` waits for a line. Every child is stopped with SIGINT
  (then SIGKILL) at the end of the module; ``spawn_each`` does the same at the end of each test.
- ``wait_until(predicate, timeout, what, process=None)``: poll until true, else fail saying
  ``what``; with a ``process``, fail at once (with its last lines) if that process has ended.
"""

from __future__ import annotations

import faulthandler
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable

import pytest
import rclpy
from domains import private_domain_id
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node


def _wait_until(predicate: Callable[[], object], timeout: float, what: str,
                interval: float = 0.02, process: ChildProcess | None = None) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if process is not None and not process.alive:
            raise AssertionError(f'{process.describe()} while waiting for {what}; last lines:\n'
                                 + process.tail())
        if time.monotonic() > deadline:
            tail = f'; last lines of {process.describe()}:\n{process.tail()}' if process else ''
            raise AssertionError(f'timed out after {timeout:g} s waiting for {what}{tail}')
        time.sleep(interval)


class RosHarness:
    """One rclpy context on the test's domain, spun by a background thread."""

    def __init__(self, domain_id: int) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.executor = SingleThreadedExecutor(context=self.context)
        self._nodes: list[Node] = []
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def node(self, name: str, **kwargs) -> Node:
        node = Node(name, context=self.context, **kwargs)
        self.executor.add_node(node)
        self._nodes.append(node)
        return node

    def add(self, node: Node) -> Node:
        """Spin a node made elsewhere (a subclass of Node built with ``context=ros.context``)."""
        self.executor.add_node(node)
        self._nodes.append(node)
        return node

    def remove(self, node: Node) -> None:
        self.executor.remove_node(node)
        self._nodes.remove(node)
        node.destroy_node()

    def call(self, client, request, timeout: float = 10.0):
        """Call a service (waiting for it first) and return the response."""
        assert client.wait_for_service(timeout_sec=timeout), f'no service {client.srv_name}'
        future = client.call_async(request)
        _wait_until(future.done, timeout, f'a response from {client.srv_name}')
        return future.result()

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        for node in self._nodes:
            node.destroy_node()
        self.context.try_shutdown()
        self._thread.join(timeout=5.0)


class ChildProcess:
    """A child process whose stdout+stderr lines are collected as they come."""

    def __init__(self, cmd: list[str], env: dict[str, str]) -> None:
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=env, start_new_session=True)
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip('\n'))
                self._cond.notify_all()

    def mark(self) -> int:
        """The number of lines so far: pass as ``since`` to look only at later lines."""
        with self._cond:
            return len(self.lines)

    def matching(self, pattern: str, since: int = 0) -> list[str]:
        regex = re.compile(pattern)
        with self._cond:
            return [x for x in self.lines[since:] if regex.search(x)]

    def wait_for(self, pattern: str, timeout: float = 20.0, since: int = 0) -> str:
        """The first line (after line ``since``) in which ``pattern`` (a regex) is found."""
        regex = re.compile(pattern)
        with self._cond:
            ok = self._cond.wait_for(
                lambda: any(regex.search(x) for x in self.lines[since:])
                or self.proc.poll() is not None, timeout)
        if not self.alive:
            self._reader.join(timeout=2.0)  # the process ended: read what it printed last
        with self._cond:
            found = [x for x in self.lines[since:] if regex.search(x)]
        if not found:
            raise AssertionError(
                f'{"timed out" if not ok else "process ended"} waiting for {pattern!r}: '
                f'{self.describe()}; last lines:\n' + self.tail())
        return found[0]

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def text(self) -> str:
        """Everything the process has printed so far."""
        with self._cond:
            return '\n'.join(self.lines)

    def tail(self, n: int = 60) -> str:
        """The last ``n`` lines; all of them once the process has ended."""
        if not self.alive:
            self._reader.join(timeout=2.0)  # it is still reading what the process printed last
        with self._cond:
            return '\n'.join(self.lines[-n:])

    def describe(self) -> str:
        state = 'running' if self.alive else f'exited {self.proc.returncode}'
        return f'{" ".join(self.cmd)} ({state})'

    def stop(self, timeout: float = 15.0) -> int:
        """SIGINT (Ctrl-C) to the process group, SIGKILL after ``timeout``; the exit code."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._reader.join(timeout=2.0)
        return self.proc.returncode


# past a test's own timeout: pytest-timeout's SIGALRM had its chance
HANG_GRACE_S = float(os.environ.get('PI05_HANG_GRACE_S', '60'))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """A last-resort watchdog against a test process wedged in C code.

    pytest-timeout raises from a SIGALRM handler, which Python runs only when the main thread
    returns to bytecode. A thread blocked inside a C call while holding the GIL (a DDS deadlock)
    stops that, and such a run used to sit until CI's 90 min limit with no trace. faulthandler's
    watchdog is a C thread: HANG_GRACE_S after the test's timeout it writes every thread's stack
    to ``$PI05_HANG_REPORT`` (default ``$TMPDIR/pi05_moe_hang_report.txt``; pytest captures
    stderr) and ends the process with status 1. ``scripts/test.sh`` prints that report.
    """
    marker = item.get_closest_marker('timeout')
    limit = float(marker.args[0]) if marker and marker.args else float(
        item.config.getini('timeout') or 600)
    report = os.environ.get('PI05_HANG_REPORT') or os.path.join(tempfile.gettempdir(),
                                                                  'pi05_moe_hang_report.txt')
    with open(report, 'a') as out:
        faulthandler.dump_traceback_later(limit + HANG_GRACE_S, exit=True, file=out)
        try:
            return (yield)
        finally:
            faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope='module')
def ros_domain_id():
    domain = private_domain_id()
    patch = pytest.MonkeyPatch()
    patch.setenv('ROS_DOMAIN_ID', str(domain))
    patch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    patch.setenv('PYTHONUNBUFFERED', '1')
    patch.setenv('RCUTILS_LOGGING_BUFFERED_STREAM', '0')
    patch.setenv('RCUTILS_COLORIZED_OUTPUT', '0')
    yield domain
    patch.undo()


@pytest.fixture(scope='module')
def ros(ros_domain_id):
    harness = RosHarness(ros_domain_id)
    yield harness
    harness.close()


def _spawned():
    """Yields ``start(cmd)``; then stops every child it started."""
    children: list[ChildProcess] = []

    def start(cmd: list[str]) -> ChildProcess:
        child = ChildProcess(cmd, dict(os.environ))
        children.append(child)
        return child

    yield start
    for child in children:
        child.stop()


@pytest.fixture(scope='module')
def spawn(ros_domain_id):
    yield from _spawned()


@pytest.fixture
def spawn_each(ros_domain_id):
    yield from _spawned()


@pytest.fixture(scope='session')
def wait_until():
    return _wait_until
