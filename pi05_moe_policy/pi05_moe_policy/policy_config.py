"""A policy's two configs, the network's and the data's, and how presets and checkpoints build
them (openpi's ``policy_config``).

    cfg = make_policy_config('tiny', robot_state_dim=7, use_camera_moe=False)
    cfg.model   # ModelConfig: what the checkpoint's tensors must match
    cfg.data    # DataConfig: cameras, robot, prompt and tokenizer

Overrides keep the flat names of the one config this replaced; each goes to the config that
owns it.  ``config_from_checkpoint`` reads a checkpoint's ``config.json``, migrating the old
flat layout (``pi05_moe/1``) on the fly.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pi05_moe_policy.model.config import ModelConfig
from pi05_moe_policy.model.factory import (
    NETWORK_PRESETS,
    NetworkConfig,
    config_fields,
    make_network_config,
    network_config_from_dict,
)
from pi05_moe_policy.model.rt1.config import RT1Config
from pi05_moe_policy.params import strict_from_dict
from pi05_moe_policy.transforms.data_config import DATA_PRESETS, DataConfig

CHECKPOINT_FORMAT = 'pi05_moe/2'  # config.json: {format, model: {...}, data: {...}}
OLD_FLAT_FORMAT = 'pi05_moe/1'  # config.json: {format, config: {every field, flat}}
# Fields of the old flat config that were the training loss; they now live in TrainConfig
# (pi05_moe_training.train.config) and are dropped from a migrated policy config.
OLD_LOSS_FIELDS = ('camera_routing_loss_weight', 'camera_routing_loss_warmup_steps',
                   'camera_routing_loss_ramp_steps', 'camera_routing_focal_alpha',
                   'camera_routing_focal_gamma', 'time_beta_alpha', 'time_beta_beta')
MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig))
RT1_FIELDS = config_fields(RT1Config)  # the RT-1 baseline's network (model/rt1/config.py)
DATA_FIELDS = tuple(f.name for f in dataclasses.fields(DataConfig))


@dataclasses.dataclass
class PolicyConfig:
    """The network (``model``: PI0.5's ``ModelConfig`` or RT-1's ``RT1Config``) and the data
    it is run on (``data``), checked against each other: real dims fit the padded ones, and one
    expert per gated camera."""

    model: NetworkConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = network_config_from_dict(self.model)
        if isinstance(self.data, dict):
            self.data = DataConfig.from_dict(self.data)
        m, d = self.model, self.data
        if d.robot_state_dim > m.max_state_dim:
            _fail(d, 'robot_state_dim', f'must be <= ModelConfig.max_state_dim={m.max_state_dim}')
        if d.robot_action_dim > m.action_dim:
            _fail(d, 'robot_action_dim', f'must be <= ModelConfig.action_dim={m.action_dim}')
        if m.use_camera_moe and d.num_experts != m.num_experts:
            _fail(d, 'expert_cameras', f'names {d.num_experts} cameras but the network has '
                  f'ModelConfig.num_experts={m.num_experts} experts')

    def to_dict(self) -> dict[str, Any]:
        return {'model': self.model.to_dict(), 'data': self.data.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicyConfig:
        return strict_from_dict(cls, data)

    def replace(self, **overrides: Any) -> PolicyConfig:
        """A validated copy with flat field overrides, each routed to the config owning it."""
        model, data = split_overrides(overrides, config_fields(type(self.model)))
        if 'expert_cameras' in data and 'num_experts' not in model:
            model['num_experts'] = len(data['expert_cameras'])
        return PolicyConfig(self.model.replace(**model), self.data.replace(**data))


def _fail(cfg: Any, field: str, msg: str) -> None:
    raise ValueError(f'{type(cfg).__name__}.{field}={getattr(cfg, field)!r}: {msg}')


def split_overrides(overrides: dict[str, Any], model_fields: tuple[str, ...] = MODEL_FIELDS
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Flat overrides -> (network config fields, DataConfig fields); an unknown name raises
    ValueError listing the known ones.  ``model_fields``: the network's (default PI0.5's
    ModelConfig; RT1_FIELDS for RT-1)."""
    unknown = sorted(set(overrides) - set(model_fields) - set(DATA_FIELDS))
    if unknown:
        name = 'RT1Config' if model_fields == RT1_FIELDS else 'ModelConfig'
        raise ValueError(f'unknown config fields {unknown}; {name} fields: '
                         f'{sorted(model_fields)}; DataConfig fields: {sorted(DATA_FIELDS)}')
    return ({k: v for k, v in overrides.items() if k in model_fields},
            {k: v for k, v in overrides.items() if k in DATA_FIELDS})


def make_policy_config(preset: str, **overrides: Any) -> PolicyConfig:
    """A preset's two configs with flat overrides (``Policy.from_preset``'s names).  The RT-1
    presets (``rt1``, ``rt1_base``) give an ``RT1Config`` network."""
    if preset not in NETWORK_PRESETS:
        raise ValueError(f'unknown preset {preset!r}; known presets: {sorted(NETWORK_PRESETS)}')
    base = PolicyConfig(make_network_config(preset), DataConfig(**DATA_PRESETS[preset]))
    return base.replace(**overrides) if overrides else base


def migrate_flat_config(flat: dict[str, Any]) -> PolicyConfig:
    """The old one-config layout -> PolicyConfig.  The loss fields (OLD_LOSS_FIELDS) are
    dropped: a policy no longer carries its training loss (TrainConfig and the checkpoint's
    train_config.json do).  The expert count comes from the camera roles."""
    flat = {k: v for k, v in flat.items() if k not in OLD_LOSS_FIELDS}
    model, data = split_overrides(flat)
    data.setdefault('preprocessing', 'v1')  # what these checkpoints were trained with
    model.setdefault('num_experts', len(data.get('expert_cameras', DataConfig.expert_cameras)))
    return PolicyConfig(ModelConfig.from_dict(model), DataConfig.from_dict(data))


def config_from_checkpoint(meta: dict[str, Any], where: str = 'config.json') -> PolicyConfig:
    """A checkpoint's ``config.json`` (either format) -> PolicyConfig."""
    fmt = meta.get('format')
    if fmt == CHECKPOINT_FORMAT:
        body = {k: v for k, v in meta.items() if k != 'format'}
        if isinstance(body.get('data'), dict) and 'preprocessing' not in body['data']:
            # saved before DataConfig.preprocessing existed: trained with the first recipe
            body['data'] = {**body['data'], 'preprocessing': 'v1'}
        return PolicyConfig.from_dict(body)
    if fmt == OLD_FLAT_FORMAT:
        return migrate_flat_config(meta['config'])
    raise ValueError(f'{where}: format {fmt!r}, expected {CHECKPOINT_FORMAT!r} (or the older '
                     f'{OLD_FLAT_FORMAT!r})')


def checkpoint_meta(cfg: PolicyConfig) -> dict[str, Any]:
    """What ``Policy.save`` writes to ``config.json``."""
    return {'format': CHECKPOINT_FORMAT, **cfg.to_dict()}
