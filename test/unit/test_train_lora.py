"""``pi05-moe train --lora`` (peft): what trains, what is saved, resume and the merge on export.

LoRA is for pretrained weights, so the runs start (``--init``) from LeRobot's tiny PI0.5
(``../shared/fixtures/lerobot_pi05_tiny``) imported with a fresh camera MoE: one straight run
of N steps (checkpoints every K) and one that resumes from its checkpoint-K, on the tiny real
dataset of train_helpers.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_lerobot_import import TINY, standin_tokenizer
from train_helpers import build_dataset

from pi05_moe_bringup import cli
from pi05_moe_policy import Policy
from pi05_moe_training.train.checkpointing import load_train_state, load_training_policy
from pi05_moe_training.train.config import TrainConfig
from pi05_moe_training.train.lora import has_lora, merge_adapters

K, N = 2, 4
LORA = ('--lora', '--lora-rank', '4', '--lora-alpha', '8', '--freeze', 'vision')


def import_fixture(tmp) -> str:
    """LeRobot's tiny PI0.5 as a policy with a fresh camera MoE (``pi05-moe import``)."""
    assert (TINY / 'model.safetensors').is_file(), f'{TINY} is missing (shared/ fixtures)'
    out = tmp / 'imported'
    assert cli.main(['import', '--from', 'lerobot', str(TINY), '--out', str(out), '--tokenizer',
                     str(standin_tokenizer(tmp / 'tokenizer.json')), '--quiet']) == 0
    return str(out)


def lora_args(dataset, out, init, *extra) -> list[str]:
    return ['train', '--dataset', str(dataset), '--out', str(out), '--init', init,
            '--max-steps', str(N), '--batch-size', '4', '--save-every', str(K), '--log-every',
            '1', '--warmup-steps', '1', '--routing-warmup-steps', '0', '--lr', '1e-3',
            '--num-workers', '0', '--no-progress', '--device', 'cpu', *LORA, *extra]


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('lora')
    return build_dataset(tmp), import_fixture(tmp)


@pytest.fixture(scope='module')
def straight(setup, tmp_path_factory):
    out = tmp_path_factory.mktemp('lora_run') / 'ckpt'
    assert cli.main(lora_args(*setup[:1], out, setup[1])) == 0
    return out


def test_only_adapters_and_the_unfrozen_parts_train(setup, straight):
    imported = load_file(os.path.join(setup[1], 'model.safetensors'))
    a = load_file(straight / f'checkpoint-{K}' / 'model.safetensors')
    b = load_file(straight / f'checkpoint-{N}' / 'model.safetensors')
    assert a.keys() == b.keys() and not any('lora' in k or 'base_layer' in k for k in a)
    for key in b:
        if key.startswith(('gemma.', 'vision.')):  # LoRA's base weights, --freeze vision
            assert torch.equal(imported[key], b[key]), f'{key}: a frozen weight changed'
        if key.startswith(('camera_moe.', 'action_', 'time_mlp_')):
            assert not torch.equal(a[key], b[key]), f'{key}: should train in full'
    adapters = load_file(straight / f'checkpoint-{N}' / 'lora' / 'adapter_model.safetensors')
    lora_b = {k: v for k, v in adapters.items() if 'lora_B' in k}
    assert len(lora_b) == 2 * 2 * 7  # 2 layers x 2 streams x 7 projections (tiny)
    # B starts at zero; every adapter trained but those on the VLM's last-layer query, output
    # and MLP, which no loss reads (the action expert reads only the prefix's keys and values)
    untrained = {k.split('.')[-4] + '.' + k.split('.')[-3] for k, v in lora_b.items()
                 if v.abs().sum() == 0}
    assert untrained == {'self_attn.q_proj', 'self_attn.o_proj', 'mlp.gate_proj',
                         'mlp.up_proj', 'mlp.down_proj'}
    assert all(v.abs().sum() > 0 for k, v in lora_b.items() if 'language_model.layers.1' not in k)


def test_lora_leaves_the_camera_moe_and_the_other_parts_trainable():
    from pi05_moe_policy.model import Pi05Model, make_config
    from pi05_moe_training.train.lora import add_lora

    torch.manual_seed(0)
    model = Pi05Model(make_config('tiny'))
    n = add_lora(model, TrainConfig(lora=True, lora_rank=4))
    assert n == 28  # 2 layers x 2 streams x 7 projections
    trainable = {k for k, p in model.named_parameters() if p.requires_grad}
    for k, _ in model.named_parameters():
        in_gemma = k.startswith('gemma.')
        assert (k in trainable) == (not in_gemma or '.lora_' in k), k
    assert any(k.startswith('camera_moe.') for k in trainable)
    assert 'camera_moe.expert_scales' in trainable


def test_a_lora_checkpoint_is_refused_by_policy_load_and_merged_by_export(straight, tmp_path):
    ckpt = straight / f'checkpoint-{N}'
    with pytest.raises(ValueError, match='holds LoRA adapters'):
        Policy.load(ckpt)
    assert cli.main(['export', str(straight), '--out', str(tmp_path / 'merged')]) == 0
    assert not (tmp_path / 'merged' / 'lora').exists()
    merged = Policy.load(tmp_path / 'merged')  # a plain Pi05Model: no peft layers
    assert not has_lora(merged.model)

    trained = load_training_policy(ckpt)  # base weights + adapters, unmerged
    assert has_lora(trained.model)
    base = Policy.load(ckpt, allow_adapters=True)  # the base weights alone
    obs = merged.fake_obs(seed=3)
    shape = (merged.action_horizon, merged.model_config.action_dim)
    noise = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    act = {name: p.infer(obs, noise=noise)['actions']
           for name, p in (('merged', merged), ('trained', trained), ('base', base))}
    scale = np.abs(act['trained']).max()  # robot units (the fixture's stats reach ~1e3)
    # merged (W + s B A) vs unmerged (W x + s B (A x)): fp32 rounding only (7e-8 measured)
    assert np.abs(act['merged'] - act['trained']).max() < 1e-5 * scale
    assert np.abs(act['base'] - act['trained']).max() > 5e-4 * scale  # 2e-3: adapters matter
    merge_adapters(trained.model)
    assert not has_lora(trained.model)


def resume_dir(straight, tmp_path):
    resumed = tmp_path / 'resumed'
    resumed.mkdir()
    shutil.copytree(straight / f'checkpoint-{K}', resumed / f'checkpoint-{K}')
    os.symlink(f'checkpoint-{K}', resumed / 'latest')
    return resumed


def test_resume_with_lora_is_exact(setup, straight, tmp_path):
    resumed = resume_dir(straight, tmp_path)
    assert cli.main(lora_args(setup[0], resumed, setup[1], '--resume')) == 0
    a, b = straight / f'checkpoint-{N}', resumed / f'checkpoint-{N}'
    for name in ('model.safetensors', 'lora/adapter_model.safetensors'):
        wa, wb = load_file(a / name), load_file(b / name)
        assert wa.keys() == wb.keys()
        for k in wa:
            assert torch.equal(wa[k], wb[k]), (name, k)
    sa, sb = load_train_state(a), load_train_state(b)
    for i, s in sa['optimizer']['state'].items():
        assert torch.equal(s['exp_avg'], sb['optimizer']['state'][i]['exp_avg'])


def test_resuming_a_lora_run_without_lora_is_refused(setup, straight, tmp_path, capsys):
    resumed = resume_dir(straight, tmp_path)
    args = [a for a in lora_args(setup[0], resumed, setup[1], '--resume') if a != '--lora']
    assert cli.main(args) == 2
    assert 'resume it with --lora' in capsys.readouterr().err


@pytest.mark.parametrize('field, value, quoted', [
    ('lora_rank', 0, 'lora_rank=0'), ('lora_alpha', -1.0, 'lora_alpha=-1.0'),
    ('lora_dropout', 1.0, 'lora_dropout=1.0'), ('lora_parts', 'vlm,lm', "lora_parts='vlm,lm'"),
    ('lora_targets', ['q proj'], "lora_targets=['q proj']")])
def test_lora_options_are_validated(field, value, quoted):
    with pytest.raises(ValueError, match=quoted.replace('[', r'\[').replace(']', r'\]')):
        TrainConfig(**{field: value})


def test_targets_that_match_nothing_are_an_error(setup, tmp_path, capsys):
    args = lora_args(setup[0], tmp_path / 'x', setup[1], '--lora-targets', 'no_such_layer')
    assert cli.main(args) == 2
    assert 'no_such_layer' in capsys.readouterr().err


def test_init_from_a_lora_run_starts_from_the_merged_weights(setup, straight, tmp_path):
    merged = tmp_path / 'merged'
    assert cli.main(['export', str(straight), '--out', str(merged)]) == 0
    out = tmp_path / 'next'
    args = ['train', '--dataset', str(setup[0]), '--out', str(out), '--init',
            str(straight / f'checkpoint-{N}'), '--freeze', 'vision,vlm,expert', '--max-steps',
            '1', '--batch-size', '2', '--num-workers', '0', '--no-progress', '--device', 'cpu']
    assert cli.main(args) == 0
    want = load_file(merged / 'model.safetensors')
    got = load_file(out / 'checkpoint-1' / 'model.safetensors')
    gemma = [k for k in want if k.startswith('gemma.')]
    assert gemma and all(torch.equal(want[k], got[k]) for k in gemma)  # frozen, merged values
