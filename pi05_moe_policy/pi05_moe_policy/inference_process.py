"""``Policy.infer`` in a child process, so that inference has an interpreter (and a GIL) of its
own. No rclpy.

Why: in policy_node the ROS executor thread handles every image, joint state and /clock message
in Python. Torch releases the GIL inside each op but needs it between ops, and a chunk is
thousands of small ops, so the two threads take turns: measured in the live sim graph on a
2-core machine, the inference thread got 65 % of a core and the executor thread 16 % (together
under one core, with a third of the machine idle), and a chunk took 1.8x as long as alone. In a
child process the chunk runs at its standalone speed (README: real time).

:class:`PolicyProcess` loads the checkpoint in the child (the parent never holds the weights),
answers the attributes policy_node reads (camera names, joint names, horizon, ...) from what
the child reports, and forwards ``infer(obs, **kwargs)`` over a socket pair: the observation's
numpy arrays are pickled (~0.5 MB for three 224 x 224 frames: well under a millisecond). An
exception in the child comes back as :class:`RemoteInferenceError` (the child keeps serving); a
failed load as ``CheckpointError`` with the child's one-line message. :meth:`close` ends the
child at once (a running inference is simply cut off), and the child also ends when the
parent's end of the socket closes, however the parent died. The child ignores SIGINT: Ctrl-C is
the parent's to handle.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from pi05_moe_policy.checkpoints import CheckpointError, load_policy

# What policy_node (core.policy_inputs) reads from a policy besides infer().
ATTRIBUTES = ('joint_names', 'robot_state_dim', 'robot_action_dim', 'camera_names',
              'base_camera', 'expert_cameras', 'thermal_cameras', 'action_horizon',
              'control_period_s', 'max_token_len')


class RemoteInferenceError(RuntimeError):
    """An inference failed in the child process; the message names the original exception."""


@dataclass(frozen=True)
class _DataConfigView:
    max_token_len: int


def _describe(policy: Any) -> dict[str, Any]:
    out = {name: getattr(policy, name) for name in ATTRIBUTES if name != 'max_token_len'}
    out['max_token_len'] = policy.data_config.max_token_len
    return out


def _child_main(fd: int) -> None:
    """The child's entry point (``python -c``): its end of the socket pair is ``fd``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Connection(fd)
    try:
        load, inference = conn.recv()
    except (EOFError, OSError):
        return
    _serve(conn, load, inference)


def _serve(conn: Any, load: dict[str, Any], inference: dict[str, Any]) -> None:
    """The child: load, report, then answer ('infer', obs, kwargs) until the pipe closes."""
    try:
        policy = load_policy(**load)
        policy.set_inference(**inference)
        truncated: list[tuple[str, int]] = []
        policy.transform.set_truncation_handler(lambda text, n: truncated.append((text, n)))
        warm_up(policy)
        conn.send(('ready', _describe(policy)))
    except Exception as exc:  # noqa: BLE001 - the parent reports it
        kind = 'checkpoint' if isinstance(exc, (CheckpointError, ValueError)) else 'load'
        conn.send((kind, ' '.join(str(exc).split()) or type(exc).__name__))
        return
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if request is None:
            return
        _, obs, kwargs = request
        truncated.clear()
        try:
            out = policy.infer(obs, **kwargs)
        except Exception as exc:  # noqa: BLE001 - one bad observation must not end the child
            last = traceback.extract_tb(exc.__traceback__)[-1]
            conn.send(('error', f'{type(exc).__name__}: {exc} ({last.filename.rsplit("/", 1)[-1]}'
                                f':{last.lineno})'))
            continue
        conn.send(('ok', out, list(truncated)))


class PolicyProcess:
    """A policy served by a child process (see the module docstring)."""

    def __init__(self, load: dict[str, Any], inference: dict[str, Any] | None = None,
                 start_timeout_s: float = 900.0) -> None:
        """``load``: ``checkpoints.load_policy`` keyword arguments (spec, device, seed,
        joint_names, num_threads, dtype); ``inference``: ``Policy.set_inference`` ones."""
        # A fresh interpreter (never fork a process with DDS threads), started without
        # multiprocessing's spawn, which would re-run the parent's __main__ script.
        ours, theirs = socket.socketpair()
        self._proc = subprocess.Popen(
            [sys.executable, '-c', 'import sys; from pi05_moe_policy.inference_process import '
             f'_child_main; _child_main({theirs.fileno()})'],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL)
        theirs.close()
        self._conn = Connection(os.dup(ours.fileno()))
        ours.close()
        self._conn.send((dict(load), dict(inference or {})))
        self._on_truncate: Callable[[str, int], None] | None = None
        if not self._conn.poll(start_timeout_s):
            self.close()
            raise CheckpointError(f'the inference process did not load {load.get("spec")!r} '
                                  f'within {start_timeout_s:g} s')
        try:
            reply = self._conn.recv()
        except EOFError:
            code = self._proc.wait()
            self.close()
            raise CheckpointError(f'the inference process ended while loading '
                                  f'{load.get("spec")!r} (exit code {code})') from None
        if reply[0] != 'ready':
            self.close()
            raise CheckpointError(reply[1])
        self.info = reply[1]
        for name in ATTRIBUTES:
            if name != 'max_token_len':
                setattr(self, name, self.info[name])
        self.data_config = _DataConfigView(self.info['max_token_len'])

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def set_truncation_handler(self, handler: Callable[[str, int], None] | None) -> None:
        """Called with (prompt, n_ids) when a prompt was cut to max_token_len."""
        self._on_truncate = handler

    def infer(self, obs: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """``Policy.infer`` in the child; raises RemoteInferenceError on its failure and
        EOFError/OSError when the child is gone (closed)."""
        self._conn.send(('infer', obs, kwargs))
        reply = self._conn.recv()
        if reply[0] == 'error':
            raise RemoteInferenceError(reply[1])
        _, out, truncated = reply
        for text, n_ids in truncated:
            if self._on_truncate is not None:
                self._on_truncate(text, n_ids)
        return out

    def close(self, timeout_s: float = 2.0) -> None:
        """End the child now (a running inference is cut off); safe to call twice."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout_s)
        if not self._conn.closed:
            self._conn.close()


def open_policy(load: dict[str, Any], inference: dict[str, Any] | None = None,
                separate_process: bool = False) -> Any:
    """The policy a node runs: ``load_policy(**load)`` with ``set_inference(**inference)``, in
    this process or (``separate_process``) behind a :class:`PolicyProcess`. A checkpoint or a
    setting that does not fit raises ``CheckpointError`` (one line)."""
    if separate_process:
        return PolicyProcess(load, inference)
    policy = load_policy(**load)
    try:
        policy.set_inference(**(inference or {}))
    except ValueError as err:  # e.g. a threshold for a checkpoint without the camera MoE
        raise CheckpointError(f'{load.get("spec")}: {err}') from None
    if (inference or {}).get('torch_compile') or str(load.get('device', '')).startswith('cuda'):
        warm_up(policy)  # compile now / initialise CUDA now, not in the first chunk
    return policy


def warm_up(policy: Any) -> None:
    """One inference on a fake observation at start, so that the first chunk is not slow
    (lazy initialisation, CUDA context and kernels, a torch_compile compilation), then a reset
    (an image history, RT-1's, must not keep the fake frame)."""
    policy.infer(policy.fake_obs(seed=0))
    policy.reset()
