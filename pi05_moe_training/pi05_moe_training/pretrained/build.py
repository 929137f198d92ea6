"""A read checkpoint (:mod:`sources`) -> our ``Policy``: config from the tensors, cameras onto the
pretrained image slots, norm stats, tokenizer, and (optionally) a fresh camera MoE on top.

With the MoE on, the router and the fusion are new; the fusion's base slice is the identity (as
for any new MoE policy), so at step 0 the prefix holds the base camera's ordinary image tokens.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pi05_moe_training.pretrained.keymap import (
    CheckpointImportError,
    Mapped,
    dims_from_tensors,
    map_state_dict,
)
from pi05_moe_training.pretrained.sources import STAT_NAMES, Pretrained

# Our camera roles -> the pretrained slots (openpi / LeRobot names). The first is the base camera
# (always in); the L515 is the external view PI0.5's base slot was trained on.
DEFAULT_CAMERA_SLOTS = 'wrist=left_wrist_0_rgb,l515=base_0_rgb,thermal=right_wrist_0_rgb'


def parse_camera_slots(text: str, slots: tuple[str, ...]) -> dict[str, str]:
    """'cam=slot,cam=slot' -> {camera: slot} in the given order; every slot must exist."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(','))):
        camera, sep, slot = part.partition('=')
        if not sep or not camera or not slot:
            raise CheckpointImportError(f'--camera-slots {text!r}: expected camera=slot pairs')
        if slot not in slots:
            raise CheckpointImportError(f'--camera-slots: slot {slot!r} is not in the checkpoint '
                                        f'(its image slots: {list(slots)})')
        if camera in out or slot in out.values():
            raise CheckpointImportError(f'--camera-slots {text!r}: each camera and slot once')
        out[camera] = slot
    if not out:
        raise CheckpointImportError('--camera-slots: no camera given')
    return out


@dataclasses.dataclass
class Imported:
    policy: Any  # pi05_moe_policy.Policy
    mapped: Mapped
    fresh: list[str]  # our keys initialised anew (the camera MoE)
    cameras: dict[str, str]  # camera -> slot, in model order
    notes: list[str]


def _norm_stats(pre: Pretrained) -> dict[str, Any]:
    def full(stats: dict[str, Any], what: str) -> dict[str, list[float]]:
        needed = ('q01', 'q99') if pre.normalization == 'quantile' else ('mean', 'std')
        missing = [n for n in needed if n not in stats]
        if missing:
            raise CheckpointImportError(f'{pre.path}: {what} stats lack {missing} '
                                        f'({pre.normalization} normalisation)')
        dim = len(next(iter(stats.values())))
        fill = {'q01': -1.0, 'q99': 1.0, 'mean': 0.0, 'std': 1.0, 'min': -1.0, 'max': 1.0}
        return {n: [float(v) for v in stats[n]] if n in stats else [fill[n]] * dim
                for n in STAT_NAMES}

    return {'state': full(pre.state_stats, 'state'), 'actions': full(pre.action_stats, 'action')}


def build_policy(pre: Pretrained, camera_slots: str | None = None, use_moe: bool = True,
                 tokenizer_path: str | None = None,
                 thermal_cameras: tuple[str, ...] = ('thermal',), **overrides: Any) -> Imported:
    """The policy, with every pretrained tensor in place (checked key by key and shape by
    shape); ``overrides`` are flat config fields (e.g. ``vision_num_heads``)."""
    from pi05_moe_policy import Policy
    from pi05_moe_policy.policy import to_model_layout
    from pi05_moe_policy.policy_config import make_policy_config

    mapped = map_state_dict(pre.tensors)
    if mapped.unknown:
        raise CheckpointImportError(f'{pre.path}: {len(mapped.unknown)} tensors have no home: '
                                    f'{mapped.unknown[:20]}')
    slots = pre.camera_slots
    if camera_slots is None:
        camera_slots = (DEFAULT_CAMERA_SLOTS if set(slots) == {'base_0_rgb', 'left_wrist_0_rgb',
                                                              'right_wrist_0_rgb'}
                        else ','.join(f'{s}={s}' for s in slots))
    cams = parse_camera_slots(camera_slots, slots)
    if not use_moe:  # plain PI0.5 concatenates the cameras in the pretrained slot order
        cams = dict(sorted(cams.items(), key=lambda kv: slots.index(kv[1])))
    names = list(cams)
    state_dim = len(pre.state_stats.get('q01', pre.state_stats.get('mean')))
    action_dim = len(pre.action_stats.get('q01', pre.action_stats.get('mean')))
    fields: dict[str, Any] = {
        **dims_from_tensors(mapped.tensors), **pre.settings,
        'base_camera': names[0], 'expert_cameras': tuple(names[1:]),
        'num_experts': len(names) - 1, 'use_camera_moe': bool(use_moe),
        'thermal_cameras': tuple(c for c in thermal_cameras if c in cams),
        'robot_state_dim': state_dim, 'robot_action_dim': action_dim,
        'preprocessing': 'reference', 'normalization': pre.normalization,
        'delta_action_mask': (), 'joint_names': None,
    }
    notes = []
    if tokenizer_path:
        fields.update(tokenizer_type='hf', tokenizer_path=str(tokenizer_path))
    else:
        fields['tokenizer_type'] = 'word_hash'
        notes.append('no --tokenizer: the prompt uses the built-in word-hash tokenizer, whose ids '
                     'do not match the pretrained embedding (pass PaliGemma\'s tokenizer)')
    fields.update(overrides)
    if not fields['pi05']:
        fields.pop('state_in_prompt', None)
    try:
        cfg = make_policy_config('tiny', **fields)
    except ValueError as exc:
        raise CheckpointImportError(f'{pre.path}: the tensors give an invalid config: {exc}'
                                    ) from None
    policy = Policy.from_config(cfg, norm_stats=_norm_stats(pre))
    ours = policy.model.state_dict()
    # SigLIP's names in the installed transformers' layout (with or without `vision_model.`)
    mapped.tensors = to_model_layout(mapped.tensors, policy.model)
    wrong = [f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(ours[k].shape)}'
             for k, v in mapped.tensors.items() if k in ours and tuple(v.shape) != ours[k].shape]
    extra = sorted(set(mapped.tensors) - set(ours))
    fresh = sorted(set(ours) - set(mapped.tensors))
    missing = [k for k in fresh if not k.startswith('camera_moe.')]
    if wrong or extra or missing:
        raise CheckpointImportError(
            f'{pre.path}: does not fit the model built from it: '
            + '; '.join([*(f'shape {w}' for w in wrong), *(f'no home for {k}' for k in extra),
                         *(f'missing {k}' for k in missing)][:30]))
    tensors = {k: v.to(ours[k].dtype) for k, v in mapped.tensors.items()}
    policy.model.load_state_dict(tensors, strict=False)
    return Imported(policy, mapped, fresh, cams, notes)


def mapping_table(imp: Imported, max_rows: int = 0) -> list[str]:
    """What went where: one line per tensor group (layer indices folded), then the fresh and the
    unused tensors."""
    import re

    groups: dict[tuple[str, str], list[Any]] = {}
    for theirs, ours, shape, dtype in imp.mapped.rows:
        key = (re.sub(r'\.\d+\.', '.N.', theirs), re.sub(r'\.\d+\.', '.N.', ours))
        groups.setdefault(key, []).append((shape, dtype))
    lines = [f'{"theirs":<78} -> {"ours":<58} {"n":>3}  shape, dtype']
    for (theirs, ours), items in groups.items():
        shape, dtype = items[0]
        lines.append(f'{theirs:<78} -> {ours:<58} {len(items):>3}  {shape}, {dtype}')
    if max_rows:
        lines = lines[:max_rows + 1]
    lines += [f'new (initialised here): {k}' for k in imp.fresh]
    lines += [f'unused (left out): {k}' for k in imp.mapped.unused]
    return lines
