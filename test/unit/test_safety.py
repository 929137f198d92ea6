"""SafetyFilter: limits, velocity limits, NaN rejection and the stale-chunk watchdog."""

from __future__ import annotations

import re

import numpy as np
import pytest

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
