"""Every default topic name of DESIGN.md, in one place. ROS-free; remap to change.

The camera drivers and the simulator publish the camera names; realsense2_camera is remapped
onto the L515 ones (``config/realsense2_l515_humble.yaml``). Node configs take these as their
parameter defaults, and the shipped YAML configs spell the same names (a unit test keeps them
equal).
"""

# -- cameras (sensor-data QoS) -------------------------------------------------------------
WRIST_IMAGE = '/wrist/image_raw'  # rgb8
WRIST_INFO = '/wrist/camera_info'

THERMAL_IMAGE = '/thermal/image_raw'  # mono16, centi-Kelvin (Lepton radiometric)
THERMAL_COLOR = '/thermal/image_color'  # rgb8 preview
THERMAL_INFO = '/thermal/camera_info'

L515_COLOR = '/l515/color/image_raw'  # rgb8
L515_COLOR_INFO = '/l515/color/camera_info'
L515_DEPTH = '/l515/depth/image_rect_raw'  # 16UC1, millimetres
L515_DEPTH_INFO = '/l515/depth/camera_info'

# Camera name -> image topic of the default robot (the policy's `cameras` parameter).
CAMERAS = {'wrist': WRIST_IMAGE, 'l515': L515_COLOR, 'thermal': THERMAL_IMAGE}

# -- robot state and the instruction -------------------------------------------------------
JOINT_STATES = '/joint_states'  # sensor_msgs/JointState
PROMPT = '/pi05_moe/prompt'  # std_msgs/String, reliable + transient-local, depth 1

# -- policy_node outputs -------------------------------------------------------------------
ACTION_CHUNK = '/pi05_moe/action_chunk'  # pi05_moe_msgs/ActionChunk
ROUTING = '/pi05_moe/routing'  # pi05_moe_msgs/RoutingWeights
DIAGNOSTICS = '/diagnostics'  # diagnostic_msgs/DiagnosticArray (both nodes)

# -- executor_node outputs -----------------------------------------------------------------
COMMAND_PREVIEW = '/pi05_moe/command_preview'  # what would be commanded while disabled
CONTROLLER = 'arm_controller'  # the default ros2_control controller


def controller_commands(controller: str = CONTROLLER) -> str:
    """``/<controller>/commands``: std_msgs/Float64MultiArray (forward command controller)."""
    return f'/{controller}/commands'


def controller_trajectory(controller: str = CONTROLLER) -> str:
    """``/<controller>/joint_trajectory``: trajectory_msgs/JointTrajectory."""
    return f'/{controller}/joint_trajectory'


COMMANDS = controller_commands()  # '/arm_controller/commands'
JOINT_TRAJECTORY = controller_trajectory()  # '/arm_controller/joint_trajectory'

# -- time and the simulator ----------------------------------------------------------------
CLOCK = '/clock'  # rosgraph_msgs/Clock (sim time)
SIM_SUCCESS = '/sim/success'  # std_msgs/Bool, latched like the prompt: the task's outcome

# -- bags ----------------------------------------------------------------------------------
EPISODE_METADATA = '/episode/metadata'  # std_msgs/String JSON, written into each episode bag
