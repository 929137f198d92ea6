"""bf16 autocast and gradient checkpointing, on the CPU at tiny dims.

- Under CPU bf16 autocast a training step runs (``encode_images`` once failed there with an
  index_put dtype mismatch, issue #19) and its loss and gradients are finite and near fp32's.
- Gradient checkpointing recomputes the SigLIP and Gemma layers in backward: the gradients
  equal those without it (fp32; tolerance 1e-6 relative to each gradient's largest entry:
  the recomputation runs the same kernels on the same inputs).
"""

from __future__ import annotations

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_model_core import make_batch, perturb_adarms
from train_helpers import build_dataset, train_args

from pi05_moe_bringup import cli
from pi05_moe_policy.model import Pi05Model, make_config


def tiny_model(seed: int = 0) -> Pi05Model:
    """The tiny preset at 56 px, adaRMS perturbed so every part gets a gradient."""
    torch.manual_seed(seed)
    model = Pi05Model(make_config('tiny', image_size=56)).train()
    perturb_adarms(model)
    return model


def loss_and_grads(model: Pi05Model, batch: dict, autocast: bool = False
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    g = torch.Generator().manual_seed(1)
    cfg = model.config
    noise = torch.randn(2, cfg.action_horizon, cfg.action_dim, generator=g)
    time = torch.rand(2, generator=g)
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
        loss, _ = model.compute_loss(batch, noise=noise, time=time)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                           if p.grad is not None}


@pytest.fixture(scope='module')
def fp32():
    model = tiny_model()
    batch = make_batch(model.config)
    return model, batch, *loss_and_grads(model, batch)


def test_a_training_step_under_cpu_bf16_autocast_is_finite_and_near_fp32(fp32):
    model, batch, loss32, grads32 = fp32
    loss16, grads16 = loss_and_grads(model, batch, autocast=True)
    assert torch.isfinite(loss16)
    assert abs(loss16 - loss32) < 0.05 * loss32, (loss16, loss32)  # bf16: 8 mantissa bits
    assert grads16.keys() == grads32.keys()
    assert all(torch.isfinite(g).all() for g in grads16.values())
    # the direction of the whole gradient survives bf16
    flat16 = torch.cat([g.flatten() for g in grads16.values()])
    flat32 = torch.cat([g.flatten() for g in grads32.values()])
    assert torch.nn.functional.cosine_similarity(flat16, flat32, dim=0) > 0.98


def test_gradient_checkpointing_gives_the_same_gradients(fp32):
    model, batch, loss_plain, grads_plain = fp32
    # forward calls per step: 1 without checkpointing, 2 with (the recomputation in backward)
    calls = {'gemma': 0, 'siglip': 0}
    siglip_layer = next(m for m in model.vision.modules()
                        if type(m).__name__ == 'SiglipEncoderLayer')
    # pre-hooks on a sublayer: transformers checkpoints a layer's forward (its own hooks run
    # once), and the recomputation stops early once it has what backward needs
    hooks = [model.gemma.action_expert.layers[0].mlp.register_forward_pre_hook(
                 lambda *_: calls.__setitem__('gemma', calls['gemma'] + 1)),
             siglip_layer.mlp.register_forward_pre_hook(
                 lambda *_: calls.__setitem__('siglip', calls['siglip'] + 1))]
    model.set_gradient_checkpointing(True)
    try:
        loss_ckpt, grads_ckpt = loss_and_grads(model, batch)
    finally:
        model.set_gradient_checkpointing(False)
        for h in hooks:
            h.remove()
    assert calls == {'gemma': 2, 'siglip': 2}, calls
    assert torch.equal(loss_ckpt, loss_plain)
    assert grads_ckpt.keys() == grads_plain.keys()
    assert any(k.startswith('vision.vision_tower.') for k in grads_ckpt)
    assert any(k.startswith('gemma.') for k in grads_ckpt)
    for k, g in grads_plain.items():
        tol = 1e-6 * max(g.abs().max().item(), 1e-12)
        assert (grads_ckpt[k] - g).abs().max() <= tol, k


def test_train_runs_with_cpu_bf16_and_gradient_checkpointing(tmp_path):
    dataset = build_dataset(tmp_path)
    out = tmp_path / 'run'
    assert cli.main(train_args(dataset, out, '--max-steps', '2', '--batch-size', '2',
                               '--log-every', '1', '--cpu-bf16', '--gradient-checkpointing',
                               '--device', 'cpu')) == 0
    acc = EventAccumulator(str(out / 'tb'))
    acc.Reload()
    loss = [e.value for e in acc.Scalars('train/loss')]
    assert len(loss) == 2 and all(torch.isfinite(torch.tensor(loss)))
