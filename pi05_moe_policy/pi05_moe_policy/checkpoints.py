"""Where a policy comes from: one ``checkpoint`` string for nodes, CLIs and configs. No rclpy.

- ``/path/to/dir``: a ``Policy.save`` directory;
- ``preset:<name>``: random weights of a preset (demos, tests), sized for ``joint_names`` when
  they are given;
- ``shipped:<name>``: a checkpoint shipped with this package, in
  ``share/pi05_moe_policy/checkpoints/<name>`` (or the source tree's ``checkpoints/<name>``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SHIPPED_SIM = 'sim_small'  # the checkpoint trained on the simulated robot (make demo)
FILES = ('config.json', 'norm_stats.json', 'tokenizer_spec.json', 'model.safetensors')


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded. The text is one line naming the file and the cause
    (nodes and CLIs print it as it is, without a traceback)."""


def check_checkpoint_dir(directory: str | Path) -> Path:
    """Raise ``CheckpointError`` unless every file of a ``Policy.save`` directory is there and
    readable: the JSON files parse and the safetensors header covers the whole file."""
    from safetensors import safe_open

    d = Path(directory)
    if not d.is_dir():
        raise CheckpointError(f'checkpoint {str(d)!r}: not a directory (give a Policy.save '
                              'directory, preset:<name> or shipped:<name>)')
    for name in FILES:
        path = d / name
        if not path.is_file():
            raise CheckpointError(f'{path}: missing (a checkpoint directory holds '
                                  f'{", ".join(FILES)})')
        try:
            if name.endswith('.json'):
                json.loads(path.read_text(encoding='utf-8'))
            else:
                with safe_open(str(path), framework='pt'):
                    pass
        except (OSError, UnicodeDecodeError) as exc:
            raise CheckpointError(f'{path}: cannot be read: {exc}') from None
        except json.JSONDecodeError as exc:
            raise CheckpointError(f'{path}: not valid JSON (truncated?): {exc}') from None
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own SafetensorError
            raise CheckpointError(f'{path}: not a valid safetensors file (truncated?): '
                                  f'{exc}') from None
    return d


def shipped_dirs() -> list[Path]:
    """Where shipped checkpoints live: the installed share/ first, then the source tree."""
    src = Path(os.path.realpath(__file__)).parent.parent / 'checkpoints'
    try:
        from ament_index_python.packages import (
            PackageNotFoundError,
            get_package_share_directory,
        )
    except ImportError:  # plain Python without ROS: the source tree only
        return [src]
    try:
        return [Path(get_package_share_directory('pi05_moe_policy')) / 'checkpoints', src]
    except PackageNotFoundError:
        return [src]


def shipped_checkpoint(name: str = SHIPPED_SIM) -> Path | None:
    """The directory of shipped checkpoint ``name``, or None when it is not installed."""
    for place in shipped_dirs():
        if (place / name / 'model.safetensors').is_file():
            return place / name
    return None


def resolve_checkpoint(spec: str) -> str:
    """``spec`` with ``shipped:<name>`` replaced by its directory; raises ValueError if absent."""
    if not spec:
        raise ValueError('checkpoint is empty: give a checkpoint directory, preset:<name> '
                         f'(e.g. preset:tiny) or shipped:<name> (e.g. shipped:{SHIPPED_SIM})')
    if spec.startswith('shipped:'):
        name = spec[len('shipped:'):]
        found = shipped_checkpoint(name)
        if found is None:
            raise ValueError(f'checkpoint {spec!r}: no shipped checkpoint {name!r} in '
                             f'{", ".join(str(p) for p in shipped_dirs())}')
        return str(found)
    return spec


def load_policy(spec: str, device: str = 'cpu', seed: int = 0,
                joint_names: Sequence[str] = (), num_threads: Any = None,
                dtype: Any = None) -> Any:
    """The ``Policy`` that ``spec`` names (see the module docstring); ``CheckpointError`` (one
    line naming the file and the cause) when a checkpoint directory cannot be loaded.
    ``dtype``: None keeps fp32, 'auto' the fastest for the device (model/precision.py)."""
    from pi05_moe_policy import Policy

    spec = resolve_checkpoint(spec)
    if spec.startswith('preset:'):
        # Random weights fit any robot: size the state and actions by joint_names when given.
        n = len(joint_names)
        robot = dict(robot_state_dim=n, robot_action_dim=n,
                     joint_names=tuple(joint_names)) if n else {}
        return Policy.from_preset(spec[len('preset:'):], seed=seed, device=device,
                                  num_threads=num_threads, dtype=dtype, **robot)
    check_checkpoint_dir(spec)
    try:
        return Policy.load(spec, device=device, seed=seed, num_threads=num_threads,
                           dtype=dtype)
    except (ValueError, KeyError, TypeError, OSError, RuntimeError) as exc:
        # What the files hold does not fit (config keys, shapes, the tokenizer's own file).
        text = ' '.join(str(exc).split()) or type(exc).__name__
        raise CheckpointError(f'checkpoint {spec}: {text}') from None
