"""One pi05_base LoRA training step at batch 1 on the CPU under bf16 autocast: time and peak RSS.

    python bench/bench_lora_step.py [--ckpt]     # --ckpt: gradient checkpointing

pi05_base with the camera MoE, random weights, LoRA as ``train --lora --freeze vision`` sets it,
3 cameras at 224 px, a 200-token prompt, the action horizon of 50. Needs ~15 GB of RAM with
--ckpt (more without); each line prints the elapsed time and the peak RSS so far.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

T0 = time.time()


def say(msg: str) -> None:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB -> GB
    print(f'{time.time() - T0:7.1f}s peak {peak:5.2f} GB  {msg}', flush=True)


def main() -> None:
    from pi05_moe_policy.model import Pi05Model
    from pi05_moe_policy.policy_config import make_policy_config
    from pi05_moe_training.train.config import TrainConfig
    from pi05_moe_training.train.loop import freeze_parts, make_optimizer
    from pi05_moe_training.train.lora import add_lora

    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--ckpt', action='store_true', help='gradient checkpointing')
    ap.add_argument('--threads', type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = make_policy_config('pi05_base', use_camera_moe=True).model
    torch.manual_seed(0)
    model = Pi05Model(cfg).train()
    model.set_gradient_checkpointing(args.ckpt)
    say(f'built {sum(p.numel() for p in model.parameters()) / 1e9:.3f} B params fp32')
    tc = TrainConfig(lora=True, freeze='vision')
    add_lora(model, tc)
    freeze_parts(model, ('vision',))
    opt = make_optimizer(model, tc, torch.device('cpu'))
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    say(f'gradient checkpointing {args.ckpt}; LoRA: {trained / 1e6:.1f} M trained')
    b, c, n = 1, 1 + cfg.num_experts, 200
    g = torch.Generator().manual_seed(0)
    batch = {'images': torch.rand(b, c, 3, 224, 224, generator=g) * 2 - 1,
             'image_masks': torch.ones(b, c, dtype=torch.bool),
             'tokens': torch.randint(3, 1000, (b, n), generator=g),
             'token_mask': torch.ones(b, n, dtype=torch.bool),
             'state': torch.randn(b, cfg.max_state_dim, generator=g),
             'actions': torch.randn(b, cfg.action_horizon, cfg.action_dim, generator=g),
             'camera_active': torch.tensor([[1.0, 0.0]])}
    t = time.time()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss, _ = model.compute_loss(batch)
    say(f'forward {time.time() - t:.0f}s loss {loss.item():.4f}')
    t = time.time()
    loss.backward()
    say(f'backward {time.time() - t:.0f}s')
    t = time.time()
    opt.step()
    opt.zero_grad(set_to_none=True)
    say(f'AdamW step {time.time() - t:.1f}s')


if __name__ == '__main__':
    main()
