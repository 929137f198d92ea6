"""The topics the camera drivers publish (DESIGN.md's names), in one place. Remap to change.

The simulator publishes the same names; realsense2_camera is remapped onto the L515 ones
(``config/realsense2_l515_humble.yaml``).
"""

WRIST_IMAGE = '/wrist/image_raw'  # rgb8
WRIST_INFO = '/wrist/camera_info'

THERMAL_IMAGE = '/thermal/image_raw'  # mono16, centi-Kelvin (Lepton radiometric)
THERMAL_COLOR = '/thermal/image_color'  # rgb8 preview
THERMAL_INFO = '/thermal/camera_info'

L515_COLOR = '/l515/color/image_raw'  # rgb8
L515_COLOR_INFO = '/l515/color/camera_info'
L515_DEPTH = '/l515/depth/image_rect_raw'  # 16UC1, millimetres
L515_DEPTH_INFO = '/l515/depth/camera_info'
