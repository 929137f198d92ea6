"""The real robot: camera drivers + policy + executor (config/robot.yaml).

    ros2 launch pi05_moe_bringup robot.launch.py [name:=value ...]

Arguments and nodes come from the config (`ros2 launch ... --show-args` lists them); the same
graph runs without launch as `pi05-moe up robot`. Keep this file thin: everything is in
pi05_moe_bringup/description.py, which is what the tests cover.
"""

from pi05_moe_bringup.description import load_graph, share_config, to_launch_description


def generate_launch_description():
    return to_launch_description(load_graph(share_config('robot.yaml')))
