"""export a trained checkpoint for deployment: Policy files only, optionally in half precision.

Copies what `Policy.load` needs (config, weights, norm stats, tokenizer) from a training
checkpoint, without the optimiser and RNG state that `--resume` needs, and can store the weights
in float16 (half the size; `Policy.load` casts them back to float32). This is how the shipped
simulator checkpoint was made:

  pi05-moe export runs/sim_small --weights-dtype float16 \
      --out pi05_moe_policy/checkpoints/sim_small

CHECKPOINT is a `Policy.load` directory or a `pi05-moe train` output directory (its `latest`).
A `--lora` training checkpoint comes out with its adapters merged into the weights, and a
sharded (`--fsdp`) one consolidated: either loads with `Policy.load`, without peft.
Exit status: 0 on success, 2 when CHECKPOINT is not a checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('checkpoint', help='checkpoint directory or training output directory')
    parser.add_argument('--out', required=True, help='directory to write the exported policy to')
    parser.add_argument('--weights-dtype', default='float32',
                        choices=['float32', 'float16', 'bfloat16'],
                        help='dtype the weights are stored in (default: float32)')
    parser.add_argument('--noise-scale', type=float, default=None,
                        help="sampling temperature stored in the exported config (the initial "
                             "noise's scale; 0 = deterministic; default: keep the checkpoint's)")


def main(args: argparse.Namespace) -> int:
    from pi05_moe_policy.checkpoints import load_policy, resolve_checkpoint
    from pi05_moe_training.train.checkpointing import consolidated_policy, resolve_run_checkpoint
    from pi05_moe_training.train.lora import has_adapters
    from pi05_moe_training.train.sharded import is_sharded_checkpoint

    try:
        # every checkpoint form the nodes take: shipped:<name>, preset:<name>, a directory, or
        # a training output (its latest checkpoint)
        spec = resolve_checkpoint(args.checkpoint)
        source = spec if spec.startswith('preset:') else resolve_run_checkpoint(spec)
        if isinstance(source, Path) and (has_adapters(source) or is_sharded_checkpoint(source)):
            policy = consolidated_policy(source)  # LoRA merged, shards gathered
        else:
            policy = load_policy(str(source))
        if args.noise_scale is not None:
            policy.set_noise_scale(args.noise_scale)
    except ValueError as exc:
        print(f'pi05-moe export: error: {exc}', file=sys.stderr)
        return 2
    out = policy.save(args.out, weights_dtype=args.weights_dtype)
    size_mb = sum(f.stat().st_size for f in out.iterdir()) / 1e6
    print(f'exported {source} -> {out} ({args.weights_dtype} weights, noise_scale '
          f'{policy.model_config.noise_scale:g}, {size_mb:.1f} MB)')
    return 0
