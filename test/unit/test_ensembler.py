"""TemporalEnsembler against an offline reference, against ACT's own recurrence, and by case."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from pi05_moe_policy.core.ensembler import EnsemblerConfig, TemporalEnsembler

DT = 0.02


def reference_action(chunks, t, mode, k):
    """The definition, computed from scratch for one tick at time ``t``.

    ``chunks``: (stamp, period, actions (H, A), arrival). A chunk counts when it has arrived by
    ``t``, its slot containing ``t`` exists, and that slot had not ended when it arrived.
    """
    def row(stamp, period, actions, arrival):
        i = math.floor((t - stamp) / period + 1e-9)
        if arrival > t or not 0 <= i < len(actions) or stamp + (i + 1) * period <= arrival:
            return None
        return actions[i]

    arrived = sorted((c for c in chunks if c[3] <= t and c[0] + len(c[2]) * c[1] > t),
                     key=lambda c: c[0])  # stable: equal stamps keep arrival order
    if mode == 'latest':
        return row(*arrived[-1]) if arrived else None
    rows = [r for c in arrived if (r := row(*c)) is not None]
    if not rows:
        return None
    if mode == 'rtc':
        return rows[-1]
    w = [math.exp(-k * j) for j in range(len(rows))]
    return sum(wj * r for wj, r in zip(w, rows)) / sum(w)


@pytest.mark.parametrize('mode, k', [('ensemble', 0.01), ('ensemble', 0.5), ('ensemble', -0.2),
                                     ('ensemble', 0.0), ('latest', 0.01), ('rtc', 0.01)])
@pytest.mark.parametrize('seed', range(3))
def test_online_matches_offline_reference_on_random_chunks(mode, k, seed):
    rng = np.random.default_rng(seed)
    horizon, dim = 25, 3
    # Observations at jittery times; inference latency 0..0.6 s (sometimes longer than the
    # chunk), so chunks arrive out of order and partly (or wholly) in the past.
    stamps = np.cumsum(rng.uniform(0.02, 0.15, size=40))
    chunks = [(float(s), DT, rng.normal(size=(horizon, dim)), float(s + rng.uniform(0, 0.6)))
              for s in stamps]
    ens = TemporalEnsembler(EnsemblerConfig(mode=mode, ensemble_k=k))
    pending = sorted(chunks, key=lambda c: c[3])
    ticks = np.arange(0.0, stamps[-1] + 1.0, DT)
    compared = covered = 0
    for t in ticks:
        while pending and pending[0][3] <= t:
            stamp, period, actions, arrival = pending.pop(0)
            ens.add(stamp, period, actions, now=arrival)
        got, want = ens.action_at(float(t)), reference_action(chunks, float(t), mode, k)
        compared += 1
        if want is None:
            assert got is None, f't={t}'
        else:
            covered += 1
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=f't={t}')
    assert covered > compared // 2  # the comparison exercised real overlaps, not just Nones


def act_temporal_ensembler(chunks, k):
    """A numpy port of lerobot's ACTTemporalEnsembler.update: one chunk per control step."""
    horizon = len(chunks[0])
    weights = np.exp(-k * np.arange(horizon))
    cumsum = np.cumsum(weights)
    ensembled, count, out = None, None, []
    for actions in chunks:
        if ensembled is None:
            ensembled, count = actions.copy(), np.ones(horizon, dtype=int)
        else:
            ensembled *= cumsum[count - 1][:, None]
            ensembled += actions[:-1] * weights[count][:, None]
            ensembled /= cumsum[count][:, None]
            count = np.minimum(count + 1, horizon)
            ensembled = np.concatenate([ensembled, actions[-1:]])
            count = np.concatenate([count, [1]])
        out.append(ensembled[0])
        ensembled, count = ensembled[1:], count[1:]
    return np.stack(out)


def test_matches_act_recurrence_when_a_chunk_arrives_every_tick():
    rng = np.random.default_rng(7)
    horizon, steps, k = 10, 30, 0.1
    chunks = [rng.normal(size=(horizon, 4)) for _ in range(steps)]
    ens = TemporalEnsembler(EnsemblerConfig(mode='ensemble', ensemble_k=k))
    online = []
    for step, actions in enumerate(chunks):
        ens.add(step * DT, DT, actions, now=step * DT)
        online.append(ens.action_at(step * DT))
    np.testing.assert_allclose(np.stack(online), act_temporal_ensembler(chunks, k), atol=1e-12)


def ramp(horizon=50, dim=2, offset=0.0):
    return offset + np.repeat(np.arange(horizon, dtype=float)[:, None], dim, axis=1)  # row i = i


def test_latency_is_absorbed_not_replayed():
    ens = TemporalEnsembler(EnsemblerConfig(mode='latest'))
    passed = ens.add(stamp=10.0, period=DT, actions=ramp(), now=10.5)  # 0.5 s late
    assert passed == 25
    np.testing.assert_array_equal(ens.action_at(10.5), [25, 25])  # not row 0
    np.testing.assert_array_equal(ens.action_at(10.53), [26, 26])


def test_rows_passed_at_arrival_are_never_executed_even_if_asked():
    ens = TemporalEnsembler(EnsemblerConfig(mode='ensemble'))
    ens.add(stamp=0.0, period=DT, actions=ramp(), now=0.3)
    assert ens.action_at(0.1) is None
    np.testing.assert_array_equal(ens.action_at(0.3), [15, 15])


def test_a_wholly_late_chunk_is_not_kept():
    ens = TemporalEnsembler(EnsemblerConfig())
    assert ens.add(stamp=0.0, period=DT, actions=ramp(horizon=10), now=0.2) == 10
    assert ens.num_chunks == 0
    assert ens.action_at(0.2) is None


def test_ended_chunks_are_dropped():
    ens = TemporalEnsembler(EnsemblerConfig())
    ens.add(0.0, DT, ramp(horizon=10), now=0.0)
    np.testing.assert_array_equal(ens.action_at(0.19), [9, 9])
    assert ens.action_at(0.2) is None and ens.num_chunks == 0


def test_ensemble_weights_favour_the_oldest_chunk_for_positive_k():
    ens = TemporalEnsembler(EnsemblerConfig(mode='ensemble', ensemble_k=1.0))
    ens.add(0.0, DT, np.zeros((50, 1)), now=0.0)
    ens.add(0.1, DT, np.ones((50, 1)), now=0.1)
    w_new = math.exp(-1.0)
    np.testing.assert_allclose(ens.action_at(0.1), [w_new / (1 + w_new)])


def test_chunks_are_ordered_by_observation_time_not_arrival():
    ens = TemporalEnsembler(EnsemblerConfig(mode='latest'))
    ens.add(1.0, DT, np.full((50, 1), 2.0), now=1.05)
    ens.add(0.9, DT, np.full((50, 1), 1.0), now=1.08)  # older observation, arrived later
    assert ens.num_chunks == 2
    np.testing.assert_array_equal(ens.action_at(1.1), [2.0])


def test_latest_uses_only_the_newest_chunk_even_when_it_does_not_cover_now():
    ens = TemporalEnsembler(EnsemblerConfig(mode='latest'))
    ens.add(0.0, DT, ramp(), now=0.0)
    ens.add(5.0, DT, ramp(), now=0.0)  # stamped in the future (clock mismatch)
    assert ens.action_at(0.1) is None


def test_reset_forgets_every_chunk():
    ens = TemporalEnsembler(EnsemblerConfig())
    ens.add(0.0, DT, ramp(), now=0.0)
    ens.reset()
    assert ens.action_at(0.0) is None and ens.num_chunks == 0


def test_add_copies_the_callers_array():
    ens = TemporalEnsembler(EnsemblerConfig())
    actions = ramp()
    ens.add(0.0, DT, actions, now=0.0)
    actions[:] = -1
    np.testing.assert_array_equal(ens.action_at(0.0), [0, 0])


@pytest.mark.parametrize('actions, period, match', [
    (np.zeros(5), DT, 'horizon, dim'),
    (np.zeros((0, 2)), DT, 'horizon, dim'),
    (np.full((5, 2), np.nan), DT, 'NaN'),
    (np.zeros((5, 2)), 0.0, 'period'),
    (np.zeros((5, 3)), DT, 'dim 3 differs'),
])
def test_malformed_chunks_are_rejected(actions, period, match):
    ens = TemporalEnsembler(EnsemblerConfig())
    ens.add(0.0, DT, np.zeros((5, 2)), now=0.0)
    with pytest.raises(ValueError, match=match):
        ens.add(0.0, period, actions, now=0.0)
    assert ens.num_chunks == 1


@pytest.mark.parametrize('field, value', [('mode', 'average'), ('ensemble_k', math.inf)])
def test_config_rejects_bad_values_quoting_them(field, value):
    with pytest.raises(ValueError, match=re.escape(f'EnsemblerConfig.{field}={value!r}')):
        EnsemblerConfig(**{field: value})


def test_chunks_older_than_min_stamp_never_contribute():
    ens = TemporalEnsembler(EnsemblerConfig(mode='ensemble', ensemble_k=0.0))
    ens.add(0.0, DT, np.full((100, 1), 1.0), now=0.0)  # old, still covers t = 1.0
    ens.add(0.9, DT, np.full((100, 1), 3.0), now=0.9)
    np.testing.assert_allclose(ens.action_at(1.0), [2.0])  # both, without an age limit
    np.testing.assert_allclose(ens.action_at(1.02, min_stamp=0.5), [3.0])  # the old one is out
    assert ens.action_at(1.04, min_stamp=0.95) is None  # every covering chunk too old
    assert ens.newest_covering(1.04) == 0.9  # ... which the watchdog tells from "none"


def test_newest_covering_is_none_when_nothing_covers_now():
    ens = TemporalEnsembler(EnsemblerConfig(mode='latest'))
    assert ens.newest_covering(0.0) is None
    ens.add(1.0, DT, np.zeros((10, 2)), now=1.0)
    assert ens.newest_covering(1.1) == 1.0
    assert ens.newest_covering(1.2 + 1e-6) is None  # its rows ended at 1.2


def test_rtc_switches_to_the_newest_chunk_at_its_current_row_without_averaging():
    ens = TemporalEnsembler(EnsemblerConfig(mode='rtc', ensemble_k=0.0))
    ens.add(0.0, DT, ramp(), now=0.0)
    np.testing.assert_array_equal(ens.action_at(0.1), [5, 5])
    ens.add(0.1, DT, ramp(offset=100.0), now=0.2)  # 5 rows late: starts at its row 5
    np.testing.assert_array_equal(ens.action_at(0.2), [105, 105])  # not (10 + 105) / 2
    np.testing.assert_array_equal(ens.action_at(0.22), [106, 106])
    ens = TemporalEnsembler(EnsemblerConfig(mode='ensemble', ensemble_k=0.0))  # the contrast
    ens.add(0.0, DT, ramp(), now=0.0)
    ens.add(0.1, DT, ramp(offset=100.0), now=0.2)
    np.testing.assert_array_equal(ens.action_at(0.2), [57.5, 57.5])


def test_rtc_falls_back_to_an_older_chunk_while_the_newest_does_not_cover_now():
    ens = TemporalEnsembler(EnsemblerConfig(mode='rtc'))
    ens.add(0.0, DT, ramp(), now=0.0)
    ens.add(0.5, DT, ramp(offset=100.0), now=0.1)  # stamped ahead (clock mismatch)
    np.testing.assert_array_equal(ens.action_at(0.12), [6, 6])  # latest holds here
    np.testing.assert_array_equal(ens.action_at(0.5), [100, 100])
    assert ens.action_at(0.52, min_stamp=0.6) is None  # the age limit still applies
