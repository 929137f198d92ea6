"""`pi05-moe up` with real processes: log prefixes, Ctrl-C/SIGTERM, a dying node, respawn, and a
plain process (a bag replay) whose end ends the graph.

The graphs are two `executor_node`s (actuation disabled, so they only preview) on the module's
private ROS_DOMAIN_ID (conftest.py); the runner is the installed `pi05-moe` console script.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest
from rosbags.rosbag2 import StoragePlugin, Writer

from pi05_moe_training.bags.typestore import make_typestore

STARTED = re.compile(r'^\[up\]\s+started (\w+) \(pid (\d+)\)$')
GRAPH = """
pi05_moe_graph:
  description: two executors
  arguments:
    bag: {{default: none}}
  nodes:
    exec_a: {{package: pi05_moe_policy, executable: executor_node}}
    exec_b: {{package: pi05_moe_policy, executable: executor_node, on_exit: {on_exit_b},
              remap: {{/pi05_moe/action_chunk: /exec_b/action_chunk}}}}
    replay: {{package: pi05_moe_bringup, executable: pi05-moe, ros_args: false,
              arguments: [replay, '${{bag}}', --delay, '1.0'], on_exit: shutdown,
              enabled: {replay}}}
exec_a:
  ros__parameters: {{enabled: false, control_hz: 20.0, joint_names: [j0]}}
exec_b:
  ros__parameters: {{enabled: false, control_hz: 10.0, joint_names: [j0]}}
"""


@pytest.fixture
def graph(tmp_path):
    def make(on_exit_b: str = 'fail', replay: bool = False) -> Path:
        path = tmp_path / 'graph.yaml'
        path.write_text(GRAPH.format(on_exit_b=on_exit_b, replay=str(replay).lower()))
        return path
    return make


def up(spawn, graph: Path, *extra: str):
    """`pi05-moe up <graph>` as a child process (see conftest.ChildProcess)."""
    return spawn(['pi05-moe', 'up', str(graph), '--no-color', *extra])


def pids(runner) -> dict[str, list[int]]:
    """Node name -> the pids it was started with, in order."""
    out: dict[str, list[int]] = {}
    for line in runner.matching(STARTED.pattern):
        name, pid = STARTED.match(line).groups()
        out.setdefault(name, []).append(int(pid))
    return out


def ready_line(name: str) -> str:
    """A node's first log line, with the runner's prefix in front of rclpy's own."""
    return rf'^\[{name}\]\s+\[INFO\] \[[\d.]+\] \[{name}\]: '


def gone(pid: int) -> bool:
    """True once no process ``pid`` exists (the runner reaped its children)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.timeout(90)
@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM], ids=['ctrl_c', 'sigterm'])
def test_a_signal_stops_every_node_cleanly(spawn, graph, sig):
    runner = up(spawn, graph())
    for name in ('exec_a', 'exec_b'):
        runner.wait_for(ready_line(name), timeout=30)
    started = pids(runner)
    assert sorted(started) == ['exec_a', 'exec_b']

    runner.proc.send_signal(sig)
    assert runner.proc.wait(timeout=20) == 0
    # Every node got SIGINT and exited by itself with 0: no SIGTERM/SIGKILL was needed.
    runner.wait_for(r'^\[up\]\s+exec_a exited with code 0$')
    runner.wait_for(r'^\[up\]\s+exec_b exited with code 0$')
    assert not runner.matching(r'sending SIG')
    assert all(gone(p) for ps in started.values() for p in ps)


@pytest.mark.timeout(90)
def test_a_killed_node_stops_the_graph_with_an_error(spawn, graph):
    runner = up(spawn, graph())
    for name in ('exec_a', 'exec_b'):
        runner.wait_for(ready_line(name), timeout=30)
    started = pids(runner)

    os.kill(started['exec_b'][0], signal.SIGKILL)
    assert runner.proc.wait(timeout=20) == 1
    runner.wait_for(r'^\[up\]\s+error: exec_b was killed by SIGKILL; stopping the graph$')
    runner.wait_for(r'^\[up\]\s+exec_a exited with code 0$')  # the survivor, stopped cleanly
    assert gone(started['exec_a'][0])


@pytest.mark.timeout(90)
def test_a_node_failing_at_startup_is_named_with_its_code(spawn, graph):
    runner = up(spawn, graph(), '--set', 'exec_b.control_hz=-1.0')
    assert runner.proc.wait(timeout=30) == 1
    # The node logs under its default logger name: only the runner's prefix says who it is.
    runner.wait_for(r'^\[exec_b\]\s+\[FATAL\] .*\[executor_node\]: .*control_hz=-1\.0')
    runner.wait_for(r'^\[up\]\s+error: exec_b exited with code 1; stopping the graph$')
    assert all(gone(p) for ps in pids(runner).values() for p in ps)


@pytest.mark.timeout(90)
def test_a_respawning_node_is_restarted_and_the_graph_keeps_running(spawn, graph):
    runner = up(spawn, graph(on_exit_b='respawn'))
    for name in ('exec_a', 'exec_b'):
        runner.wait_for(ready_line(name), timeout=30)
    first = pids(runner)['exec_b'][0]

    mark = runner.mark()
    os.kill(first, signal.SIGKILL)
    runner.wait_for(r'^\[up\]\s+exec_b was killed by SIGKILL; respawning in 2 s$', since=mark)
    runner.wait_for(ready_line('exec_b'), timeout=30, since=mark)
    second = pids(runner)['exec_b'][1]
    assert second != first and runner.alive

    runner.proc.send_signal(signal.SIGINT)
    assert runner.proc.wait(timeout=20) == 0
    assert gone(second) and gone(pids(runner)['exec_a'][0])


def write_prompt_bag(path: Path) -> None:
    """A real 0.2 s MCAP bag with three prompts."""
    store = make_typestore()
    string = store.types['std_msgs/msg/String']
    with Writer(path, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP) as bag:
        conn = bag.add_connection('/pi05_moe/prompt', 'std_msgs/msg/String', typestore=store)
        for i in range(3):
            data = store.serialize_cdr(string(data=f'prompt {i}'), 'std_msgs/msg/String')
            bag.write(conn, 1_700_000_000_000_000_000 + i * 100_000_000, data)


@pytest.mark.timeout(90)
def test_a_finished_shutdown_process_ends_the_graph_with_0(spawn, graph, tmp_path):
    bag = tmp_path / 'episode'
    write_prompt_bag(bag)
    runner = up(spawn, graph(replay=True), '--arg', f'bag={bag}', '--skip', 'exec_b')
    assert runner.proc.wait(timeout=60) == 0
    assert sorted(pids(runner)) == ['exec_a', 'replay']
    assert runner.matching(r'^\[replay\]\s+\S')  # the CLI's own output, prefixed
    runner.wait_for(r'^\[up\]\s+replay finished; stopping the graph$')
    assert gone(pids(runner)['exec_a'][0])
