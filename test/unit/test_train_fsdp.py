"""``train --fsdp``: FSDP2 (``fully_shard``) on 2 CPU processes (gloo) at tiny dims.

- Sharded training is the same computation as DDP: with the same flags, seeds and data, the
  consolidated FSDP weights equal the DDP replicas' to fp32 reduction-order rounding
  (measured 2e-7 after 4 steps, against parameter moves of 1e-3).
- The loss falls.
- Checkpoints are sharded (every rank writes its part of ``dcp/``, no ``model.safetensors``);
  ``Policy.load`` refuses them with the way out; ``pi05-moe export`` consolidates them.
- ``--resume --fsdp`` from checkpoint-K reproduces the straight run's checkpoint-N exactly, with
  and without ``--lora`` (whose adapters then live in the shards; export merges them).
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from train_helpers import build_dataset, torchrun_train, train_args

from pi05_moe_bringup import cli
from pi05_moe_policy import Policy
from pi05_moe_training.train.checkpointing import load_train_state

K, N = 3, 6


def torchrun(dataset, out, *extra) -> None:
    torchrun_train(dataset, out, '--max-steps', str(N), '--batch-size', '2', '--save-every',
                   str(K), '--log-every', '1', '--warmup-steps', '1', '--lr', '1e-3',
                   '--routing-warmup-steps', '0', *extra)


def export(ckpt, out) -> dict[str, torch.Tensor]:
    assert cli.main(['export', str(ckpt), '--out', str(out)]) == 0
    return load_file(out / 'model.safetensors')


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return build_dataset(tmp_path_factory.mktemp('fsdp'))


@pytest.fixture(scope='module')
def fsdp(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp('fsdp_run') / 'ckpt'
    torchrun(dataset, out, '--fsdp')
    return out


def test_checkpoints_are_sharded_and_export_consolidates_them(fsdp, tmp_path):
    ckpt = fsdp / f'checkpoint-{N}'
    assert not (ckpt / 'model.safetensors').exists()
    shards = sorted(p.name for p in (ckpt / 'dcp').iterdir() if p.suffix == '.distcp')
    assert len(shards) == 2, shards  # one file per rank
    state = load_train_state(ckpt)
    assert state['world_size'] == 2 and state['step'] == N and 'optimizer' not in state
    with pytest.raises(ValueError, match='sharded'):
        Policy.load(ckpt)
    weights = export(fsdp, tmp_path / 'exported')
    policy = Policy.load(tmp_path / 'exported')
    assert policy.model.state_dict().keys() == weights.keys()
    assert np.isfinite(policy.infer(policy.fake_obs())['actions']).all()


def test_fsdp_trains_as_ddp_does_and_the_loss_falls(dataset, fsdp, tmp_path):
    ddp = tmp_path / 'ddp'
    torchrun(dataset, ddp)
    for step in (K, N):
        sharded = export(fsdp / f'checkpoint-{step}', tmp_path / f'fsdp-{step}')
        replica = load_file(ddp / f'checkpoint-{step}' / 'model.safetensors')
        assert sharded.keys() == replica.keys()
        for k in replica:
            assert (sharded[k] - replica[k]).abs().max() < 1e-5, k
    start = load_file(ddp / f'checkpoint-{K}' / 'model.safetensors')
    assert max((replica[k] - start[k]).abs().max() for k in start) > 1e-4  # it trained

    acc = EventAccumulator(str(fsdp / 'tb'))
    acc.Reload()
    loss = [e.value for e in acc.Scalars('train/loss')]
    assert len(loss) == N and np.mean(loss[-2:]) < 0.9 * np.mean(loss[:2]), loss


def test_resuming_a_sharded_run_is_exact(dataset, fsdp, tmp_path):
    resumed = tmp_path / 'resumed'
    resumed.mkdir()
    shutil.copytree(fsdp / f'checkpoint-{K}', resumed / f'checkpoint-{K}')
    os.symlink(f'checkpoint-{K}', resumed / 'latest')
    torchrun(dataset, resumed, '--fsdp', '--resume')
    a = export(fsdp / f'checkpoint-{N}', tmp_path / 'a')
    b = export(resumed / f'checkpoint-{N}', tmp_path / 'b')
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_fsdp_with_lora_resumes_exactly_and_exports_merged(dataset, tmp_path):
    lora = ('--fsdp', '--lora', '--lora-rank', '4')
    straight, resumed = tmp_path / 'straight', tmp_path / 'resumed'
    torchrun(dataset, straight, *lora)
    ckpt = straight / f'checkpoint-{N}'
    assert (ckpt / 'lora' / 'adapter_config.json').is_file()  # the adapters are in the shards
    resumed.mkdir()
    shutil.copytree(straight / f'checkpoint-{K}', resumed / f'checkpoint-{K}')
    os.symlink(f'checkpoint-{K}', resumed / 'latest')
    torchrun(dataset, resumed, *lora, '--resume')
    a = export(straight, tmp_path / 'a')
    b = export(resumed, tmp_path / 'b')
    assert not any('lora' in k or 'base_layer' in k for k in a)  # merged
    for k in a:
        assert torch.equal(a[k], b[k]), k
    policy = Policy.load(tmp_path / 'a')
    assert np.isfinite(policy.infer(policy.fake_obs())['actions']).all()


def test_fsdp_without_torchrun_is_one_clear_error(dataset, tmp_path, capsys):
    assert cli.main(train_args(dataset, tmp_path / 'x', '--fsdp', '--max-steps', '1')) == 2
    assert '--fsdp shards over the processes of torchrun' in capsys.readouterr().err
