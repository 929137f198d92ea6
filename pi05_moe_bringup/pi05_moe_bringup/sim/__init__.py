"""The simulated 3-camera robot: MuJoCo scene, cameras, tasks and a scripted expert (no ROS).

Importing this package selects a headless GL backend first (see `backend.py`), because MuJoCo
reads `MUJOCO_GL` only once, when it is imported.
"""

from .backend import ensure_gl_backend

ensure_gl_backend()
