"""ModelConfig: presets, validation errors that name the field and value, parameter counts."""

import pytest
import torch

from pi05_moe_policy.model import ModelConfig, Pi05Model, make_config

# Parameters of the pi05_base model built on the meta device: SigLIP So400m/14 (412.4M) +
# projector + PaliGemma gemma_2b (2.51B incl. the 257152x2048 embedding) + gemma_300m expert
# with adaRMS + the camera MoE (router 512->256->2, gammas, 3*2048->2048 fusion).
PI05_BASE_PARAMS = 3_368_270_866


def test_tiny_preset_has_the_specified_dims():
    c = make_config('tiny')
    assert (c.vlm_width, c.vlm_depth, c.vlm_mlp_dim, c.vlm_num_heads, c.vlm_num_kv_heads,
            c.vlm_head_dim) == (256, 2, 512, 2, 1, 64)
    assert (c.expert_width, c.expert_depth, c.expert_mlp_dim, c.expert_num_heads,
            c.expert_num_kv_heads, c.expert_head_dim) == (256, 2, 512, 2, 1, 64)
    assert (c.vision_width, c.vision_depth, c.vision_mlp_dim, c.vision_num_heads,
            c.vision_patch_size, c.image_size) == (256, 2, 512, 4, 14, 224)
    assert c.num_image_tokens == 256
    assert (c.action_horizon, c.action_dim, c.num_steps) == (50, 32, 10)
    assert c.base_camera == 'wrist' and c.expert_cameras == ('l515', 'thermal')
    assert c.use_camera_moe and c.camera_router_hidden_dims == (512, 256)
    assert c.camera_routing_loss_weight == 0.1
    assert (c.camera_routing_focal_alpha, c.camera_routing_focal_gamma) == (0.25, 2.0)


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
    c = make_config('tiny', base_camera='l515', expert_cameras=('left_wrist', 'right_wrist'),
                    thermal_cameras=())
    assert c.camera_names == ('l515', 'left_wrist', 'right_wrist') and c.num_experts == 2


def test_overrides_and_round_trip():
    c = make_config('tiny', robot_state_dim=7, robot_action_dim=7,
                    joint_names=[f'j{i}' for i in range(7)])
    assert c.joint_names == tuple(f'j{i}' for i in range(7))
    assert ModelConfig.from_dict(c.to_dict()) == c


@pytest.mark.parametrize('field, value, words', [
    ('vlm_width', 0, 'positive int'),
    ('expert_depth', 3, 'vlm_depth'),
    ('expert_head_dim', 32, 'vlm_head_dim'),
    ('camera_router_input_type', 'image', "'prompt', 'state', 'prompt_state'"),
    ('robot_state_dim', 40, 'max_state_dim'),
    ('camera_router_temperature', 0.0, '> 0'),
    ('vision_patch_size', 15, 'image_size'),
    ('expert_cameras', ('wrist',), 'unique'),
    ('thermal_cameras', ('ir',), 'not configured'),
    ('thermal_window_ck', (30000.0, 20000.0), 'low < high'),
    ('tokenizer_type', 'sentencepiece', 'word_hash'),
    ('joint_names', ('a', 'b'), 'robot_action_dim'),
    ('expert_cameras', 'l515', 'list/tuple'),
    ('thermal_window_ck', ('cold', 'hot'), 'two numbers'),
])
def test_validation_errors_name_the_field_and_quote_the_value(field, value, words):
    with pytest.raises(ValueError) as e:
        make_config('tiny', **{field: value})
    msg = str(e.value)
    assert f'ModelConfig.{field}=' in msg and repr(value)[:6] in msg and words in msg


def test_moe_needs_an_expert_and_unknown_fields_are_named():
    with pytest.raises(ValueError, match='expert_cameras'):
        make_config('tiny', expert_cameras=(), thermal_cameras=())
    make_config('tiny', expert_cameras=(), thermal_cameras=(), use_camera_moe=False)
    with pytest.raises(ValueError, match="'use_moe'"):
        make_config('tiny', use_moe=False)
    with pytest.raises(ValueError, match="'huge'"):
        make_config('huge')


def test_routing_loss_weight_schedule():
    c = make_config('tiny', camera_routing_loss_warmup_steps=100,
                    camera_routing_loss_ramp_steps=100)
    assert c.routing_loss_weight_at(50) == 0.0
    assert c.routing_loss_weight_at(150) == pytest.approx(0.05)
    assert c.routing_loss_weight_at(10_000) == pytest.approx(0.1)
    assert c.routing_loss_weight_at(None) == pytest.approx(0.1)
