"""The launch descriptions that launch/*.launch.py generate, run by the real launch/launch_ros.

launch and launch_ros are not on PyPI, so CI skips this file; on a ROS install (or with the
ros2/launch and ros2/launch_ros sources on PYTHONPATH) it runs. What it checks (issue 18):
the declared arguments are the graph's; checkpoint:= reaches policy_node; every executable is
resolved before any process starts; a dying `on_exit: fail` node makes the launch exit 1.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

# (A bare `launch` can be a namespace package, e.g. a colcon build/ folder: import the actions.)
pytest.importorskip('launch.actions', reason='launch is not installed (not on PyPI; CI lacks it)')
pytest.importorskip('launch_ros.actions', reason='launch_ros is not installed (not on PyPI)')

from launch import (  # noqa: E402
    LaunchContext,
    LaunchDescription,
    LaunchDescriptionSource,
    LaunchService,
)
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription  # noqa: E402

from pi05_moe_bringup.description import load_graph, to_launch_description  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / 'pi05_moe_bringup' / 'config'
GRAPHS = ['replay', 'robot', 'sim']

TOOLS = """
pi05_moe_graph:
  description: plain processes only
  nodes:
    first: {{package: pi05_moe_bringup, executable: pi05-moe, ros_args: false,
             arguments: [--version], on_exit: {on_exit}}}
    second: {{package: pi05_moe_bringup, executable: pi05-moe, ros_args: false,
              arguments: [--version], on_exit: respawn, respawn_delay_s: 60}}
"""
MISSING_DRIVER = """\
    l515: {package: no_such_pkg, executable: realsense2_camera_node}
"""


def actions_of(ld: LaunchDescription, tmp_path: Path, monkeypatch, **given: str):
    """Run the declarations and the node-choosing function as launch would, start nothing."""
    monkeypatch.setattr('tempfile.tempdir', str(tmp_path))
    context = LaunchContext()
    for name, value in given.items():
        context.launch_configurations[name] = value
    *declared, choose = ld.entities
    for action in declared:
        assert isinstance(action, DeclareLaunchArgument)
        action.execute(context)
    return choose.execute(context)


def run(ld: LaunchDescription, **given: str) -> int:
    service = LaunchService()
    service.include_launch_description(IncludeLaunchDescription(
        LaunchDescriptionSource(ld), launch_arguments=list(given.items())))
    return service.run()


@pytest.mark.parametrize('name', GRAPHS)
def test_every_graph_argument_is_a_launch_argument(name):
    graph = load_graph(CONFIG_DIR / f'{name}.yaml')
    declared = {a.name: a for a in to_launch_description(graph).get_launch_arguments()}
    assert set(declared) == {*graph.arguments, 'use_sim_time'}
    for arg in graph.arguments.values():
        default = declared[arg.name].default_value
        assert (default is None) == (arg.default is None), arg.name


def test_sim_checkpoint_argument_reaches_the_policy_params_file(tmp_path, monkeypatch):
    ld = to_launch_description(load_graph(CONFIG_DIR / 'sim.yaml'))
    actions = actions_of(ld, tmp_path, monkeypatch, checkpoint='preset:tiny')
    assert len(actions) == 3
    (folder,) = tmp_path.glob('pi05_moe_sim_*')
    assert sorted(p.name for p in folder.iterdir()) == [
        'executor_node.params.yaml', 'policy_node.params.yaml', 'sim_node.params.yaml']
    params = folder / 'policy_node.params.yaml'
    doc = yaml.safe_load(params.read_text())
    assert doc['policy_node']['ros__parameters']['checkpoint'] == 'preset:tiny'


def test_a_missing_package_fails_before_any_process_starts(tmp_path, monkeypatch):
    path = tmp_path / 'tools.yaml'
    # A ROS node last, as robot.yaml's realsense2_camera: launch_ros would look it up only
    # when it starts it, after the drivers before it (issue 18: orphaned drivers).
    path.write_text(TOOLS.format(on_exit='fail') + MISSING_DRIVER)
    ld = to_launch_description(load_graph(path))
    with pytest.raises(FileNotFoundError, match="l515: package 'no_such_pkg' is not installed"):
        actions_of(ld, tmp_path, monkeypatch)
    assert run(to_launch_description(load_graph(path))) == 1


@pytest.mark.parametrize(('on_exit', 'code'), [('fail', 1), ('shutdown', 0)])
def test_the_exit_status_follows_on_exit(tmp_path, on_exit, code):
    """`first` exits 0 at once: `on_exit: fail` ends the launch with 1, `shutdown` with 0
    (`second` respawns, a minute later: only `first` decides; shutdown cancels the wait)."""
    path = tmp_path / 'tools.yaml'
    path.write_text(TOOLS.format(on_exit=on_exit))
    assert run(to_launch_description(load_graph(path))) == code
