"""Pure training helpers: lr and routing-weight schedules, TrainConfig and its CLI flags."""

import argparse
import math
import warnings

import pytest

from pi05_moe_policy.policy_config import make_policy_config
from pi05_moe_training.config_cli import add_config_arguments, config_from_args
from pi05_moe_training.train.config import TrainConfig
from pi05_moe_training.train.schedules import get_lr, routing_loss_weight, warmup_ramp


def reference_lr(step, lr, min_lr, warmup, max_steps):
    """The textbook formula, written independently of schedules.get_lr."""
    if step < warmup:
        return lr * (step + 1) / warmup
    if step >= max_steps:
        return min_lr
    t = (step - warmup) / (max_steps - warmup)
    return min_lr + (lr - min_lr) * (1 + math.cos(math.pi * t)) / 2


def test_lr_warms_up_linearly_then_follows_the_cosine_to_min_lr():
    cfg = TrainConfig(lr=1e-3, min_lr=1e-5, warmup_steps=10, max_steps=110)
    lrs = [get_lr(s, cfg) for s in range(130)]
    assert lrs[0] == pytest.approx(1e-4)
    assert lrs[9] == pytest.approx(1e-3)  # the peak at the end of warm-up
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:10]))
    assert all(a >= b for a, b in zip(lrs[10:110], lrs[11:110]))  # monotone decay
    assert lrs[60] == pytest.approx((1e-3 + 1e-5) / 2)  # half-way through the cosine
    assert lrs[110:] == [1e-5] * 20
    for s in range(130):
        assert lrs[s] == pytest.approx(reference_lr(s, 1e-3, 1e-5, 10, 110))


def test_lr_without_warmup_starts_at_the_peak():
    cfg = TrainConfig(lr=2e-4, min_lr=0.0, warmup_steps=0, max_steps=50)
    assert get_lr(0, cfg) == pytest.approx(2e-4)
    assert get_lr(49, cfg) == pytest.approx(2e-4 * (1 + math.cos(math.pi * 49 / 50)) / 2)


def test_routing_weight_is_zero_during_warmup_then_ramps_linearly():
    cfg = TrainConfig(routing_loss_weight=0.2, routing_warmup_steps=100, routing_ramp_steps=50)
    assert [routing_loss_weight(s, cfg) for s in (0, 50, 99, 100)] == [0.0] * 4
    assert routing_loss_weight(125, cfg) == pytest.approx(0.1)
    assert routing_loss_weight(150, cfg) == pytest.approx(0.2)
    assert routing_loss_weight(10_000, cfg) == pytest.approx(0.2)
    no_ramp = TrainConfig(routing_loss_weight=0.1, routing_warmup_steps=5, routing_ramp_steps=0)
    assert [routing_loss_weight(s, no_ramp) for s in (4, 5)] == [0.0, 0.1]


def test_warmup_ramp_schedule():
    """The routing-loss schedule (moved here from the model config, which no longer carries
    the loss)."""
    assert warmup_ramp(50, 0.1, 100, 100) == 0.0
    assert warmup_ramp(150, 0.1, 100, 100) == pytest.approx(0.05)
    assert warmup_ramp(10_000, 0.1, 100, 100) == pytest.approx(0.1)
    assert warmup_ramp(100, 0.1, 100, 0) == pytest.approx(0.1)


def test_the_loss_settings_reach_compute_loss():
    cfg = TrainConfig(preset='tiny', routing_focal_alpha=0.5, routing_focal_gamma=1.0,
                      time_beta_alpha=2.0, time_beta_beta=3.0, rtc_max_delay=4)
    assert cfg.loss_kwargs(0.3) == {'routing_loss_weight': 0.3, 'focal_alpha': 0.5,
                                    'focal_gamma': 1.0, 'time_beta': (2.0, 3.0),
                                    'rtc_max_delay': 4, 'rtc_zero_delay_prob': 0.0}
    policy_cfg = TrainConfig(preset='tiny', routing_focal_alpha=0.5).model_config()
    assert policy_cfg == make_policy_config('tiny')  # the loss is not part of the policy


@pytest.mark.parametrize('field, value, quoted', [
    ('lr', -1.0, '-1.0'), ('batch_size', 0, '0'), ('min_lr', 1.0, '1.0'),
    ('device', 'tpu', "'tpu'"), ('preset', 'huge', "'huge'"), ('beta2', 1.0, '1.0'),
    ('model_overrides', {'no_such_field': '1'}, 'no_such_field'),
    ('model_overrides', {'camera_routing_loss_weight': '1'}, 'camera_routing_loss_weight'),
    ('routing_focal_alpha', -1.0, '-1.0'), ('time_beta_alpha', 0.0, '0.0'),
])
def test_bad_values_are_rejected_and_quoted(field, value, quoted):
    with pytest.raises(ValueError, match=f'TrainConfig.{field}=.*{quoted}'):
        TrainConfig(**{field: value})


def parse(argv):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, TrainConfig, required=('dataset', 'out'))
    return config_from_args(TrainConfig, parser.parse_args(argv))


def test_cli_flags_are_generated_from_the_config():
    cfg = parse(['--dataset', 'd', '--out', 'o', '--batch-size', '4', '--no-bf16', '--resume',
                 '--lr', '1e-3', '--model-overrides', 'use_camera_moe=false', 'image_size=112',
                 'thermal_colormap=ironbow'])
    assert (cfg.dataset, cfg.out, cfg.batch_size, cfg.bf16, cfg.resume, cfg.lr) == \
        ('d', 'o', 4, False, True, 1e-3)
    policy_cfg = cfg.model_config()
    assert policy_cfg.model.use_camera_moe is False and policy_cfg.model.image_size == 112
    assert policy_cfg.data.thermal_colormap == 'ironbow'  # a bare string needs no JSON quotes
    defaults = parse(['--dataset', 'd', '--out', 'o'])
    assert defaults == TrainConfig(dataset='d', out='o')


def test_cli_errors_name_the_flag_or_field():
    with pytest.raises(SystemExit):
        parse(['--out', 'o'])  # --dataset is required
    with pytest.raises(ValueError, match='KEY=VALUE'):
        parse(['--dataset', 'd', '--out', 'o', '--model-overrides', 'image_size'])
    with pytest.raises(ValueError, match='TrainConfig.warmup_steps=-3'):
        parse(['--dataset', 'd', '--out', 'o', '--warmup-steps', '-3'])
    with pytest.raises(ValueError, match='TrainConfig.dataset=.*--dataset'):
        TrainConfig(out='o').check_paths()


def test_absolute_joints_that_name_no_action_are_reported():
    robot = {'joint_names': ['waist', 'elbow', 'claw'], 'robot_action_dim': 3,
             'robot_state_dim': 3}
    with pytest.warns(UserWarning, match=r"absolute_joints \['gripper'\]: no action"):
        mask = TrainConfig().delta_action_mask(robot)
    assert mask == [True, True, True]
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert TrainConfig(absolute_joints=['claw']).delta_action_mask(robot) == [
            True, True, False]
