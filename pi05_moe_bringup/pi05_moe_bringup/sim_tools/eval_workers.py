"""sim-eval's episodes side by side in worker processes (`--jobs N`).

Each worker builds its own simulated robot, policy and closed loop once (``evaluate.open_loop``,
the code the serial path uses), then runs the (task, seed, latency model) episodes it is given.
Only fixed latencies go in parallel: there the world advances by the stated latency whatever
the CPU does, so an episode comes out as it would alone (identical for a deterministic policy,
noise scale 0 as the shipped export); a measured latency would be inflated by the neighbours.
Workers start with `spawn` (no fork of a process holding torch or MuJoCo state).
"""

from __future__ import annotations

import argparse
import atexit
import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import ExitStack
from typing import Any

from pi05_moe_bringup.sim_tools.closed_loop import ClosedLoop, EpisodeResult, LoopConfig

_LOOP: ClosedLoop | None = None  # this worker's closed loop


def worker_threads(args: argparse.Namespace) -> int:
    """torch threads a worker takes: --num-threads, else the cores shared out, at least 1."""
    return args.num_threads if args.num_threads > 0 else max(1, (os.cpu_count() or 1) // args.jobs)


def check_jobs(args: argparse.Namespace, configs: list[LoopConfig]) -> None:
    """Raise ValueError (quoting the values) unless --jobs fits the latency models."""
    if args.jobs < 1:
        raise ValueError(f'--jobs must be >= 1, got {args.jobs}')
    if args.jobs > 1 and any(c.measured for c in configs):
        raise ValueError(f'--jobs {args.jobs} runs episodes side by side, which slows each '
                         'inference and would inflate a measured latency: give --latency-s S '
                         'or a --latency-sweep of fixed seconds')


def _init(args: argparse.Namespace, sim_cfg: Any, executor_cfg: Any, config: LoopConfig,
          inference: dict[str, Any] | None) -> None:
    import torch

    from pi05_moe_bringup.sim_tools.evaluate import open_loop

    global _LOOP
    torch.set_num_threads(worker_threads(args))
    stack = ExitStack()
    atexit.register(stack.close)
    _LOOP, _ = open_loop(args, sim_cfg, executor_cfg, config, inference, stack)


def _run(task: str, seed: int, config: LoopConfig) -> EpisodeResult:
    assert _LOOP is not None, 'worker not initialised'
    _LOOP.config = config
    return _LOOP.run_episode(task, seed)


class EpisodePool:
    """``args.jobs`` worker processes, each with its own closed loop built like the caller's."""

    def __init__(self, args: argparse.Namespace, sim_cfg: Any, executor_cfg: Any,
                 config: LoopConfig, inference: dict[str, Any] | None):
        self._pool = ProcessPoolExecutor(
            args.jobs, mp_context=multiprocessing.get_context('spawn'), initializer=_init,
            initargs=(args, sim_cfg, executor_cfg, config, inference))

    def submit(self, task: str, seed: int, config: LoopConfig) -> Future:
        """A future of the episode's EpisodeResult."""
        return self._pool.submit(_run, task, seed, config)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
