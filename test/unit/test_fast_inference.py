"""Inference speed-ups (#15 item 2): the prompt's padding trimmed, sparse routing, fewer Euler
steps as a setting; each checked against the plain path on the tiny preset (CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_model_core import make_batch, perturb_adarms

from pi05_moe_policy import Policy
from pi05_moe_policy.model import Pi05Model, make_config
from pi05_moe_policy.model.pi05 import trim_prompt_padding
from pi05_moe_policy.nodes.config import PolicyNodeConfig

TOL = 1e-5  # float32 rounding: a shorter softmax sums fewer (zero-weight) terms


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    m = Pi05Model(make_config('tiny')).eval()
    perturb_adarms(m)
    return m


def one_prompt_batch(cfg, real_tokens=5, length=40):
    batch = make_batch(cfg, b=2, missing_expert=False)
    del batch['actions']
    mask = torch.zeros(2, length, dtype=torch.bool)
    mask[0, :real_tokens] = True
    mask[1, :real_tokens - 2] = True
    batch['tokens'] = batch['tokens'][:, :1].expand(2, length).clone()
    batch['tokens'][:, :real_tokens] = torch.arange(3, 3 + real_tokens)
    batch['token_mask'] = mask
    return batch


def test_trim_keeps_the_longest_real_prompt_of_the_batch(model):
    batch = one_prompt_batch(model.config, real_tokens=5, length=40)
    trimmed = trim_prompt_padding(batch)
    assert trimmed['tokens'].shape == (2, 5) and trimmed['token_mask'].shape == (2, 5)
    assert trimmed['token_mask'][1].sum() == 3
    assert trimmed['images'] is batch['images']
    empty = {**batch, 'token_mask': torch.zeros_like(batch['token_mask'])}
    assert trim_prompt_padding(empty)['tokens'].shape == (2, 1)  # shapes stay valid


def test_trimmed_padding_changes_no_velocity(model):
    """The untrimmed prefix (the training path, every padding column) and the trimmed one give
    the same velocity field, so sampling with the trim equals sampling without it."""
    cfg = model.config
    batch = one_prompt_batch(cfg)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, cfg.action_horizon, cfg.action_dim, generator=g)
    t = torch.tensor([0.7, 0.3])
    with torch.no_grad():
        outs = []
        for b in (batch, trim_prompt_padding(batch)):
            prefix = model.embed_prefix(b, model.encode_images(b['images'], b['image_masks']))
            outs.append(model._velocity_shared_attention(prefix, b['state'], x, t))
    assert outs[0].shape == outs[1].shape
    assert (outs[0] - outs[1]).abs().max().item() < TOL


def test_sparse_routing_off_is_the_plain_path_and_on_skips_low_weight_cameras(model):
    cfg = model.config
    batch = one_prompt_batch(cfg)
    noise = torch.randn(2, cfg.action_horizon, cfg.action_dim,
                        generator=torch.Generator().manual_seed(2))
    plain, info = model.sample_actions(batch, noise=noise)
    assert info['cameras_encoded'] == 1 + cfg.num_experts
    # A threshold below every weight encodes every camera: the same chunk.
    low, info_low = model.sample_actions(batch, noise=noise, sparse_threshold=1e-6)
    assert info_low['cameras_encoded'] == 1 + cfg.num_experts
    assert (low - plain).abs().max().item() < TOL
    # Above every weight: only the base camera is encoded, and the chunk is the one the model
    # gives with the experts missing (the router's weights unchanged: it reads base + prompt).
    sparse, info_sparse = model.sample_actions(batch, noise=noise, sparse_threshold=1.0)
    assert info_sparse['cameras_encoded'] == 1
    assert torch.allclose(info_sparse['routing_weights'], info['routing_weights'], atol=TOL)
    missing = {**batch, 'image_masks': batch['image_masks'].clone()}
    missing['image_masks'][:, 1:] = False
    ref, _ = model.sample_actions(missing, noise=noise)
    assert (sparse - ref).abs().max().item() < TOL
    assert (sparse - plain).abs().max().item() > 1e-4  # the experts did matter
    # In between: the camera the router weighs highest stays, the other one is skipped.
    w = info['routing_weights']  # (B, N)
    mid = float(w.max(dim=0).values.min() + w.max(dim=0).values.max()) / 2
    if w.max(dim=0).values.min() < mid < w.max(dim=0).values.max():
        _, info_mid = model.sample_actions(batch, noise=noise, sparse_threshold=mid)
        assert info_mid['cameras_encoded'] == 2
    with pytest.raises(ValueError, match='sparse_threshold'):
        model.sample_actions(batch, noise=noise, sparse_threshold=1.5)


def test_policy_set_inference_sets_steps_and_threshold_and_quotes_bad_values():
    policy = Policy.from_preset('tiny', seed=0, robot_state_dim=7, robot_action_dim=7)
    obs = policy.fake_obs(seed=0)
    noise = np.random.default_rng(0).standard_normal(
        (policy.action_horizon, policy.model_config.action_dim)).astype(np.float32)
    ten = policy.infer(obs, noise=noise)
    policy.set_inference(num_steps=3)
    three = policy.infer(obs, noise=noise)
    assert not np.allclose(three['actions'], ten['actions'])
    np.testing.assert_allclose(three['actions'], policy.infer(obs, noise=noise, num_steps=3)[
        'actions'], atol=1e-6)
    policy.set_inference(num_steps=0, sparse_threshold=0.99)
    out = policy.infer(obs, noise=noise)
    assert out['cameras_encoded'] == 1
    policy.set_inference()
    np.testing.assert_allclose(policy.infer(obs, noise=noise)['actions'], ten['actions'],
                               atol=1e-6)
    for bad in (dict(num_steps=-1), dict(num_steps=2.5), dict(sparse_threshold=1.0),
                dict(sparse_threshold=-0.1)):
        with pytest.raises(ValueError, match=repr(list(bad.values())[0]).replace('.', r'\.')):
            policy.set_inference(**bad)
    concat = Policy.from_preset('tiny', seed=0, use_camera_moe=False)
    with pytest.raises(ValueError, match='camera-MoE'):
        concat.set_inference(sparse_threshold=0.3)


def test_node_config_validates_the_inference_settings():
    cfg = PolicyNodeConfig(checkpoint='preset:tiny', num_steps=5, sparse_routing_threshold=0.3)
    assert (cfg.num_steps, cfg.sparse_routing_threshold) == (5, 0.3)
    with pytest.raises(ValueError, match='num_steps.*-1'):
        PolicyNodeConfig(checkpoint='preset:tiny', num_steps=-1)
    with pytest.raises(ValueError, match='sparse_routing_threshold.*1.5'):
        PolicyNodeConfig(checkpoint='preset:tiny', sparse_routing_threshold=1.5)


def test_the_compiled_denoising_step_gives_the_eager_chunk(model):
    """torch_compile (Inductor, dynamic shapes): the same chunk as eager within 1e-4 (fp32
    kernels fused in another order), and a prompt of another length reuses it."""
    cfg = model.config
    compiled = Pi05Model(cfg).eval()
    compiled.load_state_dict(model.state_dict())
    compiled.compile_for_inference()
    assert '_velocity_cached' in compiled.__dict__
    noise = torch.randn(2, cfg.action_horizon, cfg.action_dim,
                        generator=torch.Generator().manual_seed(4))
    for real in (5, 9):  # two prompt lengths: two prefix lengths
        batch = one_prompt_batch(cfg, real_tokens=real)
        eager, _ = model.sample_actions(batch, noise=noise, num_steps=3)
        for static_kv in (False, True):  # CPU's default, and the static cache (CUDA's)
            fast, _ = compiled.sample_actions(batch, noise=noise, num_steps=3,
                                              static_kv=static_kv)
            assert (fast - eager).abs().max().item() < 1e-4


def test_torch_compile_runs_a_network_without_a_compiled_path_eager_with_a_warning(caplog):
    """A graph's torch_compile (sim.yaml) meets an RT-1 checkpoint: eager, said once."""
    rt1 = Policy.from_preset('rt1', seed=0)
    with caplog.at_level('WARNING'):
        rt1.set_inference(torch_compile=True)
    assert 'RT1Model has no compiled inference path' in caplog.text
    assert '_velocity_cached' not in vars(rt1.model)
