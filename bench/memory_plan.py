"""GPU memory plan for fine-tuning pi05_base: computed, not measured.

    python bench/memory_plan.py [--batch 32] [--lora-rank 16] [--cameras 3]

Parameter counts come from building pi05_base (with the camera MoE) on the meta device and
injecting the LoRA adapters ``train --lora`` would (peft, also on the meta device). Bytes per
parameter are those of this trainer: fp32 weights under bf16 autocast, fp32 gradients, two fp32
AdamW moments; FSDP shards all three over the GPUs. Activations are an estimate from the
tensors each layer keeps for backward (listed in ``layer_activations``), in bf16 with the
residual stream in fp32, attention through a fused SDPA kernel (no T x T matrix kept); the
model's own peaks, allocator fragmentation and the CUDA context (~0.5 GB) are not included.
"""

from __future__ import annotations

import argparse

import torch

GB = 1e9
PREFIX_TEXT = 200  # DataConfig.max_token_len of an import
SUFFIX = 50  # the action horizon (one token per action)


def build_meta(lora_rank: int, lora: bool) -> torch.nn.Module:
    from pi05_moe_policy.model import Pi05Model
    from pi05_moe_policy.policy_config import make_policy_config
    from pi05_moe_training.train.config import TrainConfig
    from pi05_moe_training.train.lora import add_lora

    cfg = make_policy_config('pi05_base', use_camera_moe=True)
    with torch.device('meta'):
        model = Pi05Model(cfg.model)
        if lora:
            add_lora(model, TrainConfig(lora=True, lora_rank=lora_rank, lora_alpha=lora_rank))
    return model


def counts(model: torch.nn.Module, freeze_vision: bool) -> tuple[int, int]:
    """(all parameters, trained parameters)."""
    total = trained = 0
    for name, p in model.named_parameters():
        total += p.numel()
        if p.requires_grad and not (freeze_vision and name.startswith('vision.')):
            trained += p.numel()
    return total, trained


def layer_activations(width: int, heads_dim: int, kv_dim: int, mlp: int, gemma: bool) -> int:
    """Bytes one token keeps for backward in one layer.

    Gemma (GeGLU): the residual and the post-attention residual in fp32 (2 x 4 B x width), the
    two norm outputs, Q, K, V, rotated Q and K, the attention output, and gate, up,
    gelu(gate) and their product (bf16, 2 B each). SigLIP (GELU MLP): two LayerNorm inputs in
    fp32, Q, K, V, the attention output, fc1's output and the GELU output.
    """
    if gemma:
        return 2 * 4 * width + 2 * (2 * width + 3 * heads_dim + 3 * kv_dim + 4 * mlp)
    return 2 * 4 * width + 2 * (4 * width + 2 * mlp)


def activations(c: object, cameras: int, moe: bool, freeze_vision: bool,
                checkpointing: bool) -> float:
    """Bytes per sample. Checkpointing keeps each layer's input (fp32) plus one layer's
    activations while it is recomputed."""
    image_tokens = (c.image_size // c.vision_patch_size) ** 2
    prefix = (image_tokens if moe else cameras * image_tokens) + PREFIX_TEXT
    stacks = [  # (tokens, layers, width, bytes per token per layer)
        (prefix, c.vlm_depth, c.vlm_width, layer_activations(
            c.vlm_width, c.vlm_num_heads * c.vlm_head_dim, c.vlm_num_kv_heads * c.vlm_head_dim,
            c.vlm_mlp_dim, True)),
        (SUFFIX, c.expert_depth, c.expert_width, layer_activations(
            c.expert_width, c.expert_num_heads * c.expert_head_dim,
            c.expert_num_kv_heads * c.expert_head_dim, c.expert_mlp_dim, True))]
    if not freeze_vision:  # a frozen tower with nothing trained upstream keeps nothing
        stacks.append((cameras * image_tokens, c.vision_depth, c.vision_width, layer_activations(
            c.vision_width, c.vision_width, c.vision_width, c.vision_mlp_dim, False)))
    if not checkpointing:
        return sum(t * n * b for t, n, _, b in stacks)
    inputs = sum(t * n * 4 * w for t, n, w, _ in stacks)
    return inputs + max(t * b for t, _, _, b in stacks)


def static_bytes(total: int, trained: int, gpus: int) -> float:
    """Weights (fp32, 4 B), gradients (4 B) and AdamW (8 B) of the trained parameters, sharded
    over ``gpus``; plus autocast's bf16 copies of the trained weights, held for the step and
    not sharded (2 B)."""
    frozen = total - trained
    return (4 * frozen + 16 * trained) / gpus + 2 * trained


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--batch', type=int, default=32, help='global batch (openpi: 32)')
    ap.add_argument('--lora-rank', type=int, default=16)
    ap.add_argument('--cameras', type=int, default=3)
    args = ap.parse_args()
    full, lora = build_meta(args.lora_rank, False), build_meta(args.lora_rank, True)
    c = full.config
    print(f'pi05_base + camera MoE: {counts(full, False)[0] / 1e9:.3f} B parameters')
    for name, prefix in (('SigLIP + projector', 'vision.'), ('Gemma 2B (VLM)',
                         'gemma.language_model.'), ('action expert', 'gemma.action_expert.'),
                         ('camera MoE', 'camera_moe.')):
        n = sum(p.numel() for k, p in full.named_parameters() if k.startswith(prefix))
        print(f'  {name}: {n / 1e6:.1f} M')
    variants = [('full fine-tuning', full, False), ('full, --freeze vision', full, True),
                (f'LoRA r={args.lora_rank}', lora, False),
                (f'LoRA r={args.lora_rank}, --freeze vision', lora, True)]
    print(f'\nper GPU, GB (global batch {args.batch}; activations without / with '
          '--gradient-checkpointing)')
    print('| variant | trained params | GPUs | weights+grads+AdamW | activations | total |')
    print('|---|---|---|---|---|---|')
    for name, model, frozen in variants:
        total, trained = counts(model, frozen)
        for gpus in (1, 2, 8):
            per_gpu = args.batch / gpus
            st = static_bytes(total, trained, gpus) / GB
            act = [per_gpu * activations(c, args.cameras, True, frozen, ck) / GB
                   for ck in (False, True)]
            print(f'| {name} | {trained / 1e6:.0f} M | {gpus} | {st:.1f} | {act[0]:.0f} / '
                  f'{act[1]:.1f} | {st + act[0]:.0f} / {st + act[1]:.1f} |')
    total, trained = counts(lora, True)
    least = static_bytes(total, trained, 1) + activations(c, args.cameras, True, True, True)
    print(f'\nsingle-GPU minimum (LoRA, --freeze vision, --gradient-checkpointing, batch 1): '
          f'{least / GB:.1f} GB')
    for moe in (True, False):
        print(f'activations per sample, MoE {"on" if moe else "off"}: '
              f'{activations(c, args.cameras, moe, False, False) / GB:.2f} GB '
              f'(checkpointed {activations(c, args.cameras, moe, False, True) / GB:.2f} GB)')


if __name__ == '__main__':
    main()
