"""record topics into one rosbag2 MCAP bag per episode (the recorder node, plus a keyboard).

Runs ``recorder_node`` in this process. Episodes start and stop from
- the keyboard, when stdin is a terminal:  s/space start   k stop as success   f stop as failure
  e stop (no verdict)   d discard the running episode   q quit;
- the services ``/recorder/start``, ``/recorder/stop``, ``/recorder/discard`` (std_srvs/Trigger),
  ``/recorder/set_success`` (std_srvs/SetBool) and the topic ``/recorder/set_metadata``
  (std_msgs/String JSON), e.g. from the simulator's scripted expert;
- ``--auto-start``: one episode from now until Ctrl-C.
Ctrl-C closes the running bag cleanly. Each bag stores the prompt, task, success, robot, operator
and camera roles in metadata.yaml's custom_data and as an /episode/metadata message.

On a robot with rosbag2 the equivalent is
  ros2 bag record -s mcap -o <bag> --qos-profile-overrides-path \\
      $(ros2 pkg prefix pi05_moe_training)/share/pi05_moe_training/config/qos_overrides.yaml \\
      $(grep -v '^#' .../config/record_topics.txt)
and `pi05-moe convert` reads those bags too.

Examples:
  pi05-moe record --out bags --prompt "lift the hot cube" --task lift_hot_cube --operator ana
  pi05-moe record --auto-start --topics /wrist/image_raw /joint_states --out /tmp/bags
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import termios
import threading
import tty
from typing import Any

KEYS = {
    's': 'start', ' ': 'start', 'k': 'stop as success', 'f': 'stop as failure',
    'e': 'stop (no verdict)', 'd': 'discard', 'q': 'quit',
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--out', dest='out_dir', help='directory for the bags (default: bags)')
    parser.add_argument('--topics', nargs='+', help='topics to record (default: the standard '
                        'list, see config/record_topics.txt)')
    parser.add_argument('--storage', choices=('mcap', 'sqlite3'), help='default: mcap')
    parser.add_argument('--compression', choices=('zstd', 'none'),
                        help='zstd: compress MCAP chunks (default: none)')
    parser.add_argument('--prefix', help='bag name prefix (default: episode)')
    parser.add_argument('--prompt', help='language instruction of the episodes')
    parser.add_argument('--task', help='task id of the episodes')
    parser.add_argument('--robot', help='robot name')
    parser.add_argument('--operator', help='who demonstrates')
    parser.add_argument('--base-camera', help='always-on camera role (default: wrist)')
    parser.add_argument('--experts', nargs='+', dest='expert_cameras',
                        help='gated expert camera roles (default: l515 thermal)')
    parser.add_argument('--camera', action='append', default=[], metavar='NAME=TOPIC',
                        help='camera name -> image topic (repeatable)')
    parser.add_argument('--auto-start', action='store_true', help='start an episode at once')
    parser.add_argument('--no-keyboard', action='store_true',
                        help='ignore stdin even when it is a terminal')
    parser.add_argument('--use-sim-time', action='store_true',
                        help='stamp messages with /clock time (simulation, bag replay)')
    parser.add_argument('--params-file', help='ROS params YAML for the node "recorder"')


def parameter_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The recorder parameters given on the command line (flat, dotted names)."""
    out: dict[str, Any] = {}
    for name in ('out_dir', 'topics', 'storage', 'compression', 'prefix', 'prompt', 'task',
                 'robot', 'operator', 'base_camera', 'expert_cameras'):
        value = getattr(args, name)
        if value is not None:
            out[name] = value
    for item in args.camera:
        name, sep, topic = item.partition('=')
        if not sep or not name or not topic:
            raise SystemExit(
                f'--camera {item!r}: expected NAME=TOPIC, e.g. wrist=/wrist/image_raw')
        out[f'cameras.{name}'] = topic
    if args.auto_start:
        out['auto_start'] = True
    if args.use_sim_time:
        out['use_sim_time'] = True
    return out


class Keyboard:
    """Reads single keys from a terminal in a thread and drives the recorder node."""

    def __init__(self, node):
        self.node = node
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='keyboard', daemon=True)

    def __enter__(self) -> Keyboard:
        self._fd = sys.stdin.fileno()
        self._saved = termios.tcgetattr(self._fd)
        tty.setcbreak(self._fd)
        print('keys: ' + '   '.join(f'[{"space" if k == " " else k}] {v}'
                                    for k, v in KEYS.items()), flush=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)
        termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.2)
            if not ready:
                continue
            key = os.read(self._fd, 1).decode(errors='ignore').lower()
            if key in KEYS:
                self.handle(key)

    def handle(self, key: str) -> None:
        node, recorder = self.node, self.node.recorder
        try:
            if key in ('s', ' '):
                if recorder.recording:
                    print(f'already recording {recorder.current_path}', flush=True)
                else:
                    print(f'recording {node.start_episode()}', flush=True)
            elif key in ('k', 'f', 'e'):
                success = {'k': True, 'f': False, 'e': None}[key]
                info = node.stop_episode(success=success)
                print(f'saved {info["bag"]} ({info.get("duration_s", 0)} s, success={success})'
                      if info['bag'] else 'not recording', flush=True)
            elif key == 'd':
                was = recorder.recording
                node.stop_episode(discard=True)
                print('discarded' if was else 'not recording', flush=True)
            elif key == 'q':
                print('quitting', flush=True)
                node.context.try_shutdown()
        except Exception as exc:  # noqa: BLE001 - keep the keyboard alive, say why
            print(f'error: {exc}', flush=True)


def main(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.parameter import Parameter

    from pi05_moe_training.record.recorder_node import RecorderNode

    overrides = [Parameter(k, value=v) for k, v in parameter_overrides(args).items()]
    ros_args = ['--ros-args', '--params-file', args.params_file] if args.params_file else None
    rclpy.init(args=ros_args)
    node = None
    try:
        node = RecorderNode(parameter_overrides=overrides)
        if sys.stdin.isatty() and not args.no_keyboard:
            with Keyboard(node):
                rclpy.spin(node)
        else:
            rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ValueError as exc:  # bad parameters: the message names the field and value
        print(f'pi05-moe record: {exc}', file=sys.stderr)
        return 2
    finally:
        if node is not None:
            for summary in node.recorder.summaries:
                print(f'bag: {summary.path}  {sum(summary.counts.values())} messages, '
                      f'{summary.duration_s:.1f} s, dropped {summary.dropped}')
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
