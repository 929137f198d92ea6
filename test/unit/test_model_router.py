"""Camera router, gating/fusion and the focal routing loss."""

import math

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from pi05_moe_policy.model import (
    CameraMoE,
    CameraRouter,
    focal_loss,
    labels_from_active,
    make_config,
)


def inputs(cfg, b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    d = cfg.vlm_width
    mask = torch.ones(b, 6, dtype=torch.bool)
    mask[0, 3:] = False
    return dict(base_tokens=torch.randn(b, 9, d, generator=g),
                prompt=torch.randn(b, 6, d, generator=g), prompt_mask=mask,
                state=torch.randn(b, cfg.max_state_dim, generator=g))


def entropy(p):
    return -(p * p.clamp_min(1e-12).log()).sum(-1)


def test_focal_loss_matches_the_formula_on_hand_made_numbers():
    probs = torch.tensor([[0.7, 0.3], [0.2, 0.8], [0.4, 0.6]])
    target = torch.tensor([0, 0, 1])
    p_t = [0.7, 0.2, 0.6]
    want = sum(-0.25 * (1 - p) ** 2 * math.log(p) for p in p_t) / 3
    assert focal_loss(probs, target, alpha=0.25, gamma=2.0).item() == pytest.approx(want, 1e-6)
    # gamma = 0 is alpha * cross-entropy
    ce = F.nll_loss(probs.log(), target)
    assert focal_loss(probs, target, alpha=0.25, gamma=0.0).item() == pytest.approx(
        0.25 * ce.item(), 1e-6)


def test_focal_loss_mask_and_labels_from_active_flags():
    active = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0],
                           [float('nan'), float('nan')]])
    target, labelled = labels_from_active(active)
    # First active expert; none active -> 0 as in seed 000; NaN rows are unlabelled.
    assert target.tolist()[:4] == [0, 1, 0, 0]
    assert labelled.tolist() == [True, True, True, True, False]
    probs = torch.full((5, 2), 0.5)
    masked = focal_loss(probs, target, mask=labelled)
    assert masked.item() == pytest.approx(focal_loss(probs[:4], target[:4]).item())


def test_routing_weights_sum_to_one_for_every_input_type():
    for kind in ('prompt', 'state', 'prompt_state'):
        for pooling in (True, False):
            cfg = make_config('tiny', camera_router_input_type=kind,
                              camera_router_use_attention_pooling=pooling)
            router = CameraRouter(cfg).eval()
            out = router(**inputs(cfg))
            assert out.weights.shape == (4, 2)
            assert torch.allclose(out.weights.sum(-1), torch.ones(4), atol=1e-6)
            assert (out.weights >= 0).all()


def test_router_mlp_is_512_256_n():
    cfg = make_config('tiny', num_experts=3)
    router = CameraRouter(cfg)
    d = cfg.vlm_width
    assert [(m.in_features, m.out_features) for m in router.mlp] == [
        (2 * d + cfg.max_state_dim, 512), (512, 256), (256, 3)]


def test_lower_temperature_gives_lower_entropy():
    cfg_hot = make_config('tiny', camera_router_temperature=2.0)
    cfg_cold = make_config('tiny', camera_router_temperature=0.25)
    torch.manual_seed(0)
    hot = CameraRouter(cfg_hot).eval()
    cold = CameraRouter(cfg_cold).eval()
    cold.load_state_dict(hot.state_dict())
    x = inputs(cfg_hot)
    h_hot = entropy(hot(**x).weights)
    h_cold = entropy(cold(**x).weights)
    assert (h_cold < h_hot).all()


def test_gumbel_only_in_train_mode():
    cfg = make_config('tiny', camera_router_use_gumbel=True)
    torch.manual_seed(0)
    router = CameraRouter(cfg)
    x = inputs(cfg)
    router.eval()
    a, b = router(**x), router(**x)
    assert torch.equal(a.weights, a.probs) and torch.equal(a.weights, b.weights)
    router.train()
    c, d = router(**x), router(**x)
    assert not torch.allclose(c.weights, c.probs) and not torch.allclose(c.weights, d.weights)
    assert torch.allclose(c.weights.sum(-1), torch.ones(4), atol=1e-5)
    # Without the option, train mode is deterministic too.
    plain = CameraRouter(make_config('tiny')).train()
    e = plain(**x)
    assert torch.equal(e.weights, e.probs)


def test_attention_pooling_ignores_padding_and_mean_pooling_is_the_masked_mean():
    cfg = make_config('tiny', camera_router_use_attention_pooling=False)
    router = CameraRouter(cfg)
    x = inputs(cfg)
    pooled = router.pool_prompt(x['prompt'], x['prompt_mask'])
    assert torch.allclose(pooled[0], x['prompt'][0, :3].mean(0), atol=1e-6)
    att = CameraRouter(make_config('tiny'))
    changed = x['prompt'].clone()
    changed[0, 3:] += 50.0  # padding content must not matter
    assert torch.allclose(att.pool_prompt(changed, x['prompt_mask'])[0],
                          att.pool_prompt(x['prompt'], x['prompt_mask'])[0], atol=1e-5)


def test_gating_is_gamma_times_w_times_f_and_fusion_is_a_linear_of_the_concat():
    cfg = make_config('tiny')
    torch.manual_seed(0)
    moe = CameraMoE(cfg).eval()
    with torch.no_grad():
        moe.expert_scales.uniform_(0.5, 1.5)
    x = inputs(cfg, b=2)
    experts = torch.randn(2, 2, 9, cfg.vlm_width)
    mask = torch.tensor([[True, True], [True, False]])
    fused, route = moe(x['base_tokens'], experts, mask, x['prompt'], x['prompt_mask'],
                       x['state'])
    w = route.weights
    f = experts * mask[:, :, None, None]
    gated = moe.expert_scales[None, :, None, :] * (w[:, :, None, None] * f)
    cat = torch.cat([x['base_tokens'], gated[:, 0], gated[:, 1]], dim=-1)
    assert torch.allclose(fused, moe.projection(cat), atol=1e-5)
    assert fused.shape == x['base_tokens'].shape


def test_learnable_scales_can_be_switched_off():
    moe = CameraMoE(make_config('tiny', camera_router_use_learnable_scales=False))
    assert not hasattr(moe, 'expert_scales')
    assert not any('scale' in n for n, _ in moe.named_parameters())
