"""The PI0.5 + camera-MoE network on the tiny preset (CPU, fp32)."""

import math

import pytest
import torch

from pi05_moe_policy.model import Pi05Model, make_att_2d_masks, make_config
from pi05_moe_policy.model.gemma import RMSNorm

B = 2
L = 48  # prompt tokens (the tiny preset's DataConfig.max_token_len)


def make_batch(cfg, b=B, seed=0, missing_expert=True, image_size=None):
    g = torch.Generator().manual_seed(seed)
    s = image_size or cfg.image_size
    c = 1 + cfg.num_experts  # the base camera, then the experts
    masks = torch.ones(b, c, dtype=torch.bool)
    if missing_expert and c > 1 and b > 1:
        masks[1, -1] = False  # sample 1 lacks its last expert camera
    tokens = torch.randint(3, cfg.vocab_size, (b, L), generator=g)
    token_mask = torch.ones(b, L, dtype=torch.bool)
    token_mask[0, 20:] = False  # a shorter prompt: padding in the prefix
    images = torch.rand(b, c, 3, s, s, generator=g) * 2 - 1
    images = images * masks[:, :, None, None, None]
    batch = {
        'images': images, 'image_masks': masks, 'tokens': tokens, 'token_mask': token_mask,
        'state': torch.randn(b, cfg.max_state_dim, generator=g),
        'actions': torch.randn(b, cfg.action_horizon, cfg.action_dim, generator=g),
    }
    if cfg.use_camera_moe:
        active = torch.zeros(b, cfg.num_experts)
        active[torch.arange(b), torch.arange(b) % cfg.num_experts] = 1.0
        batch['camera_active'] = active
    return batch


def perturb_adarms(model, std=0.05, seed=1):
    """Give the zero-initialised adaRMS layers random weights, so the expert (as after some
    training) depends on the prefix and on time."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, RMSNorm) and m.cond_dim is not None:
                m.dense.weight.copy_(torch.randn(m.dense.weight.shape, generator=g) * std)
                m.dense.bias.copy_(torch.randn(m.dense.bias.shape, generator=g) * std)


def build(seed=0, **overrides):
    torch.manual_seed(seed)
    return Pi05Model(make_config('tiny', **overrides))


@pytest.fixture(scope='module')
def model():
    return build().eval()


# ---------------------------------------------------------------------------- masks
def test_prefix_lm_mask_cumsum_rule():
    pad = torch.tensor([[True, True, False, True, True, True]])
    att = torch.tensor([[0, 0, 0, 1, 0, 0]])  # 3 prefix tokens (one pad), one 3-token block
    m = make_att_2d_masks(pad, att)[0]
    assert m[0, :3].tolist() == [True, True, False]  # prefix is bidirectional, skips padding
    assert not m[0, 3:].any() and not m[1, 3:].any()  # the prefix never sees the actions
    assert m[3:, [0, 1, 3, 4, 5]].all()  # actions see the prefix and each other
    assert not m[3:, 2].any()  # ... but not padding
    assert m[2, 2]  # a padding query still sees itself: no empty softmax rows


# ---------------------------------------------------------------------------- KV cache
@pytest.mark.parametrize('overrides', [
    {}, {'use_camera_moe': False, 'image_size': 112}, {'pi05': False, 'image_size': 112}],
    ids=['pi05_moe', 'pi05_concat', 'pi0'])
def test_kv_cache_sampling_equals_full_recompute(overrides):
    m = build(**overrides).eval()
    perturb_adarms(m)  # (PI0 has no adaRMS: its expert sees the prefix from the start)
    batch = make_batch(m.config)
    noise = torch.randn(B, 50, 32, generator=torch.Generator().manual_seed(3))
    cached, info = m.sample_actions(batch, noise=noise, num_steps=10, use_kv_cache=True)
    full, _ = m.sample_actions(batch, noise=noise, num_steps=10, use_kv_cache=False)
    assert cached.shape == (B, 50, 32)
    assert (cached - full).abs().max().item() < 1e-4
    # And the prefix really matters (the test would be vacuous otherwise).
    other = dict(batch, tokens=torch.roll(batch['tokens'], 1, dims=1))
    moved, _ = m.sample_actions(other, noise=noise, num_steps=10)
    assert (moved - cached).abs().max().item() > 1e-4
    assert set(info['timing']) >= {'vision', 'prefix', 'denoise', 'denoise_per_step'}


def test_static_kv_cache_equals_the_concatenating_cache_and_is_written_in_place():
    """The StaticKV path (buffers with room for the suffix, written in place each step, additive
    mask made once) gives the concatenating cache's chunk within 1e-5 (fp32), in eager and
    under RTC guidance (which differentiates the step and so takes the concatenating branch)."""
    from pi05_moe_policy.model.gemma import StaticKV, additive_mask, static_cache

    m = build().eval()
    perturb_adarms(m)
    batch = make_batch(m.config)
    noise = torch.randn(B, 50, 32, generator=torch.Generator().manual_seed(5))
    static, _ = m.sample_actions(batch, noise=noise, num_steps=4, static_kv=True)
    dynamic, _ = m.sample_actions(batch, noise=noise, num_steps=4, static_kv=False)
    assert (static - dynamic).abs().max().item() < 1e-5
    prefix_actions = torch.rand(B, 12, 32, generator=torch.Generator().manual_seed(6))
    guided = [m.sample_actions(batch, noise=noise, num_steps=3, prefix_actions=prefix_actions,
                               prefix_len=4, rtc_mode='guidance', static_kv=kv)[0]
              for kv in (True, False)]
    assert (guided[0] - guided[1]).abs().max().item() < 1e-5
    # the buffers: prefix rows copied once, the tail overwritten by extend(), same storage
    k = torch.randn(B, 1, 6, 8)
    layer = static_cache([(k, k + 1)], suffix_len=3)[0]
    assert isinstance(layer, StaticKV) and layer.k.shape == (B, 1, 9, 8) and layer.p_len == 6
    tail = torch.randn(B, 1, 3, 8)
    kk, vv = layer.extend(tail, tail * 2)
    assert kk.data_ptr() == layer.k.data_ptr() and torch.equal(kk[:, :, :6], k)
    assert torch.equal(kk[:, :, 6:], tail) and torch.equal(vv[:, :, 6:], tail * 2)
    mask = additive_mask(torch.tensor([[True, False]]), torch.float32)
    assert mask[0, 0] == 0 and mask[0, 1] == torch.finfo(torch.float32).min


# ---------------------------------------------------------------------------- adaRMS
def test_adarms_gates_zero_and_expert_blocks_identity_at_init(model):
    cfg = model.config
    cond = torch.randn(B, cfg.expert_width)
    for layer in model.gemma.action_expert.layers:
        for norm in (layer.input_layernorm, layer.post_attention_layernorm):
            _, gate = norm(torch.randn(B, 5, cfg.expert_width), cond)
            assert torch.equal(gate, torch.zeros_like(gate))
    prefix = torch.randn(B, 7, cfg.vlm_width)
    suffix = torch.randn(B, 5, cfg.expert_width)
    pad = torch.ones(B, 12, dtype=torch.bool)
    att = torch.tensor([0] * 7 + [1, 0, 0, 0, 0])[None].expand(B, -1)
    pos = torch.arange(12)[None].expand(B, -1)
    out, _ = model.gemma(prefix, suffix, make_att_2d_masks(pad, att), pos, cond)
    # Every expert block is the identity on the residual: only the final norm acts.
    ref, _ = model.gemma.action_expert.norm(suffix, cond)
    assert torch.equal(out, ref)


def test_rmsnorm_formula():
    norm = RMSNorm(8, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(-0.5, 0.5, 8))
    x = torch.randn(3, 4, 8)
    want = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * (1 + norm.weight)
    got, gate = norm(x)
    assert gate is None and torch.allclose(got, want, atol=1e-6)


def test_language_embeddings_scaled_by_sqrt_width_once(model):
    cfg = model.config
    batch = make_batch(cfg)
    cam = model.encode_images(batch['images'], batch['image_masks'])
    prefix = model.embed_prefix(batch, cam)
    lang = prefix.embs[:, -L:]
    raw = model.gemma.language_model.embed_tokens.weight[batch['tokens']]
    assert torch.allclose(lang, raw * math.sqrt(cfg.vlm_width), atol=1e-6)
    # The fused prefix holds one camera's worth of image tokens.
    assert prefix.embs.shape[1] == cfg.num_image_tokens + L


def test_missing_expert_camera_is_zeros_with_mask_off(model):
    batch = make_batch(model.config)
    cam = model.encode_images(batch['images'], batch['image_masks'])
    assert torch.equal(cam[1, -1], torch.zeros_like(cam[1, -1]))
    assert cam[0, -1].abs().sum() > 0


def test_concat_baseline_holds_every_camera():
    m = build(use_camera_moe=False).eval()
    cfg = m.config
    batch = make_batch(cfg)
    prefix = m.embed_prefix(batch, m.encode_images(batch['images'], batch['image_masks']))
    t = cfg.num_image_tokens
    assert prefix.embs.shape[1] == 3 * t + L
    assert not prefix.pad[1, 2 * t:3 * t].any()  # the missing camera's tokens are masked off
    assert prefix.route is None and m.camera_moe is None


# ---------------------------------------------------------------------------- gradients
def test_gradients_reach_every_router_parameter_and_every_gamma():
    m = build().train()
    perturb_adarms(m)  # at exact init the zero gates stop the action loss at the expert
    batch = make_batch(m.config)
    loss, info = m.compute_loss(batch)
    loss.backward()
    assert info['routing_loss'] > 0
    for name, p in m.camera_moe.router.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    gamma = m.camera_moe.expert_scales
    assert gamma.grad is not None and (gamma.grad.abs().sum(dim=1) > 0).all()
    assert torch.equal(gamma.detach(), torch.ones_like(gamma))  # gamma starts at 1


def test_compute_loss_is_flow_matching_mse_over_real_action_dims(model):
    batch = make_batch(model.config)
    d = 14  # real action dims (the robot's); the transforms set action_dim_mask
    batch['action_dim_mask'] = (torch.arange(32) < d)[None].expand(B, 32)
    noise = torch.randn(B, 50, 32)
    t = torch.tensor([0.3, 0.8])
    seen = []
    hook = model.action_out_proj.register_forward_hook(lambda m, i, o: seen.append(o))
    try:
        loss, info = model.compute_loss(batch, noise=noise, time=t)
        del batch['action_dim_mask']  # no mask: every dim counts
        _, every = model.compute_loss(batch, noise=noise, time=t)
    finally:
        hook.remove()
    v = seen[0].float()  # (B, H, 32) predicted velocity
    u = noise - batch['actions']  # target: noise - actions
    want = (v - u)[..., :d].pow(2).mean()  # padded dims do not count
    assert torch.allclose(info['action_loss'], want, atol=1e-6)
    assert torch.allclose(every['action_loss'], (v - u).pow(2).mean(), atol=1e-6)
    assert loss.ndim == 0


def test_the_loss_settings_are_arguments(model):
    """Routing weight and focal alpha/gamma come from the caller (TrainConfig), not the
    model's config; the defaults are the seeds' (0.1, 0.25, 2)."""
    batch = make_batch(model.config)
    noise, t = torch.randn(B, 50, 32), torch.tensor([0.3, 0.8])
    default = model.compute_loss(batch, noise=noise, time=t)[1]
    same = model.compute_loss(batch, noise=noise, time=t, routing_loss_weight=0.1,
                              focal_alpha=0.25, focal_gamma=2.0)[1]
    assert default['loss'] == same['loss'] and default['routing_loss_weight'] == 0.1
    off = model.compute_loss(batch, noise=noise, time=t, routing_loss_weight=0.0)[1]
    assert torch.allclose(off['loss'], off['action_loss'])
    other = model.compute_loss(batch, noise=noise, time=t, focal_alpha=0.5, focal_gamma=0.0)[1]
    assert not torch.allclose(other['routing_loss'], default['routing_loss'])
    times = model.sample_time(20_000, torch.device('cpu'), alpha=1.0, beta=3.0)
    assert 0.001 <= times.min() and times.max() <= 1.0
    assert times.mean().item() == pytest.approx(0.25 * 0.999 + 0.001, abs=0.01)  # Beta mean


# ---------------------------------------------------------------------------- training
def test_overfit_one_batch_drops_flow_loss_10x():
    torch.manual_seed(0)
    m = build(image_size=56).train()  # 16 tokens/camera: same code paths, 16x cheaper vision
    batch = make_batch(m.config, b=4, missing_expert=False)
    noise = torch.randn(4, 50, 32)
    t = torch.rand(4) * 0.9 + 0.05
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.0)
    first = None
    for step in range(300):
        loss, info = m.compute_loss(batch, noise=noise, time=t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = info['action_loss'].item() if first is None else first
        if info['action_loss'].item() < first / 10 and step >= 10:
            break
    assert info['action_loss'].item() < first / 10, (first, info['action_loss'].item(), step)


def test_pi0_mode_trains_and_samples():
    m = build(pi05=False).train()
    assert not hasattr(m, 'time_mlp_in') and hasattr(m, 'state_proj')
    assert all(n.cond_dim is None for n in m.modules() if isinstance(n, RMSNorm))
    batch = make_batch(m.config)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    loss, _ = m.compute_loss(batch)
    loss.backward()
    opt.step()
    assert m.state_proj.weight.grad.abs().sum() > 0
    m.eval()
    actions, _ = m.sample_actions(batch, num_steps=3)
    assert actions.shape == (B, 50, 32) and torch.isfinite(actions).all()


def test_time_embedding_periods():
    from pi05_moe_policy.model.time_embedding import sincos_time_embedding

    t = torch.tensor([0.0, 0.25, 1.0])
    emb = sincos_time_embedding(t, 8, 4e-3, 4.0)
    period = 4e-3 * (4.0 / 4e-3) ** torch.linspace(0, 1, 4, dtype=torch.float64)
    ang = t.double()[:, None] * 2 * math.pi / period
    assert torch.allclose(emb.double(), torch.cat([ang.sin(), ang.cos()], -1), atol=1e-6)
    assert emb.dtype == torch.float32


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    m = build(image_size=56).train()
    perturb_adarms(m)
    batch = make_batch(m.config)
    noise, t = torch.randn(B, 50, 32), torch.tensor([0.3, 0.7])
    grads = []
    for enabled in (False, True):
        m.set_gradient_checkpointing(enabled)
        m.zero_grad()
        loss, _ = m.compute_loss(batch, noise=noise, time=t)
        loss.backward()
        grads.append((loss.item(), m.gemma.language_model.layers[0].mlp.up_proj.weight.grad
                      .clone(), m.vision.vision_tower.embeddings.patch_embedding.weight.grad
                      .clone()))
    m.set_gradient_checkpointing(False)
    assert grads[0][0] == pytest.approx(grads[1][0], abs=1e-6)
    assert torch.allclose(grads[0][1], grads[1][1], atol=1e-6)
    assert torch.allclose(grads[0][2], grads[1][2], atol=1e-6)
