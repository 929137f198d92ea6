"""Shared pieces of the training tests: a tiny real dataset and fast training flags.

The dataset goes through the real pipeline: two episode bags (bag_factory) converted by
``pi05_moe_training.dataset.convert``, 17 frames each at 50 Hz with 24x32 images; "hot" labels the
thermal camera active, "red" the L515.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from bag_factory import write_episode_bag

from pi05_moe_training.bags.reader import find_bags
from pi05_moe_training.dataset.convert import convert

FRAMES = 34  # 2 episodes x 17 control periods (checked in build_dataset)

# The tiny preset at 56x56 pixels (16 image tokens a camera) and a 10-step action chunk: the
# same code paths as 224x224, several times faster on a shared 2-core CPU.
FAST_MODEL = ['--preset', 'tiny', '--model-overrides', 'image_size=56', 'action_horizon=10']


def build_dataset(root: Path) -> Path:
    """Write the bags and convert them; returns the dataset directory."""
    bags = root / 'bags'
    write_episode_bag(bags / 'a_hot', prompt='lift the hot cube', seconds=0.5)
    write_episode_bag(bags / 'b_red', prompt='lift the red cube', seconds=0.5, t0=2000.0)
    report = convert(find_bags([bags]), root / 'dataset', progress=False)
    assert not report.skipped and report.total_frames == FRAMES, report
    return root / 'dataset'


def train_args(dataset: Path, out: Path, *extra: str) -> list[str]:
    """``pi05-moe train`` arguments: fast model, no workers, no progress bar."""
    return ['train', '--dataset', str(dataset), '--out', str(out), *FAST_MODEL,
            '--num-workers', '0', '--no-progress', *extra]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def torchrun_train(dataset: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    """``pi05-moe train`` under ``torchrun --nproc_per_node 2`` on the CPU (gloo, one thread
    each); fails with the end of its output unless it exits 0, else returns the process."""
    args = train_args(dataset, out, '--device', 'cpu', *extra)[1:]  # no 'train' subcommand
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
           '--master_addr', '127.0.0.1', '--master_port', str(free_port()),
           '-m', 'pi05_moe_training.train.loop', *args]
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc
