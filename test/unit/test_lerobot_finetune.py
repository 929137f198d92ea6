"""Issue #16's "done means": a short fine-tune from LeRobot's imported tiny PI0.5 with the camera
MoE on, LoRA and a frozen vision tower, on the simulated-robot dataset the training tests use;
its routing loss falls, and the exported policy acts without peft.

    pi05-moe import --from lerobot ../shared/fixtures/lerobot_pi05_tiny --tokenizer T --out IMP
    pi05-moe train --dataset D --init IMP --lora --freeze vision --out RUN ...
    pi05-moe export RUN --out FINAL
"""

from __future__ import annotations

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_train_lora import import_fixture
from train_helpers import build_dataset

from pi05_moe_bringup import cli
from pi05_moe_policy import Policy

STEPS, EVERY = 8, 2


def test_lerobot_fine_tune_with_moe_lora_and_frozen_vision_lowers_the_routing_loss(tmp_path,
                                                                                   capsys):
    dataset = build_dataset(tmp_path)
    imported = import_fixture(tmp_path)
    assert Policy.load(imported).model_config.use_camera_moe
    run = tmp_path / 'run'
    assert cli.main([
        'train', '--dataset', str(dataset), '--init', imported, '--out', str(run),
        '--lora', '--lora-rank', '8', '--lora-alpha', '16', '--freeze', 'vision',
        '--max-steps', str(STEPS), '--batch-size', '4', '--lr', '1e-3', '--warmup-steps', '1',
        '--routing-warmup-steps', '0', '--routing-ramp-steps', '0', '--routing-loss-weight',
        '1.0', '--log-every', str(EVERY), '--save-every', str(STEPS), '--num-workers', '0',
        '--no-progress', '--device', 'cpu']) == 0
    # the import's stats are LeRobot's, the run's the dataset's: the log says so, dim by dim
    log = capsys.readouterr().out
    assert 'the norm stats come from the dataset and differ from' in log
    assert 'state[joint0] q01 -0.8 -> 1000' in log

    acc = EventAccumulator(str(run / 'tb'))
    acc.Reload()
    routing = [e.value for e in acc.Scalars('train/routing_loss')]
    assert len(routing) == STEPS // EVERY
    assert routing[-1] < 0.7 * routing[0], routing  # measured 0.054 -> 0.019

    assert cli.main(['export', str(run), '--out', str(tmp_path / 'final')]) == 0
    policy = Policy.load(tmp_path / 'final')
    out = policy.infer(policy.fake_obs(seed=2))
    assert np.isfinite(out['actions']).all()
    assert set(out['routing']) == {'l515', 'thermal'}
