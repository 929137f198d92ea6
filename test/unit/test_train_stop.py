"""Ctrl-C during ``pi05-moe train`` loses nothing: the step in flight ends, a checkpoint of it is
written, the command exits 130, and ``--resume`` continues from that step.

A real training process in its own process group, with a DataLoader worker; SIGINT goes to the
whole group, as a terminal's Ctrl-C does.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from train_helpers import build_dataset, train_args

from pi05_moe_training.train.checkpointing import load_train_state

STARTED = 'training '  # the logger's first line, written before the first step


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return build_dataset(tmp_path_factory.mktemp('stop'))


def start(dataset, out, *extra) -> subprocess.Popen:
    args = train_args(dataset, out, '--batch-size', '4', '--num-workers', '1', *extra)
    return subprocess.Popen([sys.executable, '-m', 'pi05_moe_bringup.cli', *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def test_ctrl_c_saves_the_step_in_flight_and_resume_continues(dataset, tmp_path):
    out = tmp_path / 'run'
    proc = start(dataset, out, '--max-steps', '100000', '--save-every', '100000')
    lines = []
    for line in proc.stdout:  # wait until it trains
        lines.append(line)
        if line.startswith(STARTED):
            break
    assert proc.poll() is None, ''.join(lines)
    time.sleep(3.0)  # a few steps
    os.killpg(proc.pid, signal.SIGINT)
    rest, _ = proc.communicate(timeout=120)
    text = ''.join(lines) + rest
    assert proc.returncode == 130, text
    found = re.search(r'stopped by SIGINT at step (\d+)', text)
    assert found, text
    step = int(found.group(1))
    assert step >= 1
    assert os.readlink(out / 'latest') == f'checkpoint-{step}'  # not a multiple of save_every
    assert load_train_state(out / f'checkpoint-{step}')['step'] == step
    assert 'Traceback' not in text  # no worker died under it

    resumed = start(dataset, out, '--max-steps', str(step + 2), '--save-every', '100000',
                    '--resume')
    log, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, log
    assert os.readlink(out / 'latest') == f'checkpoint-{step + 2}'
    assert load_train_state(out / f'checkpoint-{step + 2}')['step'] == step + 2
