"""LeRobot / openpi PI0.5 (and PI0) state-dict names -> ours, and the network dims read from the
tensors themselves (checkpoint configs name ``gemma_2b`` even when the tensors are smaller).

Pure: dicts of tensors in, dicts out. Both LeRobot (``PI05Policy``, keys under ``model.``) and
openpi's PyTorch port (``PI0Pytorch``, the same names without ``model.``) are accepted.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

# Their prefix (after an optional leading "model.") -> ours. SigLIP's own ``vision_model.``
# level is dropped here and put back by the model's key normaliser when its transformers wants it.
PREFIXES: tuple[tuple[str, str], ...] = (
    ('paligemma_with_expert.paligemma.model.vision_tower.vision_model.', 'vision.vision_tower.'),
    ('paligemma_with_expert.paligemma.model.vision_tower.', 'vision.vision_tower.'),
    ('paligemma_with_expert.paligemma.model.multi_modal_projector.',
     'vision.multi_modal_projector.'),
    ('paligemma_with_expert.paligemma.model.language_model.', 'gemma.language_model.'),
    ('paligemma_with_expert.paligemma.language_model.model.', 'gemma.language_model.'),
    ('paligemma_with_expert.gemma_expert.model.', 'gemma.action_expert.'),
    ('action_in_proj.', 'action_in_proj.'),
    ('action_out_proj.', 'action_out_proj.'),
    ('time_mlp_in.', 'time_mlp_in.'),
    ('time_mlp_out.', 'time_mlp_out.'),
    ('state_proj.', 'state_proj.'),
    ('action_time_mlp_in.', 'action_time_mlp_in.'),
    ('action_time_mlp_out.', 'action_time_mlp_out.'),
)
# Tensors inference and training never read: the two language-model heads (PaliGemma's is tied
# to the token embedding, which is imported; the expert's predicts no tokens).
UNUSED: tuple[str, ...] = (
    'paligemma_with_expert.paligemma.lm_head.weight',
    'paligemma_with_expert.gemma_expert.lm_head.weight',
)


class CheckpointImportError(ValueError):
    """A checkpoint that cannot be imported; the message lists what is wrong."""


@dataclasses.dataclass
class Mapped:
    """The result of :func:`map_state_dict`."""

    tensors: dict[str, Any]  # our key -> tensor
    rows: list[tuple[str, str, tuple[int, ...], str]]  # (their key, our key, shape, dtype)
    unused: list[str]  # their keys left out on purpose (UNUSED)
    unknown: list[str]  # their keys with no home


def _strip(key: str) -> str:
    return key[len('model.'):] if key.startswith('model.') else key


def map_key(key: str) -> str | None:
    """Their key -> ours, or None for an UNUSED tensor; raises KeyError for an unknown one."""
    k = _strip(key)
    if k in UNUSED:
        return None
    for theirs, ours in PREFIXES:
        if k.startswith(theirs):
            return ours + k[len(theirs):]
    raise KeyError(key)


def map_state_dict(state: Mapping[str, Any]) -> Mapped:
    """Rename every tensor; collect the unused and unknown keys (never silently dropped)."""
    out: dict[str, Any] = {}
    rows, unused, unknown = [], [], []
    for key in sorted(state):
        t = state[key]
        try:
            ours = map_key(key)
        except KeyError:
            unknown.append(key)
            continue
        if ours is None:
            unused.append(key)
            continue
        out[ours] = t
        rows.append((key, ours, tuple(t.shape), str(t.dtype).replace('torch.', '')))
    return Mapped(out, rows, unused, unknown)


def _count_layers(keys: list[str], prefix: str) -> int:
    pat = re.compile(re.escape(prefix) + r'(\d+)\.')
    found = {int(m.group(1)) for k in keys if (m := pat.match(k))}
    return max(found) + 1 if found else 0


def dims_from_tensors(ours: Mapping[str, Any]) -> dict[str, Any]:
    """Network dims (our ModelConfig field names) from our-named tensors.

    Gemma: every PaliGemma / gemma_300m variant has one KV head, so head_dim is the K
    projection's rows and heads = Q rows / head_dim. SigLIP's head count is not in the shapes:
    So400m uses head_dim 72 (1152 wide, 16 heads); otherwise head_dim 64 is assumed (override
    ``vision_num_heads`` when a checkpoint differs).
    """
    keys = list(ours)

    def shape(k: str) -> tuple[int, ...]:
        if k not in ours:
            raise CheckpointImportError(f'missing tensor {k!r} (needed to read the network dims)')
        return tuple(ours[k].shape)

    dims: dict[str, Any] = {}
    vocab, width = shape('gemma.language_model.embed_tokens.weight')
    dims.update(vocab_size=vocab, vlm_width=width)
    for ours_name, prefix in (('vlm', 'gemma.language_model.layers.'),
                              ('expert', 'gemma.action_expert.layers.')):
        depth = _count_layers(keys, prefix)
        if depth == 0:
            raise CheckpointImportError(f'no {prefix}N.* tensors: not a PI0/PI0.5 checkpoint')
        head_dim = shape(f'{prefix}0.self_attn.k_proj.weight')[0]
        q_rows, w = shape(f'{prefix}0.self_attn.q_proj.weight')
        dims.update({f'{ours_name}_depth': depth, f'{ours_name}_width': w,
                     f'{ours_name}_mlp_dim': shape(f'{prefix}0.mlp.gate_proj.weight')[0],
                     f'{ours_name}_head_dim': head_dim, f'{ours_name}_num_kv_heads': 1,
                     f'{ours_name}_num_heads': q_rows // head_dim})
    vw, _, patch, _ = shape('vision.vision_tower.embeddings.patch_embedding.weight')
    positions = shape('vision.vision_tower.embeddings.position_embedding.weight')[0]
    side = round(positions ** 0.5)
    dims.update(vision_width=vw, vision_patch_size=patch, image_size=side * patch,
                vision_depth=_count_layers(keys, 'vision.vision_tower.encoder.layers.'),
                vision_mlp_dim=shape('vision.vision_tower.encoder.layers.0.mlp.fc1.weight')[0],
                vision_num_heads=vw // 72 if vw % 72 == 0 else vw // 64)
    dims['action_dim'] = shape('action_in_proj.weight')[1]
    dims['pi05'] = 'time_mlp_in.weight' in ours
    if not dims['pi05']:
        dims['max_state_dim'] = shape('state_proj.weight')[1]
    return dims
