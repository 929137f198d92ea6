"""pi05_moe_policy.Policy: from_preset / infer / save / load / reset and bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pi05_moe_policy import Policy

H, A = 50, 32


def obs(prompt='lift the hot cube', state_dim=14, **images):
    imgs = {'wrist': np.full((480, 640, 3), 90, np.uint8),
            'l515': np.full((240, 320, 3), 128, np.uint8),
            'thermal': np.full((120, 160), 30000, np.uint16)}
    imgs.update(images)
    imgs = {k: v for k, v in imgs.items() if v is not None}
    return {'images': imgs, 'state': np.linspace(-0.5, 0.5, state_dim).astype(np.float32),
            'prompt': prompt}


@pytest.fixture(scope='module')
def policy():
    return Policy.from_preset('tiny', seed=0, num_steps=4)  # fewer Euler steps: faster tests


@pytest.fixture(scope='module')
def noise():
    return np.random.default_rng(0).standard_normal((H, A)).astype(np.float32)


def test_infer_output_contract(policy, noise):
    out = policy.infer(obs(), noise=noise)
    assert out['actions'].shape == (H, 14) and out['actions'].dtype == np.float32
    assert set(out['routing']) == {'l515', 'thermal'}
    assert sum(out['routing'].values()) == pytest.approx(1.0, abs=1e-6)
    assert {'vision', 'prefix', 'denoise', 'denoise_per_step', 'total'} <= set(out['timing'])
    again = policy.infer(obs(), noise=noise)
    assert np.array_equal(out['actions'], again['actions'])
    fewer = policy.infer(obs(), noise=noise, num_steps=2)
    assert fewer['actions'].shape == (H, 14)
    assert out['timing']['denoise_per_step'] == pytest.approx(out['timing']['denoise'] / 4)


def test_fake_obs_is_valid(policy):
    out = policy.infer(policy.fake_obs(seed=1))
    assert out['actions'].shape == (H, 14)


def test_description_attributes(policy):
    p = policy
    assert p.base_camera == 'wrist' and p.expert_cameras == ('l515', 'thermal')
    assert p.camera_names == ('wrist', 'l515', 'thermal') and p.thermal_cameras == ('thermal',)
    assert (p.robot_state_dim, p.robot_action_dim, p.action_horizon) == (14, 14, 50)
    assert p.joint_names is None and p.control_period_s == 0.02
    assert str(p.device) == 'cpu' and p.model_config.use_camera_moe


def test_overrides_and_norm_stats_reach_the_robot_units():
    stats = {'state': {'q01': [0.0] * 7, 'q99': [2.0] * 7},
             'actions': {'q01': [10.0] * 7, 'q99': [20.0] * 7}}
    p = Policy.from_preset('tiny', seed=0, robot_state_dim=7, robot_action_dim=7,
                           joint_names=[f'joint{i}' for i in range(7)], norm_stats=stats)
    out = p.infer(obs(state_dim=7))
    assert out['actions'].shape == (H, 7) and p.joint_names[0] == 'joint0'
    # Normalised 0 is the middle of [q01, q99] in robot units; padded dims are dropped.
    mid = p.transform.unnormalize_actions(np.zeros((H, A), np.float32))
    assert mid.shape == (H, 7) and np.allclose(mid, 15.0, atol=1e-4)
    s = p.transform.sample(obs(state_dim=7)['images'], np.full(7, 2.0), 'x')
    assert s['state'][:7].tolist() == pytest.approx([1.0] * 7, abs=1e-5)


def test_reset_replays_the_noise_sequence(policy):
    policy.reset()
    a = policy.infer(obs())['actions']
    b = policy.infer(obs())['actions']
    policy.reset()
    assert np.array_equal(policy.infer(obs())['actions'], a)
    assert not np.array_equal(a, b)


def test_noise_scale_is_the_sampling_temperature(tmp_path):
    policy = Policy.from_preset('tiny', seed=0, num_steps=4)
    zero = np.zeros((H, A), np.float32)
    policy.set_noise_scale(0.0)
    a = policy.infer(obs())['actions']
    b = policy.infer(obs())['actions']  # the generator moved on; scale 0 ignores it
    assert np.array_equal(a, b)
    assert np.array_equal(a, policy.infer(obs(), noise=zero)['actions'])
    policy.save(tmp_path / 'ckpt')
    assert Policy.load(tmp_path / 'ckpt').model_config.noise_scale == 0.0
    policy.set_noise_scale(0.5)
    c = policy.infer(obs())['actions']
    assert not np.array_equal(a, c)
    with pytest.raises(ValueError, match=r'ModelConfig.noise_scale=-1.*>= 0'):
        policy.set_noise_scale(-1)
    assert policy.model_config.noise_scale == 0.5


def test_save_load_reproduces_actions_exactly(policy, noise, tmp_path):
    policy.save(tmp_path / 'ckpt')
    files = sorted(os.listdir(tmp_path / 'ckpt'))
    assert files == ['config.json', 'model.safetensors', 'norm_stats.json',
                     'tokenizer_spec.json']
    modes = {f: (tmp_path / 'ckpt' / f).stat().st_mode & 0o777 for f in files}
    assert len(set(modes.values())) == 1, modes  # the weights as readable as the rest
    loaded = Policy.load(tmp_path / 'ckpt')
    assert loaded.config == policy.config
    a = policy.infer(obs(), noise=noise)
    b = loaded.infer(obs(), noise=noise)
    assert np.array_equal(a['actions'], b['actions']) and a['routing'] == b['routing']


def test_config_json_has_a_format_and_a_model_and_a_data_section(policy, tmp_path):
    meta = json.loads((policy.save(tmp_path / 'ckpt') / 'config.json').read_text())
    assert meta['format'] == 'pi05_moe/2' and set(meta) == {'format', 'model', 'data'}
    assert meta['model'] == policy.model_config.to_dict()
    assert meta['data'] == policy.data_config.to_dict()
    assert 'camera_routing_loss_weight' not in {**meta['model'], **meta['data']}


def test_an_old_flat_checkpoint_loads_and_infers_the_same(policy, noise, tmp_path):
    """pi05_moe/1 wrote every field flat, the training loss included; load migrates it."""
    d = policy.save(tmp_path / 'ckpt')
    flat = {**policy.model_config.to_dict(), **policy.data_config.to_dict()}
    del flat['num_experts']
    flat.update(camera_routing_loss_weight=0.1, camera_routing_loss_warmup_steps=0,
                camera_routing_loss_ramp_steps=0, camera_routing_focal_alpha=0.25,
                camera_routing_focal_gamma=2.0, time_beta_alpha=1.5, time_beta_beta=1.0)
    (d / 'config.json').write_text(json.dumps({'format': 'pi05_moe/1', 'config': flat}))
    old = Policy.load(d)
    assert old.config == policy.config
    assert np.array_equal(old.infer(obs(), noise=noise)['actions'],
                          policy.infer(obs(), noise=noise)['actions'])
    (d / 'config.json').write_text(json.dumps({'format': 'pi05_moe/0', 'config': flat}))
    with pytest.raises(ValueError, match="format 'pi05_moe/0', expected 'pi05_moe/2'"):
        Policy.load(d)


def test_the_shipped_old_format_checkpoint_migrates_on_read(tmp_path):
    from pi05_moe_policy.checkpoints import shipped_checkpoint

    src = shipped_checkpoint()
    text = (src / 'config.json').read_text()
    assert json.loads(text)['format'] == 'pi05_moe/1'  # shipped before the split
    p = Policy.load(src)
    assert (src / 'config.json').read_text() == text  # read, never rewritten
    assert p.model_config.preset == 'small' and p.model_config.num_experts == 2
    assert p.data_config.expert_cameras == ('l515', 'thermal')
    assert p.data_config.max_token_len == 64 and p.robot_action_dim == 7
    q = Policy.load(p.save(tmp_path / 'new'))  # the new layout round-trips
    assert q.config == p.config
    o = p.fake_obs(seed=2)
    zero = np.zeros((p.action_horizon, p.model_config.action_dim), np.float32)
    assert np.array_equal(p.infer(o, noise=zero)['actions'], q.infer(o, noise=zero)['actions'])


def test_from_preset_routes_flat_overrides_and_names_unknown_ones():
    p = Policy.from_preset('tiny', use_camera_moe=False, thermal_colormap='ironbow',
                           num_steps=2)
    assert not p.model_config.use_camera_moe and p.data_config.thermal_colormap == 'ironbow'
    with pytest.raises(ValueError, match=r"unknown config fields \['use_moe'\]"):
        Policy.from_preset('tiny', use_moe=False)


def test_half_precision_weights_halve_the_file_and_load_back_as_fp32(policy, noise, tmp_path):
    policy.save(tmp_path / 'fp32')
    policy.save(tmp_path / 'fp16', weights_dtype='float16')
    size = {k: (tmp_path / k / 'model.safetensors').stat().st_size for k in ('fp32', 'fp16')}
    assert size['fp16'] < 0.55 * size['fp32']
    loaded = Policy.load(tmp_path / 'fp16')
    assert all(p.dtype == policy.dtype for p in loaded.model.parameters())
    a = policy.infer(obs(), noise=noise)['actions']
    b = loaded.infer(obs(), noise=noise)['actions']
    assert not np.array_equal(a, b)  # the weights were really rounded ...
    assert np.abs(a - b).max() < 1e-2 * max(1.0, np.abs(a).max())  # ... and only rounded


def test_missing_expert_camera_is_allowed(policy, noise):
    out = policy.infer(obs(thermal=None), noise=noise)
    assert out['actions'].shape == (H, 14) and np.isfinite(out['actions']).all()
    assert sum(out['routing'].values()) == pytest.approx(1.0, abs=1e-6)


def test_concat_baseline_policy_has_no_routing():
    p = Policy.from_preset('tiny', use_camera_moe=False)
    out = p.infer(obs())
    assert out['routing'] == {} and out['actions'].shape == (H, 14)


def test_gr00t_roles_policy():
    p = Policy.from_preset('tiny', base_camera='l515',
                           expert_cameras=('left_wrist', 'right_wrist'), thermal_cameras=())
    img = np.zeros((64, 64, 3), np.uint8)
    out = p.infer({'images': {'l515': img, 'left_wrist': img, 'right_wrist': img},
                   'state': np.zeros(14), 'prompt': 'hand over the cube'})
    assert set(out['routing']) == {'left_wrist', 'right_wrist'}


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize('images, exc, words', [
    ({'wrist': np.zeros((64, 64, 3), np.float32)}, TypeError, ["'wrist'", 'float32', 'uint8']),
    ({'wrist': np.zeros((64, 64), np.uint8)}, ValueError, ["'wrist'", 'ndim 2', 'HxWx3']),
    ({'wrist': np.zeros((64, 64, 4), np.uint8)}, ValueError, ["'wrist'", '4 channels']),
    ({'l515': np.zeros((64, 64, 3), np.uint16)}, TypeError, ["'l515'", 'uint16']),
    ({'thermal': np.zeros((64, 64, 2), np.uint16)}, ValueError, ["'thermal'", 'HxW uint16']),
    ({'thermal': np.zeros((64, 64), np.int32)}, TypeError, ["'thermal'", 'centi-Kelvin']),
    ({'wrist': [[0]]}, TypeError, ["'wrist'", 'numpy array']),
    ({'front': np.zeros((64, 64, 3), np.uint8)}, ValueError,
     ["'front'", "known cameras: ['wrist', 'l515', 'thermal']"]),
    ({'wrist': None}, ValueError, ["base camera 'wrist' is missing"]),
])
def test_bad_images_raise_named_errors(policy, images, exc, words):
    with pytest.raises(exc) as e:
        policy.infer(obs(**images))
    for w in words:
        assert w in str(e.value)


@pytest.mark.parametrize('state, exc, words', [
    (np.array([np.nan] + [0.0] * 13), ValueError, ['state', 'NaN/inf', '[0]']),
    (np.array([0.0] * 13 + [np.inf]), ValueError, ['state', 'NaN/inf', '[13]']),
    (np.zeros(7), ValueError, ['state', '(14,)', '(7,)']),
    (np.zeros((2, 14)), ValueError, ['state', '(14,)']),
    ('abc', TypeError, ['state']),
])
def test_bad_state_raises_named_errors(policy, state, exc, words):
    o = obs()
    o['state'] = state
    with pytest.raises(exc) as e:
        policy.infer(o)
    for w in words:
        assert w in str(e.value)


def test_empty_prompt_and_missing_keys(policy):
    with pytest.raises(ValueError, match='prompt.*empty.*require_prompt'):
        policy.infer(obs(prompt='   '))
    with pytest.raises(TypeError, match='prompt'):
        policy.infer(obs(prompt=3))
    with pytest.raises(ValueError, match='missing key "state"'):
        policy.infer({'images': obs()['images'], 'prompt': 'x'})
    lax = Policy.from_preset('tiny', require_prompt=False)
    assert lax.infer(obs(prompt=''))['actions'].shape == (H, 14)


def test_bad_noise_shape(policy):
    with pytest.raises(ValueError, match='noise'):
        policy.infer(obs(), noise=np.zeros((10, 32)))


def test_checkpoint_mismatch_lists_keys_and_shapes(policy, tmp_path):
    d = policy.save(tmp_path / 'ckpt')
    meta = json.loads((d / 'config.json').read_text())
    meta['model']['vlm_mlp_dim'] = 384
    (d / 'config.json').write_text(json.dumps(meta))
    with pytest.raises(ValueError) as e:
        Policy.load(d)
    msg = str(e.value)
    assert 'shape mismatch' in msg and 'mlp.gate_proj.weight' in msg
    assert '(512, 256)' in msg and '(384, 256)' in msg
    meta['model']['vlm_mlp_dim'] = 512
    meta['model']['use_camera_moe'] = False
    (d / 'config.json').write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r'unexpected \(\d+\):\n    camera_moe\.'):
        Policy.load(d)
    meta['data']['bogus'] = 1
    (d / 'config.json').write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="'bogus'"):
        Policy.load(d)
    with pytest.raises(ValueError, match='not a directory'):
        Policy.load(tmp_path / 'nowhere')


def test_training_shares_the_transform(policy):
    t = policy.transform
    o = obs()
    s = t.sample(o['images'], o['state'], o['prompt'], actions=np.zeros((H, 14)),
                 camera_active=[0, 1])
    batch = t.collate([s, s])
    policy.model.train()
    try:
        loss, info = policy.compute_loss(batch)
    finally:
        policy.model.eval()
    assert loss.ndim == 0 and info['routing_weights'].shape == (2, 2)
    assert 'routing_accuracy' in info and info['routing_loss'] > 0


def test_import_is_lazy_about_torch():
    root = Path(__file__).resolve().parents[2] / 'pi05_moe_policy'
    code = ('import sys, pi05_moe_policy, pi05_moe_policy.core; '
            'assert "torch" not in sys.modules, "torch imported"')
    env = dict(os.environ, PYTHONPATH=f'{root}{os.pathsep}' + os.environ.get('PYTHONPATH', ''))
    subprocess.run([sys.executable, '-c', code], check=True, env=env)


def test_hf_tokenizer_ships_inside_the_checkpoint(tmp_path, noise):
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ['<pad>', '<bos>', '<unk>', 'Task', ':', 'lift', 'the', 'hot', 'cube', ',', 'State',
             ';', 'Action'] + [str(i) for i in range(256)]
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token='<unk>'))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    src = tmp_path / 'paligemma_like'
    src.mkdir()
    tk.save(str(src / 'tokenizer.json'))
    p = Policy.from_preset('tiny', tokenizer_type='hf', tokenizer_path=str(src))
    a = p.infer(obs(), noise=noise)
    d = p.save(tmp_path / 'ckpt')
    (src / 'tokenizer.json').unlink()  # the checkpoint must not depend on the source path
    q = Policy.load(d)
    assert np.array_equal(q.infer(obs(), noise=noise)['actions'], a['actions'])
    o = obs()
    s = q.transform.sample(o['images'], o['state'], o['prompt'])
    assert s['tokens'][0] == 1 and 2 not in s['tokens'][s['token_mask']].tolist()  # no <unk>


def test_thread_setting():
    import torch

    from pi05_moe_policy.policy import set_torch_threads

    before = torch.get_num_threads()
    try:
        assert set_torch_threads(None) == before
        assert set_torch_threads(1) == 1 == torch.get_num_threads()
        assert set_torch_threads('auto') >= 1
        with pytest.raises(ValueError, match='num_threads'):
            set_torch_threads(0)
    finally:
        torch.set_num_threads(before)
