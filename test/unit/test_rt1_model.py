"""The RT-1 baseline's network (#20), part by part, on real modules (no mocks): FiLM starts at
the identity, the TokenLearner keeps 8 tokens, the transformer is causal between frames, the
bins round-trip within half a bin, the whole model overfits one batch, and RT-1's published
sizes build on the meta device.
"""

from __future__ import annotations

import pytest
import torch

from pi05_moe_policy.model.rt1 import ActionBins, RT1Config, RT1Model, make_rt1_config
from pi05_moe_policy.model.rt1.efficientnet_film import FiLM, FiLMEfficientNet
from pi05_moe_policy.model.rt1.token_learner import TokenLearner
from pi05_moe_policy.model.rt1.transformer import CausalTransformer, frame_causal_mask

# The rt1 preset made smaller still where a test only needs the code paths: 64 px, a 2 x 2 grid.
SMALL = dict(image_size=64, feature_grid=2, tokens_per_image=4, dropout=0.0)


def make_batch(cfg: RT1Config, b: int = 2, cameras: int = 3, seed: int = 0,
               with_history: bool = True) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    s = cfg.image_size
    batch = {
        'images': torch.rand(b, cameras, 3, s, s, generator=g) * 2 - 1,
        'image_masks': torch.ones(b, cameras, dtype=torch.bool),
        'tokens': torch.randint(1, 200, (b, 10), generator=g),
        'token_mask': torch.ones(b, 10, dtype=torch.bool),
        'state': torch.rand(b, cfg.max_state_dim, generator=g) * 2 - 1,
        'actions': torch.rand(b, cfg.action_horizon, cfg.action_dim, generator=g) * 2 - 1,
        'action_dim_mask': torch.arange(cfg.action_dim)[None].expand(b, -1) < 7,
        'camera_active': torch.tensor([[1.0, 0.0], [0.0, 1.0]] * b)[:b],
    }
    if with_history and cfg.history > 1:
        batch['image_history'] = torch.rand(b, cfg.history - 1, cameras, 3, s, s, generator=g) \
            * 2 - 1
    return batch


@pytest.mark.parametrize('moe', [False, True])
def test_shapes_of_loss_and_actions(moe):
    cfg = make_rt1_config('rt1', use_camera_moe=moe, **SMALL)
    torch.manual_seed(0)
    model = RT1Model(cfg)
    batch = make_batch(cfg, b=3)
    loss, info = model.compute_loss(batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    # a fresh model is close to uniform over the 256 bins: the cross-entropy is near log(256)
    assert abs(float(info['action_loss']) - torch.log(torch.tensor(256.0)).item()) < 0.5
    model.eval()
    actions, out = model.sample_actions(batch)
    assert actions.shape == (3, cfg.action_horizon, cfg.action_dim) == (3, 10, 32)
    assert actions.dtype == torch.float32 and (actions.abs() <= 1).all()
    frames = model.encode_cameras(batch['images'][:, None], batch['image_masks'][:, None],
                                  model.encode_instruction(batch)[0])
    assert frames.shape == (3, 1, 3, 4, cfg.token_dim)  # (B, F, C, K, D)
    assert set(out['timing']) == {'vision', 'transformer'}
    assert out['cameras_encoded'] == 3
    with pytest.raises(ValueError, match='sparse_threshold=0.5: RT-1 encodes every camera'):
        model.sample_actions(batch, sparse_threshold=0.5)
    if moe:
        w = out['routing_weights']
        assert w.shape == (3, 2) and torch.allclose(w.sum(-1), torch.ones(3))
        assert info['routing_weights'].shape == (3, 2) and 'routing_accuracy' in info
        assert float(info['routing_loss']) > 0
    else:
        assert out['routing_weights'] is None and 'routing_weights' not in info
    # concatenated: 8 tokens a camera and frame; routed: the fused frame holds one camera's
    assert cfg.tokens_per_frame == (4 if moe else 12)


def test_film_is_the_identity_at_init():
    film = FiLM(cond_dim=16, channels=8)
    x = torch.randn(2, 8, 5, 5)
    assert torch.equal(film(x, torch.randn(2, 16)), x)
    # the whole FiLM-EfficientNet ignores its conditioning at init...
    cfg = make_rt1_config('rt1', **SMALL)
    torch.manual_seed(0)
    net = FiLMEfficientNet(cfg, cond_dim=cfg.token_dim).eval()
    assert len(net.film) == len(net.blocks) == 7  # one FiLM per MBConv block
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    a = net(images, torch.randn(2, cfg.token_dim))
    b = net(images, torch.randn(2, cfg.token_dim))
    assert a.shape == (2, 4, cfg.token_dim)  # (N, G*G, D)
    assert torch.equal(a, b)
    # ... and so equals the plain EfficientNet's blocks without FiLM
    with torch.no_grad():
        x = net.act(net.bn0(net.conv_stem(images)))
        for block in net.blocks:
            x = block(x)
        plain = net.proj(net.pool(x)).flatten(2).transpose(1, 2)
    torch.testing.assert_close(a, plain, rtol=0, atol=0)
    # once FiLM has weights, the instruction changes the features
    with torch.no_grad():
        for layer in net.film:
            layer.proj.weight.normal_(std=0.1)
    assert not torch.allclose(net(images, torch.randn(2, cfg.token_dim)),
                              net(images, torch.randn(2, cfg.token_dim)))


def test_token_learner_keeps_8_tokens_as_convex_combinations():
    torch.manual_seed(0)
    learner = TokenLearner(dim=32, num_tokens=8, hidden=64)
    x = torch.randn(5, 81, 32)  # RT-1: 9 x 9 positions
    out = learner(x)
    assert out.shape == (5, 8, 32)
    # each output token is a weighted mean of the positions: a constant map stays constant
    const = torch.randn(5, 1, 32).expand(5, 81, 32)
    torch.testing.assert_close(learner(const), const[:, :8], rtol=1e-5, atol=1e-5)
    # and its weights come from the content: permuting the positions permutes nothing out
    perm = torch.randperm(81)
    torch.testing.assert_close(learner(x[:, perm]), out, rtol=1e-5, atol=1e-5)


def test_a_future_frame_cannot_change_an_earlier_output():
    frames, per_frame, readouts, dim = 4, 3, 2, 16
    mask = frame_causal_mask(frames, per_frame, readouts)
    n = frames * per_frame + readouts
    assert mask.shape == (n, n)
    assert not mask[:per_frame, :per_frame].any()  # one frame's tokens see each other
    assert mask[0, per_frame] and not mask[per_frame, 0]
    assert not mask[-1].any()  # the last readout sees everything
    torch.manual_seed(0)
    net = CausalTransformer(dim, depth=2, num_heads=4, mlp_dim=32, max_len=n, dropout=0.0).eval()
    x = torch.randn(2, n, dim)
    changed = x.clone()
    changed[:, 2 * per_frame:3 * per_frame] += 1.0  # frame 3 of 4
    with torch.no_grad():
        a, b = net(x, mask), net(changed, mask)
    torch.testing.assert_close(a[:, :2 * per_frame], b[:, :2 * per_frame], rtol=0, atol=1e-6)
    assert not torch.allclose(a[:, 2 * per_frame:], b[:, 2 * per_frame:])  # later ones see it
    # the whole model (eval: in training BatchNorm's batch statistics mix the frames): the
    # readouts see the earlier frame, and the earlier frame's outputs do not see the current one
    cfg = make_rt1_config('rt1', **SMALL)
    torch.manual_seed(0)
    model = RT1Model(cfg).eval()
    batch = make_batch(cfg)
    now = {**batch, 'images': torch.rand_like(batch['images']) * 2 - 1}
    past = {**batch, 'image_history': torch.rand_like(batch['image_history']) * 2 - 1}
    with torch.no_grad():
        ref, cur, old = (model.fuse_cameras(*_cams(model, b))[0] for b in (batch, now, past))
        t = cfg.tokens_per_frame
        mask = frame_causal_mask(2, t, cfg.action_horizon)
        out = {k: model.transformer(torch.cat([f.flatten(1, 2), model.readout[None].expand(
            2, -1, -1)], 1), mask) for k, f in (('ref', ref), ('cur', cur), ('old', old))}
    torch.testing.assert_close(out['ref'][:, :t], out['cur'][:, :t], rtol=0, atol=1e-6)
    assert not torch.equal(out['ref'][:, -1], out['old'][:, -1])  # the history matters


def _cams(model, batch):
    cond, text = model.encode_instruction(batch)
    images, masks = model.history_frames(batch)
    return (model.encode_cameras(images, masks, cond), masks, text, batch['token_mask'],
            batch['state'])


def test_bins_round_trip_within_half_a_bin():
    bins = ActionBins(256, -1.0, 1.0)
    a = torch.cat([torch.linspace(-1, 1, 10_001), torch.rand(10_000) * 2 - 1])
    idx = bins.discretise(a)
    assert idx.dtype == torch.long and idx.min() == 0 and idx.max() == 255
    err = (bins.undiscretise(idx) - a).abs()
    assert err.max() <= bins.width / 2 + 1e-6
    # outside the range: clipped to the edge bins
    assert bins.discretise(torch.tensor([-3.0, 7.0])).tolist() == [0, 255]
    # a bin's centre maps back to the same bin
    centres = bins.undiscretise(torch.arange(256))
    assert torch.equal(bins.discretise(centres), torch.arange(256))
    with pytest.raises(ValueError, match='num_bins=1'):
        ActionBins(1)


def test_overfits_one_batch():
    cfg = make_rt1_config('rt1', use_camera_moe=True, **SMALL)
    torch.manual_seed(0)
    model = RT1Model(cfg).train()
    batch = make_batch(cfg, b=4)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        loss, info = model.compute_loss(batch, routing_loss_weight=1.0)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(info['action_loss']) < 0.1 * first, (first, float(info['action_loss']))
    assert float(info['bin_accuracy']) > 0.95
    assert float(info['routing_accuracy']) == 1.0
    model.eval()
    actions, _ = model.sample_actions(batch, use_history=False)
    # the targets come back within a bin (the real dims; the history is the batch's own here,
    # so use compute_loss's view: argmax bins of the batch with its history)
    with torch.no_grad():
        frames, _ = model.fuse_cameras(*_cams(model, batch))
        decoded = model.bins.undiscretise(model.decode(frames).argmax(-1))
    err = (decoded - batch['actions'])[..., :7].abs()
    assert err.max() <= model.bins.width, err.max()
    assert actions.shape == batch['actions'].shape


def test_rt1_base_has_the_published_sizes_on_the_meta_device():
    cfg = make_rt1_config('rt1_base')
    with torch.device('meta'):
        model = RT1Model(cfg)
    n = sum(p.numel() for p in model.parameters())
    parts = {name: sum(p.numel() for p in getattr(model, name).parameters())
             for name in ('vision', 'token_learner', 'instruction', 'transformer')}
    heads = model.head_weight.numel() + model.head_bias.numel()
    listed = ', '.join(f'{k} {v / 1e6:.1f}M' for k, v in parts.items())
    print(f'rt1_base: {n / 1e6:.1f}M parameters ({listed}, heads {heads / 1e6:.1f}M)')
    assert len(model.vision.blocks) == 26  # EfficientNet-B3's MBConv blocks, each FiLMed
    assert len(model.vision.film) == 26
    assert model.vision.blocks[-1]._block_args.output_filters == 384
    assert cfg.image_size == 300 and cfg.history == 6 and cfg.tokens_per_image == 8
    assert len(model.transformer.layers.layers) == 8
    assert model.transformer.layers.layers[0].self_attn.num_heads == 8
    assert model.transformer.pos.shape == (6 * 3 * 8 + 1, 512)  # 6 frames x 3 cameras x 8 + 1
    assert model.head_weight.shape == (32, 256, 512)
    # RT-1 reports 35M parameters (with one camera and 11 action dims); ours, with the text
    # encoder in place of USE and 32 padded action dims, is of the same order.
    assert 30e6 < n < 60e6, n


@pytest.mark.parametrize('field, value, quoted', [
    ('history', 0, 'RT1Config.history=0'),
    ('num_bins', 1, 'RT1Config.num_bins=1'),
    ('efficientnet', 'efficientnet-b9', "RT1Config.efficientnet='efficientnet-b9'"),
    ('tokens_per_image', 20, 'RT1Config.tokens_per_image=20'),
    ('noise_scale', 0.5, 'RT1Config.noise_scale=0.5'),
    ('dropout', 1.5, 'RT1Config.dropout=1.5'),
    ('num_heads', 3, 'RT1Config.num_heads=3'),
])
def test_config_errors_quote_the_bad_value(field, value, quoted):
    with pytest.raises(ValueError) as err:
        make_rt1_config('rt1', **{field: value})
    assert quoted in str(err.value)
