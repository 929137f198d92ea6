"""The node-graph description: configs, executables, parameters, launch files, runner commands.

Pure: no rclpy.init, no process started (test/ros/test_runner.py runs real ones).
"""

from __future__ import annotations

import argparse
import ast
import importlib
from pathlib import Path

import pytest
import yaml
from ament_index_python.packages import PackageNotFoundError, get_package_prefix

from pi05_moe_bringup import runner
from pi05_moe_bringup.description import (
    GraphError,
    executable_path,
    exit_outcome,
    load_graph,
    params_document,
    resolve_arguments,
    resolve_executables,
    ros_arguments,
    select,
    share_config,
    substitute,
    uses_sim_time,
)
from pi05_moe_policy.checkpoints import resolve_checkpoint
from pi05_moe_policy.params import from_flat

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / 'pi05_moe_bringup' / 'config'
CONFIGS = sorted(CONFIG_DIR.glob('*.yaml'))  # the graphs and the realsense2_camera fragment
GRAPHS = ['replay', 'robot', 'sim']  # the ones with a launch file
LAUNCH = sorted((ROOT / 'pi05_moe_bringup' / 'launch').glob('*.launch.py'))

# Executable -> the dataclass its node declares its parameters from (declare_config).
CONFIG_CLASSES = {
    'policy_node': 'pi05_moe_policy.nodes.config:PolicyNodeConfig',
    'executor_node': 'pi05_moe_policy.nodes.config:ExecutorNodeConfig',
    'sim_node': 'pi05_moe_bringup.sim.config:SimConfig',
    'recorder_node': 'pi05_moe_training.record.recording:RecorderConfig',
    'uvc_camera_node': 'pi05_moe_bringup.drivers.config:UvcCameraConfig',
    'thermal_camera_node': 'pi05_moe_bringup.drivers.config:ThermalCameraConfig',
    'l515_camera_node': 'pi05_moe_bringup.drivers.config:L515CameraConfig',
}
# realsense-ros is not installed here (it comes from apt on the robot). These are the parameters
# of realsense2_camera 4.54.1, the last release with the L515, that our configs may set; 4.55
# renamed the profiles (rgb_camera.color_profile, depth_module.depth_profile), which 4.54.1 would
# silently ignore.
EXTERNAL = {('realsense2_camera', 'realsense2_camera_node'): {
    'camera_name', 'serial_no', 'usb_port_id', 'device_type', 'initial_reset',
    'enable_color', 'enable_depth', 'enable_infra', 'enable_infra1', 'enable_infra2',
    'enable_confidence', 'enable_gyro', 'enable_accel', 'rgb_camera.profile',
    'depth_module.profile', 'align_depth.enable', 'pointcloud.enable', 'enable_sync',
    'color_qos', 'depth_qos', 'publish_tf', 'tf_publish_rate', 'diagnostics_period',
    'wait_for_device_timeout', 'reconnect_timeout',
}}


def argument_values(graph) -> dict[str, str]:
    """Every argument at its default; required ones get a placeholder."""
    return {name: arg.default if arg.default is not None else f'<{name}>'
            for name, arg in graph.arguments.items()}


def all_nodes():
    """(config, node) for every node entry of every config, whatever its `when`."""
    for path in CONFIGS:
        graph = load_graph(path)
        for node in graph.nodes:
            yield pytest.param(path, substitute(node, argument_values(graph)),
                               id=f'{path.stem}:{node.name}')


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / 'graph.yaml'
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------- the configs

def test_the_three_graphs_exist():
    assert set(GRAPHS) <= {p.stem for p in CONFIGS}


@pytest.mark.parametrize(('path', 'node'), list(all_nodes()))
def test_every_executable_exists(path, node):
    try:
        get_package_prefix(node.package)
    except PackageNotFoundError:
        assert (node.package, node.executable) in EXTERNAL, (path.name, node.name)
        return
    assert executable_path(node).is_file()


@pytest.mark.parametrize(('path', 'node'), list(all_nodes()))
def test_every_parameter_is_a_field_of_the_node_config(path, node):
    """Names, types and the config's own validation, as declare_config would apply them."""
    if not node.ros_args:
        assert not node.params
        return
    external = EXTERNAL.get((node.package, node.executable))
    if external is not None:
        assert set(node.params) <= external, sorted(set(node.params) - external)
        return
    module, _, cls = CONFIG_CLASSES[node.executable].partition(':')
    from_flat(getattr(importlib.import_module(module), cls), node.params)


def test_sim_runs_sim_policy_executor_on_the_sim_clock():
    graph = load_graph(CONFIG_DIR / 'sim.yaml')
    nodes = select(graph, resolve_arguments(graph, {}))
    assert [n.executable for n in nodes] == ['sim_node', 'policy_node', 'executor_node']
    clock = {n.name: uses_sim_time(graph, n) for n in nodes}
    assert clock == {'sim_node': False, 'policy_node': True, 'executor_node': True}
    assert nodes[1].params['checkpoint'] == 'shipped:sim_small'


@pytest.mark.parametrize(('driver', 'l515'), [('own', 'l515_camera_node'),
                                               ('realsense', 'realsense2_camera_node')])
def test_robot_picks_one_l515_driver(driver, l515):
    graph = load_graph(CONFIG_DIR / 'robot.yaml')
    values = resolve_arguments(graph, {'l515_driver': driver, 'checkpoint': 'ckpt'})
    exes = [n.executable for n in select(graph, values)]
    assert sorted(exes) == sorted(['uvc_camera_node', 'thermal_camera_node', l515,
                                   'policy_node', 'executor_node'])
    assert not any(uses_sim_time(graph, n) for n in select(graph, values))
    executor = graph.node('executor_node')
    assert executor.params.get('enabled', False) is False  # actuation off until ~/enable


def test_robot_runs_realsense_exactly_as_the_driver_fragment_says():
    """robot.yaml repeats config/realsense2_l515_humble.yaml's node (its test checks the 4.54.1
    names and the remaps onto our L515 topics): the two must not drift apart."""
    robot = load_graph(CONFIG_DIR / 'robot.yaml').node('l515')
    fragment = load_graph(CONFIG_DIR / 'realsense2_l515_humble.yaml').node('l515')
    assert robot == fragment
    assert robot.when == {'l515_driver': 'realsense'}
    assert robot.params['rgb_camera.profile'] == '1280x720x30'


def test_replay_plays_the_bag_last_and_ends_the_graph_when_done():
    graph = load_graph(CONFIG_DIR / 'replay.yaml')
    with pytest.raises(GraphError, match="argument 'bag' is required"):
        resolve_arguments(graph, {})
    nodes = select(graph, resolve_arguments(graph, {'bag': 'bags/ep1'}))
    assert [n.executable for n in nodes] == ['policy_node', 'executor_node', 'recorder_node',
                                             'pi05-moe']
    replay = nodes[-1]
    assert replay.arguments[:2] == ('replay', 'bags/ep1') and replay.on_exit == 'shutdown'
    assert not replay.ros_args
    # Inputs only: replaying the bag's own outputs would mix them with the live policy's.
    topics = replay.arguments[replay.arguments.index('--topics') + 1:]
    assert '/pi05_moe/action_chunk' not in topics and '/clock' not in topics
    assert graph.node('executor_node').params['enabled'] is False


@pytest.mark.parametrize('name', GRAPHS)
def test_the_policy_checkpoint_is_an_argument_of_every_graph(name):
    """`ros2 launch ... checkpoint:=X` / `pi05-moe up --arg checkpoint=X` reach policy_node."""
    graph = load_graph(CONFIG_DIR / f'{name}.yaml')
    assert graph.node('policy_node').params['checkpoint'] == '${checkpoint}'
    given = {**argument_values(graph), 'checkpoint': 'preset:tiny'}
    (policy,) = [n for n in select(graph, resolve_arguments(graph, given))
                 if n.name == 'policy_node']
    assert policy.params['checkpoint'] == 'preset:tiny'


@pytest.mark.parametrize('name', ['sim', 'replay'])
def test_sim_and_replay_default_to_the_shipped_checkpoint(name):
    """preset:tiny's joints (joint_0..13) match no recorded bag: its policy would never infer."""
    default = load_graph(CONFIG_DIR / f'{name}.yaml').arguments['checkpoint'].default
    assert default == 'shipped:sim_small'
    assert (Path(resolve_checkpoint(default)) / 'model.safetensors').is_file()


def test_robot_requires_its_checkpoint():
    graph = load_graph(CONFIG_DIR / 'robot.yaml')
    assert graph.arguments['checkpoint'].default is None


@pytest.mark.parametrize(('on_exit', 'code', 'outcome'), [
    ('fail', 0, 'failed'), ('fail', 1, 'failed'), ('fail', -9, 'failed'),
    ('shutdown', 0, 'finished'), ('shutdown', 2, 'failed'), ('shutdown', -15, 'failed'),
    ('respawn', 0, 'respawn'), ('respawn', 1, 'respawn'),
])
def test_exit_outcome_is_the_same_for_runner_and_launch(tmp_path, on_exit, code, outcome):
    graph = load_graph(write(tmp_path, GOOD.replace('on_exit: shutdown', f'on_exit: {on_exit}')))
    assert exit_outcome(graph.node('tool'), code) == outcome


def test_every_missing_executable_is_named_on_one_line_before_anything_starts(tmp_path):
    text = (GOOD.replace('package: pi05_moe_policy', 'package: no_such_pkg', 1)
            .replace('executable: executor_node, use_sim_time', 'executable: nope, use_sim_time'))
    graph = load_graph(write(tmp_path, text))
    nodes = select(graph, resolve_arguments(graph, {'out': 'o'}))
    with pytest.raises(FileNotFoundError) as info:
        resolve_executables(nodes)
    message = str(info.value)
    assert '\n' not in message and message.endswith('nothing was started')
    assert "first: package 'no_such_pkg' is not installed" in message
    assert "second: package 'pi05_moe_policy' has no executable 'nope'" in message
    assert set(resolve_executables(nodes[2:])) == {'tool'}


# ---------------------------------------------------------------------------------- launch files

@pytest.mark.parametrize('path', LAUNCH, ids=lambda p: p.name)
def test_launch_file_only_hands_its_config_to_the_shared_helper(path):
    tree = ast.parse(path.read_text())
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [(n.module, sorted(a.name for a in n.names)) for n in imports] == [
        ('pi05_moe_bringup.description', ['load_graph', 'share_config', 'to_launch_description'])]
    (func,) = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert func.name == 'generate_launch_description'
    assert ast.unparse(func.body[-1]) == (
        f"return to_launch_description(load_graph(share_config('{path.name[:-10]}.yaml')))")
    assert len(path.read_text().splitlines()) <= 25
    assert share_config(path.name[:-10]).is_file()  # installed, where the launch file looks


def test_every_graph_has_a_launch_file():
    assert [p.name[:-10] for p in LAUNCH] == GRAPHS


# ---------------------------------------------------------------------------------- the format

GOOD = """
pi05_moe_graph:
  description: test graph
  use_sim_time: true
  arguments:
    mode: {default: a, choices: [a, b]}
    out: {}
  nodes:
    first: {package: pi05_moe_policy, executable: executor_node, when: {mode: a},
            remap: {/x: /y, /p: /q}}
    second: {package: pi05_moe_policy, executable: executor_node, use_sim_time: false,
             env: {WHERE: '${out}'}}
    tool: {package: pi05_moe_bringup, executable: pi05-moe, ros_args: false,
           arguments: [replay, '${out}/bag'], on_exit: shutdown}
first:
  ros__parameters:
    control_hz: 20.0
    limits: {low: [1.0, 2.0]}
    dir: ${out}/x
"""


def test_a_graph_resolves_selects_and_substitutes(tmp_path):
    graph = load_graph(write(tmp_path, GOOD))
    nodes = select(graph, resolve_arguments(graph, {'out': '/tmp/o'}))
    assert [n.name for n in nodes] == ['first', 'second', 'tool']
    first, second, tool = nodes
    assert first.params == {'control_hz': 20.0, 'limits.low': [1.0, 2.0], 'dir': '/tmp/o/x'}
    assert second.env == {'WHERE': '/tmp/o'} and tool.arguments == ('replay', '/tmp/o/bag')
    assert [n.name for n in select(graph, resolve_arguments(graph, {'out': '', 'mode': 'b'}))] \
        == ['second', 'tool']
    assert params_document(first) == {'first': {'ros__parameters': {
        'control_hz': 20.0, 'limits': {'low': [1.0, 2.0]}, 'dir': '/tmp/o/x'}}}


def test_ros_arguments_of_a_node_and_of_a_plain_process(tmp_path):
    graph = load_graph(write(tmp_path, GOOD))
    first, second, tool = select(graph, resolve_arguments(graph, {'out': 'o'}))
    assert ros_arguments(first, '/t/first.yaml', uses_sim_time(graph, first)) == [
        '--ros-args', '-r', '__node:=first', '--params-file', '/t/first.yaml',
        '-r', '/x:=/y', '-r', '/p:=/q', '-p', 'use_sim_time:=true']
    assert ros_arguments(second, '/t/s.yaml', uses_sim_time(graph, second)) == [
        '--ros-args', '-r', '__node:=second', '--params-file', '/t/s.yaml']
    assert ros_arguments(tool, None, True) == []


@pytest.mark.parametrize(('edit', 'message'), [
    (('use_sim_time: true', 'use_sim_time: yes please'), 'use_sim_time: expected true/false'),
    (('on_exit: shutdown', 'on_exit: ignore'), "on_exit='ignore': expected one of"),
    (('when: {mode: a}', 'when: {mode: c}'), "when.mode='c': expected one of"),
    (('when: {mode: a}', 'when: {flavour: a}'), 'when.flavour: expected a declared argument'),
    (("'${out}/bag'", "'${bag}'"), r'nodes.tool: \$\{bag\}: expected a declared argument'),
    (('remap:', 'remaps:'), r"nodes.first: unknown key\(s\) \['remaps'\]"),
    (('first:\n  ros__parameters:', 'third:\n  ros__parameters:'),
     'third: expected a node listed under pi05_moe_graph.nodes'),
    (('  ros__parameters:', '  ros_parameters:'), 'first: expected exactly one key'),
    (('low: [1.0, 2.0]', 'low: [1, 2.0]'), 'limits.low=.*a list of one scalar type'),
    (('ros_args: false,', 'ros_args: false, remap: {/a: /b},'), 'no parameters or remaps'),
    (('default: a, choices', 'default: z, choices'), "default='z': expected one of"),
])
def test_mistakes_are_errors_naming_the_key(tmp_path, edit, message):
    old, new = edit
    assert old in GOOD
    with pytest.raises(GraphError, match=message):
        load_graph(write(tmp_path, GOOD.replace(old, new, 1)))


def test_argument_errors(tmp_path):
    graph = load_graph(write(tmp_path, GOOD))
    with pytest.raises(GraphError, match="argument 'out' is required"):
        resolve_arguments(graph, {})
    with pytest.raises(GraphError, match=r"unknown argument\(s\) \['colour'\]"):
        resolve_arguments(graph, {'out': 'o', 'colour': 'red'})
    with pytest.raises(GraphError, match="mode='c': expected one of"):
        resolve_arguments(graph, {'out': 'o', 'mode': 'c'})


def test_a_missing_executable_is_named(tmp_path):
    graph = load_graph(write(tmp_path, GOOD.replace('executable: executor_node, when',
                                                    'executable: no_such_node, when')))
    with pytest.raises(FileNotFoundError, match="first: package 'pi05_moe_policy' has no "
                       "executable 'no_such_node'"):
        executable_path(graph.node('first'))
    with pytest.raises(FileNotFoundError, match="package 'no_such_pkg' is not installed"):
        executable_path(load_graph(write(tmp_path, GOOD.replace(
            'package: pi05_moe_policy', 'package: no_such_pkg', 1))).node('first'))


# ---------------------------------------------------------------------------------- runner plan

def up(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    runner.add_arguments(parser)
    return parser.parse_args(list(argv))


def dry_run(capsys, *argv: str) -> tuple[int, list[str]]:
    code = runner.main(up(*argv, '--dry-run', '--no-color'))
    return code, capsys.readouterr().out.splitlines()


def commands(lines: list[str]) -> dict[str, list[str]]:
    """Node name -> its command line, from the dry run's output."""
    out = {}
    for line in lines:
        head, sep, cmd = line.partition('): ')
        if sep and '(on_exit:' in head:
            out[head.split()[1]] = cmd.split()
    return out


def test_dry_run_prints_every_command_with_its_own_params(capsys, tmp_path):
    code, lines = dry_run(capsys, str(write(tmp_path, GOOD)), '--arg', 'out=/o',
                          '--set', 'first.control_hz=5', '--set', 'first.extra=[a, b]')
    assert code == 0, lines
    assert "[up] --arg mode=... (a|b, default 'a'): " in lines
    assert '[up] --arg out=... (required): ' in lines
    cmds = commands(lines)
    assert list(cmds) == ['first', 'second', 'tool']
    assert cmds['first'][0] == str(Path(get_package_prefix('pi05_moe_policy'))
                                   / 'lib/pi05_moe_policy/executor_node')
    assert cmds['first'][1:4] == ['--ros-args', '-r', '__node:=first']
    assert cmds['tool'][1:] == ['replay', '/o/bag']
    params = yaml.safe_load('\n'.join(x.split(' ', 1)[1][4:] for x in lines
                                      if x.startswith('[up]     ')))
    assert params == {'first': {'ros__parameters': {
        'control_hz': 5, 'limits': {'low': [1.0, 2.0]}, 'dir': '/o/x', 'extra': ['a', 'b']}},
        'second': {'ros__parameters': {}}}


def test_only_skip_and_use_sim_time(capsys, tmp_path):
    path = str(write(tmp_path, GOOD))
    _, lines = dry_run(capsys, path, '--arg', 'out=o', '--only', 'second,tool', '--skip', 'tool',
                       '--use-sim-time')
    cmds = commands(lines)
    assert list(cmds) == ['second']
    assert 'use_sim_time:=true' not in cmds['second']  # the node's own false wins
    _, lines = dry_run(capsys, path, '--arg', 'out=o', '--arg', 'mode=b')
    assert list(commands(lines)) == ['second', 'tool']


@pytest.mark.parametrize(('argv', 'message'), [
    (['--only', 'nobody'], "no node 'nobody'"),
    (['--arg', 'mode=b', '--only', 'first'], '--only first: not started with these arguments'),
    (['--set', 'first'], "--set 'first': expected NAME=VALUE"),
    (['--set', 'first=3'], '--set first: expected NODE.PARAM=VALUE'),
    (['--set', 'first.x=[a'], "--set first.x: '[a' is not a YAML value"),
    (['--skip', 'first,second,tool'], 'no node left to start'),
    ([], "argument 'out' is required"),
])
def test_bad_runner_options_exit_2_with_a_message(capsys, tmp_path, argv, message):
    code, lines = dry_run(capsys, str(write(tmp_path, GOOD)),
                          *(['--arg', 'out=o'] if argv else []), *argv)
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith('[up] error: ') and message in lines[0]


def test_installed_configs_are_found_by_name(capsys):
    required = {'robot': ['--arg', 'checkpoint=ckpt'], 'replay': ['--arg', 'bag=b']}
    for name in ('sim', 'robot', 'replay'):
        code, lines = dry_run(capsys, name, *required.get(name, []))
        assert code == 0, lines
        assert lines[0].startswith(f'[up] {share_config(name)}: ')
    code, lines = dry_run(capsys, 'simulation')
    assert code == 2 and "no installed config 'simulation.yaml'" in lines[0]
    assert all(name in lines[0].partition('installed: ')[2] for name in GRAPHS)
