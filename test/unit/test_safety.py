"""SafetyFilter: limits, velocity limits, NaN rejection and the stale-chunk watchdog; and the
ExecutorCore around it: chunk checks, joint order, enable/reset ramps, the watchdog rule."""

from __future__ import annotations

import re

import numpy as np
import pytest

from pi05_moe_policy.core.executor import ChunkRejectedError, ExecutorCore, ExecutorCoreConfig
from pi05_moe_policy.core.safety import (
    HOLD_NAN,
    HOLD_NO_CHUNK,
    HOLD_STALE,
    NO_REFERENCE,
    OK,
    SafetyConfig,
    SafetyFilter,
)

DT = 0.02


def make(num_joints=3, **cfg) -> SafetyFilter:
    base = dict(lower_limits=[-1.0], upper_limits=[1.0], max_velocity=[1.0], stale_timeout=0.5)
    f = SafetyFilter(SafetyConfig(**{**base, **cfg}), num_joints)
    f.seed(np.zeros(num_joints))
    return f


def test_no_command_before_a_reference_exists():
    f = SafetyFilter(SafetyConfig(), 2)
    out = f.step(0.0, np.zeros(2), newest_stamp=0.0, dt=DT)
    assert out.command is None and out.status == NO_REFERENCE
    assert f.counts.executed == 0


def test_within_limits_and_slow_passes_unchanged():
    f = make()
    target = np.array([0.01, -0.02, 0.0])
    out = f.step(1.0, target, newest_stamp=1.0, dt=DT)
    assert out.status == OK
    np.testing.assert_array_equal(out.command, target)
    assert (f.counts.executed, f.counts.clamped_position, f.counts.clamped_velocity) == (1, 0, 0)


def test_clamps_to_joint_limits_per_joint():
    f = make(lower_limits=[-1.0, 0.0, -0.5], upper_limits=[1.0, 0.1, 0.5], max_velocity=[1e3])
    out = f.step(1.0, np.array([5.0, -5.0, 0.2]), newest_stamp=1.0, dt=DT)
    np.testing.assert_array_equal(out.command, [1.0, 0.0, 0.2])
    assert f.counts.clamped_position == 1


def test_step_is_limited_to_max_velocity_times_dt():
    f = make(max_velocity=[1.0, 2.0, 0.5])
    out = f.step(1.0, np.array([1.0, -1.0, 0.001]), newest_stamp=1.0, dt=DT)
    np.testing.assert_allclose(out.command, [0.02, -0.04, 0.001])
    assert f.counts.clamped_velocity == 1


def test_random_proposals_never_leave_limits_or_exceed_velocity():
    rng = np.random.default_rng(0)
    lower, upper, vmax = np.array([-1.0, 0.0, -3.0]), np.array([1.0, 0.04, 3.0]), np.array(
        [0.5, 0.1, 3.0])
    f = SafetyFilter(SafetyConfig(lower_limits=list(lower), upper_limits=list(upper),
                                  max_velocity=list(vmax)), 3)
    f.seed(np.array([5.0, -5.0, 0.0]))  # a measured position outside the limits is clamped
    last = f.last
    assert np.all(last >= lower) and np.all(last <= upper)
    for i in range(2000):
        proposal = rng.normal(scale=4.0, size=3)
        out = f.step(i * DT, proposal, newest_stamp=i * DT, dt=DT)
        assert np.all(out.command >= lower) and np.all(out.command <= upper)
        assert np.all(np.abs(out.command - last) <= vmax * DT + 1e-12)
        last = out.command


@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_non_finite_proposal_holds_the_last_command(bad):
    f = make()
    first = f.step(1.0, np.array([0.01, 0.01, 0.01]), newest_stamp=1.0, dt=DT).command
    out = f.step(1.02, np.array([0.02, bad, 0.02]), newest_stamp=1.0, dt=DT)
    assert out.status == HOLD_NAN
    np.testing.assert_array_equal(out.command, first)
    assert f.counts.holds[HOLD_NAN] == 1


def test_no_chunk_covering_now_holds():
    f = make()
    first = f.step(1.0, np.full(3, 0.01), newest_stamp=1.0, dt=DT).command
    out = f.step(1.02, None, newest_stamp=1.0, dt=DT)
    assert out.status == HOLD_NO_CHUNK
    np.testing.assert_array_equal(out.command, first)


def test_stale_newest_chunk_holds_even_with_a_proposal():
    f = make(stale_timeout=0.5)
    assert f.step(1.5, np.full(3, 0.01), newest_stamp=1.0, dt=DT).status == OK  # 0.5 s: fresh
    out = f.step(1.52, np.full(3, 0.5), newest_stamp=1.0, dt=DT)
    assert out.status == HOLD_STALE
    np.testing.assert_array_equal(out.command, np.full(3, 0.01))
    assert f.step(1.54, np.full(3, 0.02), newest_stamp=1.5, dt=DT).status == OK  # a new chunk


def test_holding_from_the_seed_before_any_chunk():
    f = make()
    out = f.step(0.0, None, newest_stamp=None, dt=DT)
    assert out.status == HOLD_NO_CHUNK
    np.testing.assert_array_equal(out.command, np.zeros(3))


def test_seed_does_not_override_a_command_already_sent_and_refuses_nan():
    f = SafetyFilter(SafetyConfig(), 2)
    assert not f.seed(np.array([np.nan, 0.0]))
    assert f.seed(np.array([0.1, 0.2]))
    f.step(0.0, np.array([0.12, 0.2]), newest_stamp=0.0, dt=DT)
    assert not f.seed(np.array([1.0, 1.0]))
    np.testing.assert_allclose(f.last, [0.12, 0.2])


def test_reset_restarts_from_a_new_position():
    f = make()
    f.step(0.0, np.full(3, 0.01), newest_stamp=0.0, dt=DT)
    f.reset(np.full(3, 0.7))
    np.testing.assert_array_equal(f.last, np.full(3, 0.7))
    f.reset()
    assert f.step(0.1, np.zeros(3), newest_stamp=0.1, dt=DT).status == NO_REFERENCE


def test_the_callers_proposal_is_not_modified():
    f = make()
    proposal = np.array([5.0, 5.0, 5.0])
    f.step(0.0, proposal, newest_stamp=0.0, dt=DT)
    np.testing.assert_array_equal(proposal, [5.0, 5.0, 5.0])


def test_per_joint_lists_must_match_the_joint_count():
    with pytest.raises(ValueError, match=re.escape('max_velocity=[1.0, 2.0]: expected 1 or 3')):
        SafetyFilter(SafetyConfig(max_velocity=[1.0, 2.0]), 3)


@pytest.mark.parametrize('kwargs, field', [
    (dict(lower_limits=[]), 'lower_limits'),
    (dict(upper_limits=[float('nan')]), 'upper_limits'),
    (dict(max_velocity=[0.0]), 'max_velocity'),
    (dict(lower_limits=[1.0], upper_limits=[0.5]), 'upper_limits'),
    (dict(lower_limits=[0.0, 0.0], upper_limits=[1.0, 1.0, 1.0]), 'upper_limits'),
    (dict(stale_timeout=0.0), 'stale_timeout'),
])
def test_config_rejects_bad_values_quoting_them(kwargs, field):
    cfg_value = kwargs.get(field, SafetyConfig().__dict__[field])
    with pytest.raises(ValueError, match=re.escape(f'SafetyConfig.{field}={cfg_value!r}')):
        SafetyConfig(**kwargs)


def test_hold_toward_ramps_within_the_velocity_limit_until_a_proposal_takes_over():
    f = make(max_velocity=[1.0])
    f.step(0.0, np.full(3, 0.5), newest_stamp=0.0, dt=1.0)  # one big step: last = 0.5
    assert f.hold_toward(np.zeros(3))
    np.testing.assert_allclose(f.last, np.full(3, 0.5))  # no jump on the call itself
    out = f.step(1.0, None, newest_stamp=None, dt=0.1)
    assert out.status == HOLD_NO_CHUNK
    np.testing.assert_allclose(out.command, np.full(3, 0.4))  # 1 rad/s x 0.1 s toward 0
    for _ in range(10):
        out = f.step(1.0, None, newest_stamp=None, dt=0.1)
    np.testing.assert_allclose(out.command, np.zeros(3), atol=1e-12)
    f.step(2.0, np.full(3, 0.05), newest_stamp=2.0, dt=0.1)
    held = f.step(2.1, None, newest_stamp=None, dt=0.1).command  # the ramp target is gone
    np.testing.assert_allclose(held, np.full(3, 0.05))
    assert not f.hold_toward(np.array([0.0, np.nan, 0.0]))


# ---------------------------------------------------------------------- ExecutorCore (#17, #15)
NAMES = ['a', 'b', 'c']


def core(**cfg) -> ExecutorCore:
    base = dict(control_hz=50.0, joint_names=NAMES, lower_limits=[-1.0], upper_limits=[1.0],
                max_velocity=[1.0], stale_timeout=0.5, mode='latest')
    c = ExecutorCore(ExecutorCoreConfig(**{**base, **cfg}))
    c.set_joint_state(np.zeros(3), 0.0)
    return c


def test_a_chunk_stamped_in_the_future_is_rejected_and_no_age_is_negative():
    c = core()
    with pytest.raises(ChunkRejectedError, match=r'\+8\.000 s from now') as info:
        c.add_chunk(18.0, DT, NAMES, np.full((50, 3), 0.9), now=10.0)
    assert info.value.reason == 'future' and c.ensembler.num_chunks == 0
    assert c.chunk_age(10.0) is None and c.chunks['rejected'] == 1
    # Within the tolerance (clock skew): accepted, but counted as stamped now.
    c.add_chunk(10.04, DT, NAMES, np.full((50, 3), 0.1), now=10.0)
    assert c.chunk_age(10.0) == 0.0 and c.newest_stamp == 10.0
    # Silence after it: the watchdog holds once its rows (from 10.0) end.
    assert c.tick(10.5).status == OK
    assert c.tick(11.0 + DT).status in (HOLD_STALE, HOLD_NO_CHUNK)


@pytest.mark.parametrize('period, horizon, reason', [
    (1e6, 2, 'period'), (0.0, 2, 'period'), (float('nan'), 2, 'period'), (1e-6, 2, 'period'),
    (0.02, 1000, 'span')])
def test_chunks_with_outlying_periods_or_spans_are_rejected(period, horizon, reason):
    c = core(mode='ensemble', ensemble_k=1.0)
    with pytest.raises(ChunkRejectedError) as info:
        c.add_chunk(0.0, period, NAMES, np.full((horizon, 3), 0.38), now=0.0)
    assert info.value.reason == reason and c.ensembler.num_chunks == 0
    c.add_chunk(0.0, DT, NAMES, np.zeros((50, 3)), now=0.0)
    np.testing.assert_array_equal(c.ensembler.action_at(0.1), np.zeros(3))


def test_chunks_in_another_joint_order_are_reordered_by_name():
    c = core(max_velocity=[100.0])
    actions = np.tile([0.3, 0.2, 0.1], (50, 1))  # (H, 3) in the order c, b, a
    c.add_chunk(0.0, DT, ['c', 'b', 'a'], actions, now=0.0)
    np.testing.assert_allclose(c.tick(0.0).command, [0.1, 0.2, 0.3])


@pytest.mark.parametrize('names', [['a', 'b', 'x'], ['a', 'b'], ['a', 'a', 'b'], []])
def test_chunks_with_unknown_or_missing_names_are_rejected_and_never_lock(names):
    c = core()
    with pytest.raises((ChunkRejectedError, ValueError)):
        c.add_chunk(0.0, DT, names, np.zeros((50, len(names))), now=0.0)
    c.add_chunk(0.0, DT, NAMES, np.full((50, 3), 0.01), now=0.0)  # a good chunk still works
    assert c.tick(0.0).status == OK and c.joint_names == NAMES


def test_names_adopted_from_a_chunk_are_forgotten_on_reset():
    c = ExecutorCore(ExecutorCoreConfig(joint_names=[]))  # allowed for joint_trajectory output
    c.add_chunk(0.0, DT, ['x', 'y'], np.zeros((50, 2)), now=0.0)
    assert c.joint_names == ['x', 'y']
    with pytest.raises(ChunkRejectedError, match='unknown'):
        c.add_chunk(0.1, DT, NAMES, np.zeros((50, 3)), now=0.1)
    c.reset(0.2)
    c.add_chunk(0.2, DT, NAMES, np.zeros((50, 3)), now=0.2)
    assert c.joint_names == NAMES


def test_enable_needs_a_fresh_joint_state():
    c = ExecutorCore(ExecutorCoreConfig(joint_names=NAMES, joint_state_max_age=0.5))
    assert 'no usable joint state' in c.enable(1.0)
    c.set_joint_state(np.zeros(3), 1.0)
    assert c.enable(1.4) is None
    assert '0.600 s old' in c.enable(1.6)


def test_enable_starts_from_the_measured_position_not_from_the_previews():
    """Disabled, the previews reached no controller: the robot is where it was measured (here
    moved elsewhere, as by hand or a simulator reset), so enabling starts there and the
    commands then move toward the chunk within the velocity limit."""
    c = core(max_velocity=[1.5], stale_timeout=2.0)
    c.add_chunk(0.0, DT, NAMES, np.full((400, 3), 0.997), now=0.0)
    t = 0.0
    while t < 1.0:
        preview = c.tick(t).command
        t += DT
    np.testing.assert_allclose(preview, 0.997)
    c.set_joint_state(np.full(3, -0.5), t)  # the robot is elsewhere
    assert c.enable(t) is None
    c.add_chunk(t, DT, NAMES, np.full((400, 3), 0.997), now=t)  # a fresh plan, same target
    commands = np.array([c.tick(t + i * DT).command for i in range(1, 80)])
    assert np.abs(commands[0] - (-0.5)).max() <= 1.5 * DT + 1e-12  # from the measured, no jump
    assert np.abs(np.diff(commands, axis=0)).max() <= 1.5 * DT + 1e-12
    np.testing.assert_allclose(commands[-1], 0.997)  # then on to the chunk


def test_chunks_observed_before_a_reset_are_not_used():
    c = core(max_velocity=[100.0], stale_timeout=2.0)
    c.add_chunk(0.0, DT, NAMES, np.full((100, 3), 0.3), now=0.0)
    c.reset(0.5)
    assert c.add_chunk(0.45, DT, NAMES, np.full((100, 3), 0.9), now=0.6) == 100  # in flight
    assert c.chunks['late'] == 1 and c.tick(0.6).status != OK
    c.add_chunk(0.55, DT, NAMES, np.full((100, 3), -0.2), now=0.65)
    np.testing.assert_allclose(c.tick(0.66).command, -0.2)


@pytest.mark.parametrize('service', ['reset'])
def test_reset_ramps_from_the_last_command_instead_of_jumping(service):
    c = core(max_velocity=[1.5], stale_timeout=2.0)
    c.add_chunk(0.0, DT, NAMES, np.full((400, 3), 0.997), now=0.0)
    t = 0.0
    while t < 1.0:
        last = c.tick(t).command
        t += DT
    np.testing.assert_allclose(last, 0.997)
    c.set_joint_state(np.zeros(3), t)  # the measured position is elsewhere
    assert getattr(c, service)(t) is None
    commands = [c.tick(t + i * DT).command for i in range(1, 60)]
    steps = np.abs(np.diff([last, *commands], axis=0))
    assert steps.max() <= 1.5 * DT + 1e-12  # never more than the velocity limit a tick
    if service == 'reset':  # chunks dropped: the holds ramp to the measured position
        np.testing.assert_allclose(commands[-1], 0.0, atol=1e-9)


def test_a_late_chunk_that_still_covers_now_runs_from_its_current_row():
    c = core(max_velocity=[100.0], stale_timeout=0.5)
    actions = np.linspace(0, 0.49, 50)[:, None].repeat(3, axis=1)  # (50, 3): row i -> i / 100
    assert c.add_chunk(0.0, DT, NAMES, actions, now=0.3) == 15  # arrived 0.3 s late
    out = c.tick(0.3)
    assert out.status == OK
    np.testing.assert_allclose(out.command, 0.15)


def test_no_command_comes_from_a_chunk_older_than_the_absolute_limit():
    c = core(mode='ensemble', ensemble_k=0.0, max_velocity=[100.0], stale_timeout=0.5)
    c.add_chunk(0.0, DT, NAMES, np.full((100, 3), 0.8), now=0.0)  # covers up to 2.0 s
    c.add_chunk(0.4, DT, NAMES, np.full((100, 3), 0.2), now=0.4)
    np.testing.assert_allclose(c.tick(0.45).command, 0.5)  # both fresh: the average
    np.testing.assert_allclose(c.tick(0.6).command, 0.2)  # the first is too old: left out
    out = c.tick(1.0)  # both too old, though both cover now: hold
    assert out.status == HOLD_STALE
    np.testing.assert_allclose(out.command, 0.2)


@pytest.mark.parametrize('field, value', [
    ('max_future_stamp_s', -0.1), ('max_period_ratio', 0.5), ('max_chunk_span_s', 0.0),
    ('joint_state_max_age', float('nan')), ('joint_names', ['a', 'a']), ('control_hz', 0.0)])
def test_executor_config_rejects_bad_values_quoting_them(field, value):
    with pytest.raises(ValueError, match=re.escape(f'ExecutorCoreConfig.{field}={value!r}')):
        ExecutorCoreConfig(**{field: value})
