"""Which network a preset or a checkpoint's config names, and how to build it: PI0.5
(``ModelConfig`` -> ``Pi05Model``) or the RT-1 baseline (``RT1Config`` -> ``RT1Model``).

A config dict with ``"architecture": "rt1"`` is RT-1's; one without is PI0.5's (every
checkpoint saved before RT-1 existed).  Both models answer ``compute_loss`` and
``sample_actions`` on the same batch, so nothing above this dispatch needs to know which it
holds.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from pi05_moe_policy.model.config import PRESETS, ModelConfig, make_config
from pi05_moe_policy.model.rt1.config import ARCHITECTURE as RT1
from pi05_moe_policy.model.rt1.config import RT1_PRESETS, RT1Config, make_rt1_config

NetworkConfig = ModelConfig | RT1Config
NETWORK_PRESETS: tuple[str, ...] = (*PRESETS, *RT1_PRESETS)


def config_class(preset_or_config: Any) -> type:
    """The config class of a preset name, a config or a config dict."""
    if isinstance(preset_or_config, str):
        return RT1Config if preset_or_config in RT1_PRESETS else ModelConfig
    if isinstance(preset_or_config, dict):
        return RT1Config if preset_or_config.get('architecture') == RT1 else ModelConfig
    return type(preset_or_config)


def config_fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def make_network_config(preset: str, **overrides: Any) -> NetworkConfig:
    """A preset's network config (any of NETWORK_PRESETS) with field overrides."""
    if preset in RT1_PRESETS:
        return make_rt1_config(preset, **overrides)
    if preset not in PRESETS:
        raise ValueError(f'unknown preset {preset!r}; known presets: {sorted(NETWORK_PRESETS)}')
    return make_config(preset, **overrides)


def network_config_from_dict(data: dict[str, Any]) -> NetworkConfig:
    return config_class(data).from_dict(data)


def build_model(config: NetworkConfig) -> nn.Module:
    """The network of ``config`` (random init; on the meta device inside ``torch.device``)."""
    if isinstance(config, RT1Config):
        from pi05_moe_policy.model.rt1.model import RT1Model

        return RT1Model(config)
    from pi05_moe_policy.model.pi05 import Pi05Model

    return Pi05Model(config)
