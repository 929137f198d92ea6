"""Real-time chunking (#15 item 3): test-time guidance, training-time RTC (loss and inference),
the prefix schedule, the delay estimator and the committed chunk, on the tiny preset (CPU)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from test_model_core import make_batch, perturb_adarms

from pi05_moe_policy import Policy
from pi05_moe_policy.core.rtc import (
    CommittedChunk,
    DelayEstimator,
    RtcConfig,
    RtcPlanner,
    executor_executes,
)
from pi05_moe_policy.model import ModelConfig, Pi05Model, make_config
from pi05_moe_policy.model.rtc import guidance_weight, prefix_weights, sample_delays, token_times
from pi05_moe_training.train.config import TrainConfig

DELAY, COMMITTED = 5, 20
TOL = 0.1  # normalised units (actions span about [-1, 1]): the guided rows' largest deviation
ROBOT_DIMS = 7


@pytest.fixture(scope='module')
def setup():
    """A tiny model whose expert depends on time and on the other rows (as after training),
    a batch of one, fixed noise, and a committed prefix far from the unguided chunk."""
    torch.manual_seed(0)
    cfg = make_config('tiny', rtc_max_delay=8)
    model = Pi05Model(cfg).eval()
    perturb_adarms(model)
    batch = make_batch(cfg, b=1)
    del batch['actions']
    batch['action_dim_mask'] = (torch.arange(cfg.action_dim) < ROBOT_DIMS)[None]  # (1, 32)
    g = torch.Generator().manual_seed(3)
    noise = torch.randn(1, cfg.action_horizon, cfg.action_dim, generator=g)
    y = torch.rand(1, COMMITTED, cfg.action_dim, generator=g) * 2 - 1  # (1, d_max, A)
    plain, _ = model.sample_actions(batch, noise=noise)
    return model, batch, noise, y, plain


def deviation(actions, y, rows):
    return (actions[0, rows, :ROBOT_DIMS] - y[0, rows, :ROBOT_DIMS]).abs().max().item()


# ---------------------------------------------------------------------------- test-time guidance
@pytest.mark.parametrize('use_kv_cache', [True, False])
def test_guidance_keeps_the_committed_prefix_and_without_it_the_chunk_does_not(
        setup, use_kv_cache):
    model, batch, noise, y, plain = setup
    guided, _ = model.sample_actions(batch, noise=noise, prefix_actions=y, prefix_len=DELAY,
                                     use_kv_cache=use_kv_cache)
    assert deviation(guided, y, slice(0, DELAY)) < TOL
    assert deviation(plain, y, slice(0, DELAY)) > 10 * TOL
    # Past the delay the weights decay: those rows are followed more loosely.
    assert deviation(guided, y, slice(0, DELAY)) < deviation(guided, y,
                                                             slice(DELAY, COMMITTED))


def test_rtc_mode_none_ignores_the_prefix(setup):
    model, batch, noise, y, plain = setup
    out, _ = model.sample_actions(batch, noise=noise, prefix_actions=y, prefix_len=DELAY,
                                  rtc_mode='none')
    torch.testing.assert_close(out, plain)


def test_a_malformed_prefix_is_refused(setup):
    model, batch, noise, y, _ = setup
    with pytest.raises(ValueError, match='prefix_len must lie in'):
        model.sample_actions(batch, noise=noise, prefix_actions=y, prefix_len=COMMITTED + 1)
    with pytest.raises(ValueError, match='prefix_actions must be'):
        model.sample_actions(batch, noise=noise, prefix_actions=y[..., :7], prefix_len=1)


def test_prefix_weights_follow_the_schedule():
    w = prefix_weights(10, 2, 6, 'linear')
    np.testing.assert_allclose(w.numpy(), [1, 1, 4 / 5, 3 / 5, 2 / 5, 1 / 5, 0, 0, 0, 0],
                               rtol=1e-6)
    e = prefix_weights(10, 2, 6, 'exp')
    c = np.array([4, 3, 2, 1]) / 5
    np.testing.assert_allclose(e.numpy()[2:6], c * np.expm1(c) / math.expm1(1), rtol=1e-6)
    assert e[:2].tolist() == [1, 1] and e[6:].tolist() == [0] * 4
    assert prefix_weights(10, 2, 6, 'zeros').tolist() == [1, 1] + [0] * 8
    assert prefix_weights(10, 2, 6, 'ones').tolist() == [1] * 6 + [0] * 4
    with pytest.raises(ValueError, match="got 'cosine'"):
        prefix_weights(10, 2, 6, 'cosine')


def test_guidance_weight_is_the_papers_clipped_at_the_maximum():
    assert guidance_weight(1.0, 5.0) == 5.0 and guidance_weight(0.0, 5.0) == 5.0
    tau = 0.5  # t = 0.5: (1 - tau) / (tau * r^2), r^2 = 0.25 / 0.5
    assert guidance_weight(0.5, 100.0) == pytest.approx((1 - tau) / (tau * 0.5))
    assert guidance_weight(0.5, 1.0) == 1.0


# ---------------------------------------------------------------------------- training-time RTC
def test_training_time_rtc_gives_the_prefix_time_zero_and_keeps_it_out_of_the_loss(setup):
    model = setup[0]
    cfg = model.config
    batch = make_batch(cfg, b=2, seed=4)
    g = torch.Generator().manual_seed(5)
    noise = torch.randn(2, cfg.action_horizon, cfg.action_dim, generator=g)
    time = torch.tensor([0.7, 0.4])
    delay = torch.tensor([3, 6])
    loss, info = model.compute_loss(batch, noise=noise, time=time, rtc_delay=delay)
    tt = info['token_time']  # (B, H)
    assert tt[0, :3].eq(0).all() and tt[0, 3:].eq(0.7).all()
    assert tt[1, :6].eq(0).all() and tt[1, 6:].eq(0.4).all()
    # New targets on the prefix rows (u = noise - a with x_t = a there): the loss is unchanged.
    other = noise.clone()
    other[0, :3] += 5.0
    other[1, :6] -= 5.0
    loss2, _ = model.compute_loss(batch, noise=other, time=time, rtc_delay=delay)
    assert loss2.item() == pytest.approx(loss.item(), rel=1e-5)
    # Without RTC the same change moves the loss: the check can fail.
    plain, _ = model.compute_loss(batch, noise=noise, time=time)
    plain2, _ = model.compute_loss(batch, noise=other, time=time)
    assert abs(plain2.item() - plain.item()) > 0.1


def test_training_time_rtc_draws_delays_up_to_the_maximum(setup):
    model = setup[0]
    batch = make_batch(model.config, b=2, seed=4)
    torch.manual_seed(0)
    seen = set()
    for _ in range(12):
        _, info = model.compute_loss(batch, rtc_max_delay=2)
        seen.update(info['rtc_delay'].tolist())
    assert seen == {0, 1, 2}
    _, info = model.compute_loss(batch)
    assert 'rtc_delay' not in info


def test_zero_delay_prob_mixes_in_chunks_without_a_prefix(setup):
    g = torch.Generator().manual_seed(0)
    plain = sample_delays(4000, 25, torch.device('cpu'), generator=g)
    mixed = sample_delays(4000, 25, torch.device('cpu'), generator=g, zero_prob=0.5)
    assert (plain == 0).float().mean().item() < 0.1  # U{0..25}: 1 in 26
    # 0.5 + 0.5 / 26 = 0.52 of the samples without a prefix; the others still reach 25
    assert abs((mixed == 0).float().mean().item() - 0.52) < 0.04
    assert mixed.max().item() == 25
    assert (sample_delays(64, 25, torch.device('cpu'), zero_prob=1.0) == 0).all()
    with pytest.raises(ValueError, match=re.escape('zero_prob must lie in [0, 1], got 1.5')):
        sample_delays(4, 25, torch.device('cpu'), zero_prob=1.5)
    # Every delay 0: the loss is the plain flow-matching loss, the same noise and times.
    model = setup[0]
    batch = make_batch(model.config, b=2, seed=4)
    noise = torch.randn(2, model.config.action_horizon, model.config.action_dim)
    time = torch.tensor([0.3, 0.8])
    loss, info = model.compute_loss(batch, noise=noise, time=time, rtc_max_delay=8,
                                    rtc_zero_delay_prob=1.0)
    ref, _ = model.compute_loss(batch, noise=noise, time=time)
    assert info['rtc_delay'].tolist() == [0, 0]
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)


def test_token_times():
    tt = token_times(torch.tensor([0.5, 0.25]), torch.tensor([0, 2]), 4)
    assert tt.tolist() == [[0.5] * 4, [0.0, 0.0, 0.25, 0.25]]


def test_training_mode_inference_feeds_the_prefix_clean(setup):
    model, batch, noise, y, plain = setup
    out, _ = model.sample_actions(batch, noise=noise, prefix_actions=y, prefix_len=DELAY,
                                  rtc_mode='training')
    torch.testing.assert_close(out[:, :DELAY], y[:, :DELAY])  # exactly the committed rows
    assert (out[:, DELAY:] - plain[:, DELAY:]).abs().max() > 1e-4  # they condition the rest
    deep, _ = model.sample_actions(batch, noise=noise, prefix_actions=y, prefix_len=COMMITTED,
                                   rtc_mode='training')  # at most rtc_max_delay=8 rows clean
    torch.testing.assert_close(deep[:, :8], y[:, :8])
    assert (deep[:, 8:COMMITTED] - y[:, 8:COMMITTED]).abs().max() > 10 * TOL


# ---------------------------------------------------------------------------- configs
def test_model_config_rtc_fields_default_to_guidance_and_quote_bad_values():
    old = make_config('tiny').to_dict()
    for key in ('rtc_mode', 'rtc_max_delay', 'rtc_schedule', 'rtc_max_guidance_weight'):
        old.pop(key)  # a checkpoint saved before RTC
    cfg = ModelConfig.from_dict(old)
    assert (cfg.rtc_mode, cfg.rtc_max_delay) == ('guidance', 0)
    with pytest.raises(ValueError, match=re.escape("ModelConfig.rtc_mode='inpaint'")):
        make_config('tiny', rtc_mode='inpaint')
    with pytest.raises(ValueError, match=re.escape('ModelConfig.rtc_max_delay=0')):
        make_config('tiny', rtc_mode='training')
    with pytest.raises(ValueError, match=re.escape('ModelConfig.rtc_max_delay=50')):
        make_config('tiny', rtc_max_delay=50)


def test_train_config_rtc_max_delay_goes_into_the_checkpoint_config():
    cfg = TrainConfig(preset='tiny', rtc_max_delay=6)
    model = cfg.model_config().model
    assert (model.rtc_mode, model.rtc_max_delay) == ('training', 6)
    assert cfg.loss_kwargs(0.1)['rtc_max_delay'] == 6
    assert TrainConfig(preset='tiny').model_config().model.rtc_mode == 'guidance'
    with pytest.raises(ValueError, match=re.escape('TrainConfig.rtc_max_delay=-1')):
        TrainConfig(rtc_max_delay=-1)
    assert TrainConfig(rtc_max_delay=6, rtc_zero_delay_prob=0.5).loss_kwargs(0.1)[
        'rtc_zero_delay_prob'] == 0.5
    with pytest.raises(ValueError, match=re.escape('TrainConfig.rtc_zero_delay_prob=1.5')):
        TrainConfig(rtc_zero_delay_prob=1.5)


# ---------------------------------------------------------------------------- Policy.infer
@pytest.fixture(scope='module')
def policy():
    p = Policy.from_preset('tiny', seed=0, robot_state_dim=4, robot_action_dim=4,
                           delta_action_mask=[True, True, False, False])
    perturb_adarms(p.model)
    return p


def test_infer_keeps_the_committed_prefix_in_robot_units(policy):
    obs = policy.fake_obs(1)
    noise = np.random.default_rng(0).normal(size=(50, 32))
    period = policy.control_period_s
    prefix = obs['state'][None, :4] + np.linspace(-0.5, 0.5, 24)[:, None] * [1, -1, 1, -1]
    prefix = prefix.astype(np.float32)  # (24, 4): rows from 2 periods before the observation
    plain = policy.infer(obs, noise=noise)['actions']
    out = policy.infer(obs, noise=noise, prefix=prefix, prefix_start_s=-2 * period,
                       delay_steps=DELAY)
    assert out['timing']['rtc_rows'] == 22 and out['timing']['rtc_delay'] == DELAY
    assert np.abs(out['actions'][:DELAY] - prefix[2:2 + DELAY]).max() < TOL
    assert np.abs(plain[:DELAY] - prefix[2:2 + DELAY]).max() > 10 * TOL
    same = policy.infer(obs, noise=noise, prefix=prefix[2:], prefix_start_s=-0.3 * period,
                        delay_steps=DELAY)['actions']
    np.testing.assert_allclose(same, out['actions'], atol=1e-5)


def test_infer_refuses_a_bad_prefix(policy):
    obs = policy.fake_obs(1)
    with pytest.raises(ValueError, match='prefix must be finite'):
        policy.infer(obs, prefix=np.zeros((5, 3)))
    with pytest.raises(ValueError, match='prefix_start_s'):
        policy.infer(obs, prefix=np.zeros((5, 4)), prefix_start_s=0.1)


# ---------------------------------------------------------------------------- robot side
def test_delay_estimator_takes_a_high_percentile_in_control_periods():
    est = DelayEstimator(window=5, percentile=80.0)
    assert est.delay_steps(0.02) == 0 and est.latency_s() is None
    for lat in (0.1, 0.1, 0.1, 0.1, 0.5):
        est.add(lat)
    assert est.latency_s() == pytest.approx(0.18)  # numpy's linear percentile
    assert est.delay_steps(0.02) == 9  # ceil(0.18 / 0.02)
    assert est.delay_steps(0.02, horizon=4) == 4
    est.add(-1.0)  # a clock jump: ignored
    est.add(math.nan)
    for _ in range(5):
        est.add(0.04)  # the window forgets the slow ones
    assert est.delay_steps(0.02) == 2
    with pytest.raises(ValueError, match='percentile'):
        DelayEstimator(percentile=120)


def test_committed_chunk_gives_the_rows_still_to_run():
    cc = CommittedChunk(max_age_s=1.0)
    assert cc.prefix_at(0.0) is None
    actions = np.arange(50, dtype=np.float32)[:, None].repeat(2, 1)  # row i = i
    cc.remember(10.0, 0.02, actions)
    actions[:] = -1  # the tracker keeps its own copy
    rows, start = cc.prefix_at(10.105)  # inside row 5
    assert rows[0].tolist() == [5, 5] and len(rows) == 45
    assert start == pytest.approx(-0.005)
    assert cc.prefix_at(9.9) is None  # the clock went back (a new bag, a reset sim)
    assert cc.prefix_at(11.01) is None  # older than max_age_s
    cc.max_age_s = 5.0
    assert cc.prefix_at(11.0) is None  # every row has passed
    cc.reset()
    assert cc.prefix_at(10.1) is None


def test_executor_status_says_whether_the_chunks_run():
    """executor_node's diagnostics values (strings) -> running (enabled, status ok) or not."""
    assert executor_executes({'enabled': 'True', 'status': 'ok', 'mode': 'rtc'}) is True
    assert executor_executes({'enabled': 'False', 'status': 'ok'}) is False  # preview only
    assert executor_executes({'enabled': 'True', 'status': 'hold_stale'}) is False
    assert executor_executes({'enabled': 'True', 'status': 'hold_nan'}) is False
    # No chunk yet (start, reset): it runs the next one it gets, the one just published.
    assert executor_executes({'enabled': 'True', 'status': 'hold_no_chunk'}) is True
    assert executor_executes({'enabled': 'False', 'status': 'hold_no_chunk'}) is False
    assert executor_executes({'chunk': '3'}) is None  # another node's status: no opinion


def test_planner_gives_no_prefix_while_the_executor_runs_nothing():
    """Disabled or holding, the arm does not follow the last chunk: no prefix, so an episode's
    first chunk is not conditioned on the previous episode's rows."""
    planner = RtcPlanner(RtcConfig(rtc=True), 0.02, 50)
    actions = np.arange(50, dtype=np.float32)[:, None].repeat(2, 1)  # row i = i
    planner.published(10.0, 10.1, actions)
    running = planner.infer_kwargs(10.105)
    assert running['prefix'][0].tolist() == [5, 5] and running['delay_steps'] == 5
    planner.executor_state(False)
    assert planner.infer_kwargs(10.105) == {}
    planner.executor_state(None)  # a report that says nothing changes nothing
    assert planner.infer_kwargs(10.105) == {}
    planner.executor_state(True)
    assert planner.infer_kwargs(10.105)['prefix'][0].tolist() == [5, 5]


def test_rtc_config_quotes_bad_values():
    with pytest.raises(ValueError, match=re.escape('RtcConfig.rtc_latency_percentile=101.0')):
        RtcConfig(rtc_latency_percentile=101.0)


def test_training_time_rtc_from_init_records_the_mode_in_the_checkpoint(tmp_path):
    """Fine-tuning an existing checkpoint with --rtc-max-delay: the new checkpoint's config must
    say rtc_mode=training, or the nodes would guide a model trained for clean prefixes."""
    from train_helpers import build_dataset, train_args

    from pi05_moe_bringup import cli
    from pi05_moe_policy.checkpoints import load_policy

    dataset = build_dataset(tmp_path)
    one_step = ('--max-steps', '1', '--batch-size', '2', '--device', 'cpu')
    assert cli.main(train_args(dataset, tmp_path / 'base', *one_step)) == 0
    assert load_policy(str(tmp_path / 'base' / 'latest')).model_config.rtc_mode == 'guidance'
    args = ['train', '--dataset', str(dataset), '--out', str(tmp_path / 'rtc'), '--init',
            str(tmp_path / 'base' / 'latest'), '--rtc-max-delay', '3', '--num-workers', '0',
            '--no-progress', *one_step]
    assert cli.main(args) == 0
    model_cfg = load_policy(str(tmp_path / 'rtc' / 'latest')).model_config
    assert (model_cfg.rtc_mode, model_cfg.rtc_max_delay) == ('training', 3)
