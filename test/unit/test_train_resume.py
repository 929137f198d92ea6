"""``--resume`` continues exactly: N steps straight == k steps, resume, N - k steps.

The straight run writes ``checkpoint-<k>`` on its way; a second output directory starts from a
copy of it and resumes.  Its final weights and optimiser state must equal the straight run's
bit for bit, on the CPU, with and without DataLoader workers: that holds only if the weights,
the AdamW moments, the step (the lr and routing-weight schedules), the RNG states (flow noise,
flow time, Gumbel noise) and the data position (epoch, batch within the epoch) all round-trip.
k and N are chosen so the resumed part starts mid-epoch and crosses an epoch boundary.
"""

from __future__ import annotations

import os
import shutil

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import FRAMES, build_dataset, train_args

from pi05_moe_bringup import cli
from pi05_moe_training.train.checkpointing import load_train_state

BATCH = 6  # FRAMES // 6 = 5 batches an epoch
K, N = 3, 7


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return build_dataset(tmp_path_factory.mktemp('resume'))


def run(dataset, out, *extra):
    assert cli.main(train_args(
        dataset, out, '--max-steps', str(N), '--batch-size', str(BATCH), '--save-every',
        str(K), '--log-every', '2', '--warmup-steps', '2', '--routing-warmup-steps', '1',
        '--routing-ramp-steps', '3', *extra)) == 0


def assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize('workers, gumbel', [('0', 'false'), ('1', 'true')])
def test_resume_is_exact(dataset, tmp_path, workers, gumbel):
    assert FRAMES // BATCH == 5 and K < 5 < N
    extra = ('--num-workers', workers, '--model-overrides', f'camera_router_use_gumbel={gumbel}')
    straight = tmp_path / 'straight'
    run(dataset, straight, *extra)

    resumed = tmp_path / 'resumed'
    resumed.mkdir()
    shutil.copytree(straight / f'checkpoint-{K}', resumed / f'checkpoint-{K}')
    os.symlink(f'checkpoint-{K}', resumed / 'latest')
    run(dataset, resumed, '--resume', *extra)

    a, b = straight / f'checkpoint-{N}', resumed / f'checkpoint-{N}'
    weights_a = load_file(a / 'model.safetensors')
    weights_b = load_file(b / 'model.safetensors')
    assert not torch.equal(weights_a['action_out_proj.weight'],
                           load_file(resumed / f'checkpoint-{K}' / 'model.safetensors')
                           ['action_out_proj.weight'])  # the resumed run did train
    assert_same_tensors(weights_a, weights_b)
    state_a, state_b = load_train_state(a), load_train_state(b)
    assert (state_b['step'], state_b['epoch'], state_b['batch_in_epoch']) == (N, 1, N - 5)
    for key in ('exp_avg', 'exp_avg_sq'):
        for i, s in state_a['optimizer']['state'].items():
            assert torch.equal(s[key], state_b['optimizer']['state'][i][key])
    assert torch.equal(state_a['rng'][0]['torch'], state_b['rng'][0]['torch'])
