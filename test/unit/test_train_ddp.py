"""DDP: ``torchrun --nproc_per_node 2`` on the CPU (gloo) keeps the two replicas identical.

Each rank hashes its own parameters when a checkpoint is written; rank 0 gathers the hashes
into ``train_state.pt`` (and would stop the run if they differed).  The test checks that both
ranks' hashes agree, that they are the hash of the saved weights, that the ranks drew
different flow noise, and that only rank 0 wrote logs.
"""

from __future__ import annotations

import torch
from train_helpers import build_dataset, torchrun_train

from pi05_moe_policy import Policy
from pi05_moe_training.train.checkpointing import load_train_state
from pi05_moe_training.train.distributed import parameter_hash


def test_two_cpu_processes_keep_identical_replicas(tmp_path):
    dataset = build_dataset(tmp_path)
    out = tmp_path / 'ckpt'
    proc = torchrun_train(dataset, out, '--max-steps', '3', '--batch-size', '2',
                          '--save-every', '2', '--log-every', '1', '--warmup-steps', '1',
                          '--routing-warmup-steps', '0')

    for step in (2, 3):
        state = load_train_state(out / f'checkpoint-{step}')
        assert state['world_size'] == 2 and state['step'] == step
        hashes = state['replica_hashes']
        assert len(hashes) == 2 and hashes[0] == hashes[1], hashes
        rng0, rng1 = (r['torch'] for r in state['rng'])
        assert not torch.equal(rng0, rng1)  # each rank draws its own noise
    policy = Policy.load(out / 'latest')
    assert parameter_hash(policy.model) == hashes[0]
    fresh = Policy.from_config(policy.config, seed=0, norm_stats=policy.norm_stats.to_dict())
    assert parameter_hash(fresh.model) != hashes[0]  # it trained
    assert len(list((out / 'tb').iterdir())) == 1  # rank 0's event file only
    assert proc.stdout.count('done: step 3') + proc.stderr.count('done: step 3') == 1
