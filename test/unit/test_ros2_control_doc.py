"""docs/ros2_control.md's controller YAML matches robot.yaml's output groups (#18 item 6), and the
sim's groups are the executor's in sim.yaml."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from pi05_moe_policy import topics
from pi05_moe_policy.core.output_groups import plan_groups
from pi05_moe_policy.nodes.config import ExecutorNodeConfig

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / 'pi05_moe_bringup' / 'config'
TYPES = {'commands': 'forward_command_controller/ForwardCommandController',
         'joint_trajectory': 'joint_trajectory_controller/JointTrajectoryController'}
GROUP_FIELDS = ('output_groups', 'group_joints', 'group_controllers', 'group_outputs',
                'output_scale', 'output_offset')


def _params(name: str, node: str) -> dict:
    return yaml.safe_load((CONFIG / name).read_text())[node]['ros__parameters']


def _executor_groups(name: str):
    params = {k: v for k, v in _params(name, 'executor_node').items()
              if not isinstance(v, str) or '${' not in v}
    cfg = ExecutorNodeConfig(**params)
    return plan_groups(cfg, cfg.joint_names)


def test_the_documented_controllers_match_robot_yaml():
    text = (ROOT / 'docs' / 'ros2_control.md').read_text()
    blocks = re.findall(r'```yaml\n(.*?)```', text, re.S)
    assert len(blocks) == 1, 'expected one yaml block in docs/ros2_control.md'
    doc = yaml.safe_load(blocks[0])
    manager = doc['controller_manager']['ros__parameters']
    groups = _executor_groups('robot.yaml')
    assert [g.name for g in groups] == ['arm', 'gripper']
    assert len(groups[0].joints) == 6 and groups[1].joints == ('gripper',)
    for g in groups:
        assert manager[g.controller]['type'] == TYPES[g.output], g
        params = doc[g.controller]['ros__parameters']
        assert tuple(params['joints']) == g.joints, g
        if g.output == 'commands':
            assert params['interface_name'] == 'position'
            assert g.topic == topics.controller_commands(g.controller)
        else:
            assert params['command_interfaces'] == ['position']
            assert g.topic == topics.controller_trajectory(g.controller)
        assert g.topic in text
    # Every controller the manager loads is a group's or the joint_state_broadcaster.
    loaded = {k for k, v in manager.items() if isinstance(v, dict)}
    assert loaded == {g.controller for g in groups} | {'joint_state_broadcaster'}


def test_the_sim_listens_on_the_executors_groups():
    executor, sim = _params('sim.yaml', 'executor_node'), _params('sim.yaml', 'sim_node')
    for field in GROUP_FIELDS:
        assert sim[field] == executor[field], field
    assert [g.topic for g in _executor_groups('sim.yaml')] == [
        '/arm_controller/commands', '/gripper_controller/commands']


def test_the_readme_shows_the_same_controller_config():
    doc = re.findall(r'```yaml\n(.*?)```', (ROOT / 'docs' / 'ros2_control.md').read_text(), re.S)
    readme = (ROOT / 'README.md').read_text()
    assert doc and f'```yaml\n{doc[0]}```' in readme, 'README lacks docs/ros2_control.md\'s block'
