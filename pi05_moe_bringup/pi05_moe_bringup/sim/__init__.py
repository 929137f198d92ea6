"""The simulated 3-camera robot: MuJoCo scene, cameras, tasks and a scripted expert (no ROS).

Importing this package selects a headless GL backend first (see `backend.py`), because MuJoCo
reads `MUJOCO_GL` only once, when it is imported. Without a working backend, physics still runs
(`SimRobot(render=False)`); only creating cameras fails, with the probe's findings.
"""

import warnings

from pi05_moe_bringup.sim.backend import GLBackendError, ensure_gl_backend

try:
    ensure_gl_backend()
except GLBackendError as _err:
    warnings.warn(str(_err), RuntimeWarning, stacklevel=2)
