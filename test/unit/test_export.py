"""pi05-moe export: policy files only, half-precision weights that load back."""

import numpy as np

from pi05_moe_bringup import cli
from pi05_moe_policy import Policy


def test_export_writes_a_loadable_fp16_policy(tmp_path):
    policy = Policy.from_preset('tiny', seed=3, num_steps=2)
    train_out = tmp_path / 'run'
    policy.save(train_out / 'checkpoint-7')
    (train_out / 'latest').symlink_to('checkpoint-7')

    assert cli.main(['export', str(train_out), '--out', str(tmp_path / 'ship'),
                     '--weights-dtype', 'float16']) == 0
    shipped = Policy.load(tmp_path / 'ship')
    assert shipped.config == policy.config
    obs = policy.fake_obs(seed=1)
    noise = np.zeros((policy.action_horizon, policy.model_config.action_dim), np.float32)
    a = policy.infer(obs, noise=noise)['actions']
    b = shipped.infer(obs, noise=noise)['actions']
    assert np.abs(a - b).max() < 1e-2 * max(1.0, np.abs(a).max())
    size = (tmp_path / 'ship/model.safetensors').stat().st_size
    assert size < 0.55 * (train_out / 'checkpoint-7/model.safetensors').stat().st_size


def test_export_sets_the_sampling_temperature(tmp_path):
    policy = Policy.from_preset('tiny', seed=3, num_steps=2)
    policy.save(tmp_path / 'ckpt')
    assert cli.main(['export', str(tmp_path / 'ckpt'), '--out', str(tmp_path / 'ship'),
                     '--noise-scale', '0']) == 0
    shipped = Policy.load(tmp_path / 'ship')
    assert (policy.model_config.noise_scale, shipped.model_config.noise_scale) == (1.0, 0.0)
    assert cli.main(['export', str(tmp_path / 'ckpt'), '--out', str(tmp_path / 'bad'),
                     '--noise-scale', '-2']) == 2


def test_export_of_a_non_checkpoint_exits_2(tmp_path, capsys):
    assert cli.main(['export', str(tmp_path), '--out', str(tmp_path / 'x')]) == 2
    assert 'not a checkpoint' in capsys.readouterr().err


def test_export_takes_every_checkpoint_form_the_nodes_take(tmp_path):
    """shipped:<name> and preset:<name> as well as directories (issue 18, item 12)."""
    assert cli.main(['export', 'shipped:sim_small', '--out', str(tmp_path / 'ship'),
                     '--weights-dtype', 'float16']) == 0
    assert Policy.load(tmp_path / 'ship').data_config.joint_names is not None
    assert cli.main(['export', 'preset:tiny', '--out', str(tmp_path / 'tiny')]) == 0
    assert Policy.load(tmp_path / 'tiny').model_config.preset == 'tiny'
