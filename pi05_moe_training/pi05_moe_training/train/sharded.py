"""Sharded training (``pi05-moe train --fsdp`` under torchrun) with FSDP2 (``fully_shard``).

Each process holds 1/N of every parameter, gradient and AdamW moment; a unit's parameters are
all-gathered just before it runs and freed after.  The units (``shard_model``):
- each SigLIP encoder layer;
- per Gemma layer and stream (VLM, action expert): the attention's Q/K/V projections, its output
  projection, and the MLP.  ``SharedAttentionGemma`` calls these pieces directly rather than a
  decoder layer's ``forward`` (the two streams share one attention), so the layer itself cannot
  be a unit; ``qkv`` is registered as a forward method so that its call gathers Q/K/V;
- the VLM's token embedding;
- the root (SigLIP's patch embedding, the norms, the camera MoE, the action and time
  projections), gathered for the whole step.

Checkpoints (``checkpoint-<step>/``): the policy files without ``model.safetensors``, and
``dcp/`` with every rank's shards of the weights and the optimiser (torch.distributed.checkpoint).
``--resume --fsdp`` reloads them (any world size); ``pi05-moe export`` consolidates them in one
process into a normal checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

SHARDS = 'dcp'


def is_sharded_checkpoint(ckpt: str | Path) -> bool:
    return (Path(ckpt) / SHARDS / '.metadata').is_file()


def full_tensor(x: Any) -> Any:
    """A DTensor gathered into a plain tensor (anything else as it is)."""
    from torch.distributed.tensor import DTensor

    return x.full_tensor() if isinstance(x, DTensor) else x


def shard_model(model: torch.nn.Module) -> None:
    """``fully_shard`` the units listed in the module docstring, then the root."""
    from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

    for m in model.vision.modules():
        if type(m).__name__ == 'SiglipEncoderLayer':
            fully_shard(m)
    # the token embedding is called on its own: its own unit (pi05_base: 527 M parameters, so
    # not in the root, which stays gathered for the whole step)
    fully_shard(model.gemma.language_model.embed_tokens)
    for stack in (model.gemma.language_model, model.gemma.action_expert):
        for layer in stack.layers:
            fully_shard(layer.mlp)
            fully_shard(layer.self_attn.o_proj)
            fully_shard(layer.self_attn)  # Q, K, V (o_proj is its own unit)
            register_fsdp_forward_method(layer.self_attn, 'qkv')
    fully_shard(model)


def save_sharded(model: torch.nn.Module, optimizer: torch.optim.Optimizer, ckpt: Path) -> None:
    """Every rank writes its shards of the weights and the optimiser to ``ckpt/dcp``."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_state, optim_state = get_state_dict(model, optimizer)
    dcp.save({'model': model_state, 'optim': optim_state}, checkpoint_id=str(ckpt / SHARDS))


def load_sharded(ckpt: str | Path, model: torch.nn.Module,
                 optimizer: torch.optim.Optimizer) -> None:
    """Every rank reads its shards (resharded if the world size changed) into the sharded model
    and its optimiser."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_state_dict,
        set_state_dict,
    )

    path = str(Path(ckpt) / SHARDS)
    model_state, optim_state = get_state_dict(model, optimizer)  # AdamW state for every param
    # Parameters that never had a gradient (the VLM's last-layer query, output and MLP, which
    # no loss reads) have no AdamW state in the checkpoint: keep their fresh zeros.
    saved = set(dcp.FileSystemReader(path).read_metadata().state_dict_metadata)
    optim_state['state'] = {fqn: s for fqn, s in optim_state['state'].items()
                            if all(f'optim.state.{fqn}.{k}' in saved for k in s)}
    state = {'model': model_state, 'optim': optim_state}
    dcp.load(state, checkpoint_id=path)
    set_state_dict(model, optimizer, model_state_dict=state['model'],
                   optim_state_dict=state['optim'],
                   options=StateDictOptions(strict=False))  # (those params' states)


def policy_skeleton(ckpt: str | Path) -> Any:
    """The policy of a sharded checkpoint (config, norm stats, tokenizer) with freshly
    initialised weights: the caller loads the shards into it."""
    import json

    from pi05_moe_policy import Policy
    from pi05_moe_policy.model.factory import build_model
    from pi05_moe_policy.policy_config import config_from_checkpoint
    from pi05_moe_policy.transforms.normalize import NormStats
    from pi05_moe_policy.transforms.tokenizer import load_tokenizer

    d = Path(ckpt)
    cfg = config_from_checkpoint(json.loads((d / 'config.json').read_text()),
                                 str(d / 'config.json'))
    with torch.random.fork_rng(devices=[]):
        model = build_model(cfg.model)
    return Policy(model, cfg.data, NormStats.load(d / 'norm_stats.json'), load_tokenizer(d))


def load_consolidated(policy: Any, ckpt: str | Path) -> None:
    """Read every shard of ``ckpt``'s weights into ``policy.model`` in this one process (no
    process group: torch.distributed.checkpoint loads without one)."""
    import torch.distributed.checkpoint as dcp

    state = {'model': policy.model.state_dict()}
    dcp.load(state, checkpoint_id=str(Path(ckpt) / SHARDS))
    policy.model.load_state_dict(state['model'])
