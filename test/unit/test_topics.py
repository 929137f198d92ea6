"""pi05_moe_policy.topics against the shipped configs and the code's defaults.

The YAML configs and the ``ros2 bag record`` lists are user files and keep their literal topic
names; this test keeps those names equal to the constants the code uses. Pure: no rclpy.init.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pi05_moe_bringup.description import load_graph
from pi05_moe_bringup.sim_tools.demo import IMAGE_TOPICS, RECORD_TOPICS
from pi05_moe_policy import topics
from pi05_moe_policy.nodes.config import ExecutorNodeConfig, PolicyNodeConfig
from pi05_moe_training.bags.episode_meta import DEFAULT_CAMERAS, METADATA_TOPIC
from pi05_moe_training.dataset.extract import ExtractConfig
from pi05_moe_training.record.recording import DEFAULT_TOPICS, RecorderConfig

ROOT = Path(__file__).resolve().parents[2]
BRINGUP_CONFIGS = sorted((ROOT / 'pi05_moe_bringup' / 'config').glob('*.yaml'))
TRAINING_CONFIG = ROOT / 'pi05_moe_training' / 'config'
GRAPHS = [p for p in BRINGUP_CONFIGS if p.stem in ('robot', 'sim', 'replay')]

# Every topic name topics.py defines (the constants, and the dict of camera topics).
KNOWN = {v for k, v in vars(topics).items() if k.isupper() and isinstance(v, str)
         and v.startswith('/')}


def absolute_names(value: Any) -> list[str]:
    """Every string in a YAML document (keys too) that reads as an absolute ROS name."""
    if isinstance(value, dict):
        return [n for k, v in value.items() for n in absolute_names(k) + absolute_names(v)]
    if isinstance(value, list):
        return [n for v in value for n in absolute_names(v)]
    if isinstance(value, str) and value.startswith('/') and not value.startswith('/dev/'):
        return [value]  # device paths (/dev/video0) are not topics
    return []


def test_topics_module_spells_design_md_names():
    assert topics.CAMERAS == {'wrist': '/wrist/image_raw', 'l515': '/l515/color/image_raw',
                              'thermal': '/thermal/image_raw'}
    assert (topics.JOINT_STATES, topics.PROMPT) == ('/joint_states', '/pi05_moe/prompt')
    assert (topics.ACTION_CHUNK, topics.ROUTING, topics.DIAGNOSTICS) == (
        '/pi05_moe/action_chunk', '/pi05_moe/routing', '/diagnostics')
    assert topics.COMMAND_PREVIEW == '/pi05_moe/command_preview'
    assert topics.COMMANDS == topics.controller_commands('arm_controller') == \
        '/arm_controller/commands'
    assert topics.controller_trajectory('left_arm') == '/left_arm/joint_trajectory'
    assert (topics.CLOCK, topics.SIM_SUCCESS) == ('/clock', '/sim/success')
    assert {topics.L515_COLOR, topics.L515_DEPTH, topics.WRIST_IMAGE, topics.THERMAL_IMAGE,
            topics.THERMAL_COLOR} <= KNOWN


@pytest.mark.parametrize('path', BRINGUP_CONFIGS, ids=lambda p: p.name)
def test_every_topic_in_a_shipped_bringup_config_is_a_topics_constant(path):
    names = absolute_names(yaml.safe_load(path.read_text()))
    assert names, f'{path.name} names no topic'
    unknown = sorted(set(names) - KNOWN)
    assert not unknown, f'{path.name}: topics not in pi05_moe_policy.topics: {unknown}'


@pytest.mark.parametrize('path', GRAPHS, ids=lambda p: p.name)
def test_shipped_graphs_give_each_topic_parameter_its_default(path):
    """A params block that names a camera map, a controller or a topic list names ours."""
    for node in load_graph(path).nodes:
        if 'cameras.wrist' in node.params:  # policy_node's camera -> topic map
            cameras = {k.removeprefix('cameras.'): v for k, v in node.params.items()
                       if k.startswith('cameras.')}
            assert cameras == topics.CAMERAS, (path.name, node.name)
        if 'controller' in node.params:
            assert node.params['controller'] == topics.CONTROLLER, (path.name, node.name)
        for name, value in node.params.items():
            if name.endswith('_topic'):
                assert value in KNOWN, (path.name, node.name, name, value)
        if node.executable == 'recorder_node':
            assert set(node.params['topics']) <= set(DEFAULT_TOPICS), (path.name, node.name)


def test_ros2_bag_record_lists_are_the_recorder_defaults_in_topics():
    listed = [line.strip() for line in (TRAINING_CONFIG / 'record_topics.txt').read_text()
              .splitlines() if line.strip() and not line.startswith('#')]
    assert set(listed) <= KNOWN
    overrides = yaml.safe_load((TRAINING_CONFIG / 'qos_overrides.yaml').read_text())
    assert set(overrides) <= KNOWN
    assert METADATA_TOPIC == topics.EPISODE_METADATA in listed


def test_code_defaults_come_from_topics():
    po, ex = PolicyNodeConfig(), ExecutorNodeConfig()
    assert po.cameras == topics.CAMERAS and po.cameras is not topics.CAMERAS  # a copy
    assert (po.joint_states_topic, po.prompt_topic, po.action_chunk_topic, po.routing_topic,
            po.diagnostics_topic) == (topics.JOINT_STATES, topics.PROMPT, topics.ACTION_CHUNK,
                                      topics.ROUTING, topics.DIAGNOSTICS)
    assert (ex.action_chunk_topic, ex.joint_states_topic, ex.preview_topic,
            ex.command_topic) == (topics.ACTION_CHUNK, topics.JOINT_STATES,
                                  topics.COMMAND_PREVIEW, topics.COMMANDS)
    assert ExecutorNodeConfig(output='joint_trajectory').command_topic == \
        topics.JOINT_TRAJECTORY
    assert DEFAULT_CAMERAS == topics.CAMERAS
    assert set(RecorderConfig().topics) | set(RECORD_TOPICS) | set(IMAGE_TOPICS) <= KNOWN
    ex_cfg = ExtractConfig()
    assert ex_cfg.state_topic == topics.JOINT_STATES and ex_cfg.prompt_topic == topics.PROMPT
    assert ex_cfg.action_topics[0] == topics.COMMANDS
