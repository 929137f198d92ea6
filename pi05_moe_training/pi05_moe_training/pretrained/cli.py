"""Import a pretrained PI0.5 / PI0 checkpoint (LeRobot's or openpi's) as a pi05_moe policy.

  pi05-moe import --from lerobot ~/models/pi05_base \
      --tokenizer ~/models/paligemma/tokenizer.json --out ckpt/pi05_base_moe
  pi05-moe import --from openpi ~/models/pi05_droid_pytorch --tokenizer ... --no-moe \
      --out ckpt/droid

Reads local files only (nothing is downloaded). Network dims come from the tensors (a config may
name gemma_2b for smaller tensors). Prints a table of what went where and fails with the list of
keys and shapes when anything needed is missing or does not fit. The output is a normal
`Policy.load` directory: fine-tune it with `pi05-moe train --init <out>`.
"""

from __future__ import annotations

import argparse
import sys

from pi05_moe_training.pretrained.build import DEFAULT_CAMERA_SLOTS, build_policy, mapping_table
from pi05_moe_training.pretrained.keymap import CheckpointImportError
from pi05_moe_training.pretrained.sources import read_lerobot, read_openpi


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--from', dest='source', nargs=2, metavar=('KIND', 'DIR'), required=True,
                        help='KIND is lerobot or openpi; DIR the local checkpoint directory')
    parser.add_argument('--out', required=True, help='the Policy.load directory to write')
    parser.add_argument('--tokenizer', default=None,
                        help="PaliGemma's tokenizer: tokenizer.json or SentencePiece "
                        "tokenizer.model (openpi's); a local file, never fetched")
    parser.add_argument('--camera-slots', default=None,
                        help='camera=slot pairs, the base camera first (default for openpi/'
                             f'LeRobot slots: {DEFAULT_CAMERA_SLOTS})')
    parser.add_argument('--no-moe', action='store_true',
                        help='plain PI0.5: every camera in its pretrained slot, no router')
    parser.add_argument('--asset-id', default=None,
                        help='openpi: which assets/<id>/norm_stats.json to use')
    parser.add_argument('--vision-num-heads', type=int, default=None,
                        help='SigLIP heads when not 1152/72 or width/64 (not in the tensors)')
    parser.add_argument('--weights-dtype', default='float32',
                        choices=['float32', 'bfloat16', 'float16'])
    parser.add_argument('--quiet', action='store_true', help='no mapping table')


def main(args: argparse.Namespace) -> int:
    kind, directory = args.source
    try:
        if kind == 'lerobot':
            pre = read_lerobot(directory)
        elif kind == 'openpi':
            pre = read_openpi(directory, args.asset_id)
        else:
            raise CheckpointImportError(f'--from {kind!r}: expected lerobot or openpi')
        overrides = {} if args.vision_num_heads is None else {
            'vision_num_heads': args.vision_num_heads}
        imp = build_policy(pre, args.camera_slots, use_moe=not args.no_moe,
                           tokenizer_path=args.tokenizer, **overrides)
    except (CheckpointImportError, ValueError) as exc:
        print(f'pi05-moe import: error: {exc}', file=sys.stderr)
        return 2
    if not args.quiet:
        print('\n'.join(mapping_table(imp)))
    for note in imp.notes:
        print(f'pi05-moe import: warning: {note}', file=sys.stderr)
    out = imp.policy.save(args.out, weights_dtype=args.weights_dtype)
    cfg = imp.policy.config
    cams = ', '.join(f'{c} -> {s}' for c, s in imp.cameras.items())
    print(f'imported {kind} {directory} -> {out}: {len(imp.mapped.rows)} tensors, '
          f'{len(imp.fresh)} new, {len(imp.mapped.unused)} unused; '
          f'{"PI0.5" if cfg.model.pi05 else "PI0"}, camera MoE '
          f'{"on" if cfg.model.use_camera_moe else "off"}; cameras {cams}; '
          f'{cfg.data.normalization} normalisation')
    return 0
