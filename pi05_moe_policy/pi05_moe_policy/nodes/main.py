"""The one ``main()`` body of every pi05_moe node: init, spin, clean shutdown."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions


def run_node(factory: Callable[[], Node], name: str, args: list[str] | None = None,
             fatal: tuple[type[Exception], ...] = (ValueError,), wake_s: float = 0.2) -> int:
    """Build the node (``name`` for log lines) and spin it until Ctrl-C or shutdown.

    Ends the process with the exit status (see :func:`exit_now`): 0 on Ctrl-C/SIGINT or an
    external shutdown. An exception of a type
    in ``fatal`` raised while building the node (a bad parameter, checkpoint or library) is
    logged as one fatal line without a traceback and gives status 1: no retry can fix it.

    Ctrl-C becomes a plain ``KeyboardInterrupt`` that unwinds ``spin`` first; rclpy's own SIGINT
    handler would shut the context down under a callback that is still publishing (seen as
    ``RuntimeError`` from ``take_message`` and exit 1). The handler is installed explicitly
    because a process started in the background by a shell inherits SIGINT ignored. Python runs
    signal handlers only between bytecodes, so the executor waits at most ``wake_s`` at a time:
    a node with nothing to do (a driver whose camera is gone) still stops promptly.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    try:
        try:
            node = factory()
        except fatal as exc:
            rclpy.logging.get_logger(name).fatal(str(exc))
            rclpy.try_shutdown()
            return exit_now(1)
        while rclpy.ok():
            rclpy.spin_once(node, timeout_sec=wake_s)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return exit_now(0)


def exit_now(code: int) -> int:
    """Flush every stream and end the process at once, without interpreter finalisation.

    By now ``destroy_node`` has closed what the node owns (a recording's bag, the simulator).
    What finalisation would still do is wait on torch's thread pools and on a worker thread that
    is finishing an aborted inference: seconds on a loaded machine, against the 2 s a node has
    after SIGINT (launch escalates to SIGTERM at 5 s).
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing left to save
            pass
    logging.shutdown()
    ctypes.CDLL(None).fflush(None)  # C stdio: rcutils' log lines
    os._exit(code)
