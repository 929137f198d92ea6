"""config/realsense2_l515_humble.yaml: a valid graph fragment that matches our own L515 driver."""

import re
from pathlib import Path

import pytest

from pi05_moe_bringup.description import load_graph
from pi05_moe_bringup.drivers.config import L515CameraConfig
from pi05_moe_bringup.drivers.l515_frames import L515_COLOR_SIZES, L515_DEPTH_SIZES
from pi05_moe_policy import topics

FRAGMENT = (Path(__file__).resolve().parents[2] / 'pi05_moe_bringup' / 'config'
            / 'realsense2_l515_humble.yaml')
# Parameter names of other realsense-ros releases that 4.54.1 does not read.
NOT_4_54_1 = {
    'rgb_camera.color_profile', 'depth_module.depth_profile', 'depth_module.infra_profile',
    'depth_module.color_profile',  # 4.55.1+
    'color_width', 'color_height', 'color_fps', 'depth_width', 'depth_height', 'depth_fps',
    'align_depth', 'filters', 'enable_pointcloud',  # ros2-legacy 3.x
    'l500_depth_sensor.profile',
}


@pytest.fixture(scope='module')
def node():
    return load_graph(FRAGMENT).node('l515')


def profile(text):
    width, height, fps = map(int, re.fullmatch(r'(\d+)x(\d+)x(\d+)', text).groups())
    return (width, height), fps


def test_is_a_realsense2_camera_node_selected_by_the_driver_argument(node):
    assert (node.package, node.executable) == ('realsense2_camera', 'realsense2_camera_node')
    assert node.when == {'l515_driver': 'realsense'}


def test_remaps_realsense_topics_onto_ours(node):
    remaps = dict(node.remaps)
    assert set(remaps.values()) == {topics.L515_COLOR, topics.L515_COLOR_INFO,
                                    topics.L515_DEPTH, topics.L515_DEPTH_INFO}
    for source, target in remaps.items():
        assert not source.startswith('/') and target == f'/l515/{source}'


def test_uses_4_54_1_parameter_names_only(node):
    assert not NOT_4_54_1 & set(node.params)
    assert node.params['align_depth.enable'] is False  # the depth remap is of unaligned depth
    assert node.params['device_type'] == 'l515' and node.params['enable_sync'] is True


def test_streams_match_our_own_driver(node):
    ours = L515CameraConfig()
    color, color_fps = profile(node.params['rgb_camera.profile'])
    depth, depth_fps = profile(node.params['depth_module.profile'])
    assert color in L515_COLOR_SIZES and depth in L515_DEPTH_SIZES
    assert (color, depth) == ((ours.color_width, ours.color_height),
                              (ours.depth_width, ours.depth_height))
    assert color_fps == depth_fps == ours.fps
    # realsense2_camera names frames <camera_name>_<stream>_optical_frame
    assert f'{node.params["camera_name"]}_color_optical_frame' == ours.color_frame_id
    assert f'{node.params["camera_name"]}_depth_optical_frame' == ours.depth_frame_id
