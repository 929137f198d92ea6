"""LoRA fine-tuning (``pi05-moe train --lora``) with the peft library.

Adapters go onto the Linear layers named by ``--lora-targets`` inside the parts named by
``--lora-parts`` (default: the VLM and the action expert, as openpi's ``gemma_2b_lora`` /
``gemma_300m_lora``); every base weight of those parts is frozen.  The rest trains as without
LoRA: the camera MoE, the action and time projections, and SigLIP unless ``--freeze vision``.

A LoRA training checkpoint is a normal checkpoint directory whose ``model.safetensors`` holds the
*base* weights (unmerged, so that ``--resume`` is exact) plus, in ``lora/``, peft's own
``adapter_config.json`` and ``adapter_model.safetensors``.  ``Policy.load`` refuses such a
directory (it would drop the adapters); ``pi05-moe export`` merges them into a normal
checkpoint that loads without peft.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

ADAPTER_DIR = 'lora'
ADAPTER_NAME = 'default'
# part -> its module prefix in Pi05Model (the same parts as --freeze)
PART_PREFIX = {'vision': 'vision.vision_tower', 'vlm': 'gemma.language_model',
               'expert': 'gemma.action_expert'}


def target_regex(parts: tuple[str, ...], targets: list[str]) -> str:
    """peft ``target_modules`` as one regex (peft full-matches it against module names): the
    Linear layers called one of ``targets`` under one of ``parts``."""
    prefixes = '|'.join(re.escape(PART_PREFIX[p]) for p in parts)
    names = '|'.join(re.escape(t) for t in targets)
    return rf'({prefixes})\..*\.({names})'


def lora_config(cfg: Any) -> Any:
    """The peft ``LoraConfig`` of a ``TrainConfig``."""
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=target_regex(cfg.lora_part_names, cfg.lora_targets),
                      bias='none')


def has_lora(model: torch.nn.Module) -> bool:
    return any('.lora_A.' in name for name, _ in model.named_parameters())


def has_adapters(ckpt: str | Path) -> bool:
    """Whether a checkpoint directory holds LoRA adapters (a training checkpoint of --lora)."""
    return (Path(ckpt) / ADAPTER_DIR / 'adapter_config.json').is_file()


def add_lora(model: torch.nn.Module, cfg: Any) -> int:
    """Inject fresh adapters (peft's init: A random, B zero, so the outputs do not change).
    Returns the number of layers adapted; ValueError when the targets match nothing."""
    from peft import inject_adapter_in_model

    try:
        inject_adapter_in_model(lora_config(cfg), model, adapter_name=ADAPTER_NAME)
    except ValueError as exc:  # peft: "Target modules ... not found in the base model"
        raise ValueError(f'--lora-targets {cfg.lora_targets} under --lora-parts '
                         f'{cfg.lora_parts!r}: {" ".join(str(exc).split())[:300]}') from None
    mark_trainable(model, cfg.lora_part_names)
    return sum(1 for n, _ in model.named_modules() if n.endswith('.lora_A'))


def mark_trainable(model: torch.nn.Module, parts: tuple[str, ...]) -> None:
    """peft freezes every non-adapter parameter; only the adapted parts' base weights should
    be: the camera MoE and the other parts train in full (``--freeze`` applies afterwards)."""
    prefixes = tuple(f'{PART_PREFIX[p]}.' for p in parts)
    for name, param in model.named_parameters():
        param.requires_grad_('.lora_' in name or not name.startswith(prefixes))


def base_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights without adapters, under the plain names (``q_proj.weight``, not
    ``q_proj.base_layer.weight``): what ``Policy.load`` reads."""
    return {k.replace('.base_layer.', '.'): v for k, v in model.state_dict().items()
            if '.lora_' not in k}


def save_adapters(model: torch.nn.Module, ckpt: str | Path, weights: bool = True) -> Path:
    """``<ckpt>/lora/``: peft's adapter_config.json and adapter_model.safetensors (not in a
    sharded checkpoint, whose shards hold the adapters too)."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    d = Path(ckpt) / ADAPTER_DIR
    d.mkdir(parents=True, exist_ok=True)
    model.peft_config[ADAPTER_NAME].save_pretrained(str(d))
    if not weights:
        return d
    state = get_peft_model_state_dict(model, adapter_name=ADAPTER_NAME)
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()},
              str(d / 'adapter_model.safetensors'))
    return d


def load_adapters(model: torch.nn.Module, ckpt: str | Path, weights: bool = True) -> None:
    """Inject the adapters saved in ``<ckpt>/lora/``, with their saved weights unless not
    ``weights`` (a sharded checkpoint's come with its shards)."""
    from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    d = Path(ckpt) / ADAPTER_DIR
    config = LoraConfig.from_pretrained(str(d))
    inject_adapter_in_model(config, model, adapter_name=ADAPTER_NAME)
    if not weights:
        return
    state = load_file(str(d / 'adapter_model.safetensors'))
    result = set_peft_model_state_dict(model, state, adapter_name=ADAPTER_NAME)
    want = {n for n, _ in model.named_parameters() if '.lora_' in n}
    loaded = {k.replace('.weight', f'.{ADAPTER_NAME}.weight') for k in state}
    if result.unexpected_keys or want != loaded:
        raise ValueError(f'{d}: adapters do not fit the model: unexpected '
                         f'{sorted(result.unexpected_keys)[:5]}, missing '
                         f'{sorted(want - loaded)[:5]}')


def merge_adapters(model: torch.nn.Module) -> None:
    """Fold every adapter into its base weight (peft's ``merge``: W += scale * B @ A) and put
    the plain Linear back, so the model is an ordinary ``Pi05Model`` again."""
    from peft.tuners.lora import LoraLayer

    if not has_lora(model):
        return
    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge(safe_merge=True, adapter_names=[ADAPTER_NAME])
            parent, _, child = name.rpartition('.')
            setattr(model.get_submodule(parent), child, module.get_base_layer())
    if hasattr(model, 'peft_config'):
        del model.peft_config
