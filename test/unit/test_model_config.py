"""ModelConfig / DataConfig / PolicyConfig: presets, validation errors that name the field and
value, parameter counts, override routing and the old flat checkpoint config's migration."""

import pytest
import torch

from pi05_moe_policy.model import ModelConfig, Pi05Model, make_config
from pi05_moe_policy.params import strict_from_dict
from pi05_moe_policy.policy_config import (
    OLD_LOSS_FIELDS,
    PolicyConfig,
    config_from_checkpoint,
    make_policy_config,
    migrate_flat_config,
)
from pi05_moe_policy.transforms.data_config import DataConfig

# Parameters of the pi05_base model built on the meta device: SigLIP So400m/14 (412.4M) +
# projector + PaliGemma gemma_2b (2.51B incl. the 257152x2048 embedding) + gemma_300m expert
# with adaRMS + the camera MoE (router 512->256->2, gammas, 3*2048->2048 fusion).
PI05_BASE_PARAMS = 3_368_270_866


def test_tiny_preset_has_the_specified_dims():
    both = make_policy_config('tiny')
    c, d = both.model, both.data
    assert (c.vlm_width, c.vlm_depth, c.vlm_mlp_dim, c.vlm_num_heads, c.vlm_num_kv_heads,
            c.vlm_head_dim) == (256, 2, 512, 2, 1, 64)
    assert (c.expert_width, c.expert_depth, c.expert_mlp_dim, c.expert_num_heads,
            c.expert_num_kv_heads, c.expert_head_dim) == (256, 2, 512, 2, 1, 64)
    assert (c.vision_width, c.vision_depth, c.vision_mlp_dim, c.vision_num_heads,
            c.vision_patch_size, c.image_size) == (256, 2, 512, 4, 14, 224)
    assert c.num_image_tokens == 256
    assert (c.action_horizon, c.action_dim, c.num_steps) == (50, 32, 10)
    assert d.base_camera == 'wrist' and d.expert_cameras == ('l515', 'thermal')
    assert c.use_camera_moe and c.camera_router_hidden_dims == (512, 256)
    assert c.num_experts == d.num_experts == 2 and d.max_token_len == 48


def test_pi05_base_parameter_count_on_meta_device():
    cfg = make_config('pi05_base')
    assert (cfg.vlm_width, cfg.vlm_depth, cfg.vlm_mlp_dim, cfg.vlm_num_heads,
            cfg.vlm_num_kv_heads, cfg.vlm_head_dim) == (2048, 18, 16384, 8, 1, 256)
    assert (cfg.vision_width, cfg.vision_depth, cfg.vision_mlp_dim,
            cfg.vision_num_heads) == (1152, 27, 4304, 16)
    assert (cfg.expert_width, cfg.expert_depth, cfg.expert_mlp_dim) == (1024, 18, 4096)
    with torch.device('meta'):
        model = Pi05Model(cfg)
    n = sum(p.numel() for p in model.parameters())
    assert n == PI05_BASE_PARAMS
    vision = sum(p.numel() for p in model.vision.vision_tower.parameters())
    assert 400e6 < vision < 430e6  # So400m
    expert = sum(p.numel() for p in model.gemma.action_expert.parameters())
    assert 300e6 < expert < 450e6  # gemma_300m + adaRMS dense layers


def test_small_preset_builds_and_is_small():
    cfg = make_config('small')
    with torch.device('meta'):
        model = Pi05Model(cfg)
    assert sum(p.numel() for p in model.parameters()) < 40e6


def test_gr00t_camera_mapping_is_config_only():
    c = make_policy_config('tiny', base_camera='l515',
                           expert_cameras=('left_wrist', 'right_wrist'), thermal_cameras=())
    assert c.data.camera_names == ('l515', 'left_wrist', 'right_wrist')
    assert c.data.num_experts == c.model.num_experts == 2
    three = make_policy_config('tiny', expert_cameras=('a', 'b', 'c'), thermal_cameras=())
    assert three.model.num_experts == 3  # the network follows the camera roles


def test_overrides_and_round_trip():
    c = make_policy_config('tiny', robot_state_dim=7, robot_action_dim=7,
                           joint_names=[f'j{i}' for i in range(7)], vlm_depth=1,
                           expert_depth=1)
    assert c.data.joint_names == tuple(f'j{i}' for i in range(7)) and c.model.vlm_depth == 1
    assert PolicyConfig.from_dict(c.to_dict()) == c
    assert ModelConfig.from_dict(c.model.to_dict()) == c.model
    assert DataConfig.from_dict(c.data.to_dict()) == c.data
    assert make_policy_config('small').data.max_token_len == 64
    assert make_policy_config('pi05_base').data.tokenizer_type == 'hf'


def test_overrides_go_to_the_config_that_owns_them():
    c = make_policy_config('tiny', use_camera_moe=False, thermal_colormap='ironbow')
    assert not c.model.use_camera_moe and c.data.thermal_colormap == 'ironbow'
    assert not hasattr(c.model, 'thermal_colormap') and not hasattr(c.data, 'use_camera_moe')
    with pytest.raises(ValueError, match=r"unknown config fields \['no_such'\].*vlm_width.*"
                                         r'base_camera'):
        make_policy_config('tiny', no_such=1)
    for loss_field in OLD_LOSS_FIELDS:  # the loss is the training run's (TrainConfig)
        with pytest.raises(ValueError, match=loss_field):
            make_policy_config('tiny', **{loss_field: 0.5})


def test_strict_from_dict_is_one_helper_for_every_config():
    from pi05_moe_training.train.config import TrainConfig

    for cls in (ModelConfig, DataConfig, TrainConfig):
        with pytest.raises(ValueError, match=rf"{cls.__name__}: unknown fields \['bogus'\]; "
                                             r'known fields: \[.*\]'):
            cls.from_dict({'bogus': 1})
    assert strict_from_dict(DataConfig, {'robot_state_dim': 3, 'robot_action_dim': 3}) == \
        DataConfig(robot_state_dim=3, robot_action_dim=3)


def _old_flat(**changes):
    """An old (pi05_moe/1) flat config.json dict: every field of both configs and the loss."""
    c = make_policy_config('tiny', robot_state_dim=7, robot_action_dim=7)
    flat = {**c.model.to_dict(), **c.data.to_dict(), **changes}
    del flat['num_experts']  # the old layout had no expert count: the roles gave it
    flat.update(camera_routing_loss_weight=0.3, camera_routing_loss_warmup_steps=10,
                camera_routing_loss_ramp_steps=20, camera_routing_focal_alpha=0.25,
                camera_routing_focal_gamma=2.0, time_beta_alpha=1.5, time_beta_beta=1.0)
    return c, flat


def test_old_flat_config_migrates_and_drops_the_loss():
    c, flat = _old_flat()
    assert set(OLD_LOSS_FIELDS) <= set(flat)
    migrated = config_from_checkpoint({'format': 'pi05_moe/1', 'config': flat})
    assert migrated == c == migrate_flat_config(flat)
    _, three = _old_flat(expert_cameras=['a', 'b', 'c'], thermal_cameras=[])
    assert migrate_flat_config(three).model.num_experts == 3
    with pytest.raises(ValueError, match="unknown config fields \\['typo'\\]"):
        migrate_flat_config({**flat, 'typo': 1})
    with pytest.raises(ValueError, match="format 'pi05_moe/9'"):
        config_from_checkpoint({'format': 'pi05_moe/9', 'config': flat})


@pytest.mark.parametrize('owner, field, value, words', [
    ('ModelConfig', 'vlm_width', 0, 'positive int'),
    ('ModelConfig', 'expert_depth', 3, 'vlm_depth'),
    ('ModelConfig', 'expert_head_dim', 32, 'vlm_head_dim'),
    ('ModelConfig', 'camera_router_input_type', 'image', "'prompt', 'state', 'prompt_state'"),
    ('DataConfig', 'robot_state_dim', 40, 'max_state_dim'),
    ('DataConfig', 'robot_action_dim', 33, 'ModelConfig.action_dim=32'),
    ('ModelConfig', 'camera_router_temperature', 0.0, '> 0'),
    ('ModelConfig', 'vision_patch_size', 15, 'image_size'),
    ('DataConfig', 'expert_cameras', ('wrist',), 'unique'),
    ('DataConfig', 'thermal_cameras', ('ir',), 'not configured'),
    ('DataConfig', 'thermal_window_ck', (30000.0, 20000.0), 'low < high'),
    ('DataConfig', 'tokenizer_type', 'sentencepiece', 'word_hash'),
    ('DataConfig', 'joint_names', ('a', 'b'), 'robot_action_dim'),
    ('DataConfig', 'expert_cameras', 'l515', 'list/tuple'),
    ('DataConfig', 'thermal_window_ck', ('cold', 'hot'), 'two numbers'),
    ('DataConfig', 'max_token_len', 0, 'positive int'),
    ('DataConfig', 'control_period_s', -0.1, '> 0'),
])
def test_validation_errors_name_the_field_and_quote_the_value(owner, field, value, words):
    with pytest.raises(ValueError) as e:
        make_policy_config('tiny', **{field: value})
    msg = str(e.value)
    assert f'{owner}.{field}=' in msg and repr(value)[:6] in msg and words in msg


def test_expert_count_must_match_the_camera_roles():
    with pytest.raises(ValueError, match=r'DataConfig.expert_cameras=.*names 3 cameras.*'
                                         r'num_experts=2'):
        make_policy_config('tiny', expert_cameras=('a', 'b', 'c'), thermal_cameras=(),
                           num_experts=2)


def test_moe_needs_an_expert_and_unknown_fields_are_named():
    with pytest.raises(ValueError, match='expert_cameras'):
        make_policy_config('tiny', expert_cameras=(), thermal_cameras=())
    make_policy_config('tiny', expert_cameras=(), thermal_cameras=(), use_camera_moe=False)
    with pytest.raises(ValueError, match="'use_moe'"):
        make_policy_config('tiny', use_moe=False)
    with pytest.raises(ValueError, match="'use_moe'"):
        make_config('tiny', use_moe=False)
    with pytest.raises(ValueError, match="'huge'"):
        make_config('huge')
    with pytest.raises(ValueError, match="'huge'"):
        make_policy_config('huge')
