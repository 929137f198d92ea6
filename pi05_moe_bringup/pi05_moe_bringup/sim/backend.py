"""Pick a headless OpenGL backend for MuJoCo before `mujoco` is imported.

MuJoCo reads `MUJOCO_GL` once, at import time, and falls back to GLFW (which needs a display)
when it is unset. `ensure_gl_backend()` therefore runs from this package's `__init__`: it keeps a
backend the user chose, and otherwise probes EGL, then OSMesa, each in a throw-away subprocess
(a failed probe cannot poison this process), and exports the first that works.
"""

import os
import subprocess
import sys

CANDIDATES = ('egl', 'osmesa')

# Creates a tiny offscreen context and frees it: the cheapest proof that a backend renders.
_PROBE = (
    'import mujoco\n'
    'ctx = mujoco.GLContext(16, 16)\n'
    'ctx.make_current()\n'
    'ctx.free()\n'
)


class GLBackendError(RuntimeError):
    """No headless OpenGL backend could create a context."""


def probe_backend(name: str, timeout_s: float = 30.0) -> str | None:
    """Return None if MuJoCo can create a context with MUJOCO_GL=`name`, else the error text."""
    env = dict(os.environ, MUJOCO_GL=name)
    if name == 'egl':
        env.setdefault('PYOPENGL_PLATFORM', 'egl')
    try:
        proc = subprocess.run([sys.executable, '-c', _PROBE], env=env, capture_output=True,
                              text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return f'probe timed out after {timeout_s} s'
    if proc.returncode == 0:
        return None
    lines = proc.stderr.strip().splitlines()
    return lines[-1] if lines else f'exit status {proc.returncode}'


def ensure_gl_backend(candidates: tuple[str, ...] = CANDIDATES) -> str:
    """Make sure `MUJOCO_GL` names a headless backend and return it.

    A value already set (by the user, or by `mujoco` having been imported) is kept as it is;
    renderer creation reports it clearly if it does not work. Otherwise the candidates are
    probed in order. Raises GLBackendError listing each candidate's failure if none works.
    """
    chosen = os.environ.get('MUJOCO_GL', '').strip().lower()
    if chosen or 'mujoco' in sys.modules:
        return chosen
    failures = []
    for name in candidates:
        error = probe_backend(name)
        if error is None:
            os.environ['MUJOCO_GL'] = name
            if name == 'egl':
                os.environ.setdefault('PYOPENGL_PLATFORM', 'egl')
            return name
        failures.append(f'{name}: {error}')
    raise GLBackendError(
        'no headless OpenGL backend works for MuJoCo (' + '; '.join(failures) + '). Install '
        'libegl1 and libgl1-mesa-dri (EGL) or libosmesa6 (OSMesa), or set MUJOCO_GL yourself.')
