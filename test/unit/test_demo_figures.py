"""`pi05-moe demo`'s per-episode figures, computed from what the graph publishes (no ROS here).

The held share comes from the executor's /diagnostics status samples: the executor reports each
transition at once, so the status between two samples is the earlier one's.
"""

import pytest

from pi05_moe_bringup.sim_tools.demo import (
    EpisodeOutcome,
    held_share,
    latency_text,
    overall_figures,
)


def test_held_share_integrates_the_status_between_transitions():
    statuses = [(0.5, 'ok'), (2.0, 'hold_stale'), (3.0, 'ok'), (4.0, 'hold_no_chunk'),
                (5.0, 'ok'), (9.0, 'hold_stale')]
    # [1, 6]: ok 1-2, stale 2-3, ok 3-4, no chunk 4-5, ok 5-6 -> 2 of 5 s held
    assert held_share(statuses, 1.0, 6.0) == pytest.approx(0.4)
    # the status at t0 is the last one reported before it; unsorted input is fine
    assert held_share(list(reversed(statuses)), 2.5, 3.5) == pytest.approx(0.5)
    assert held_share(statuses, 9.5, 10.0) == 1.0  # still holding since 9 s
    assert held_share([(0.0, 'no_reference')], 0.0, 1.0) == 1.0  # no command is not ok either
    assert held_share(statuses, 0.0, 0.4) is None  # nothing reported by then
    assert held_share([], 0.0, 1.0) is None


def _episode(held, sim_time_s, latencies, ages):
    return EpisodeOutcome(1, 'lift_red_cube', 0, 'lift the red cube', False, sim_time_s, {}, 0,
                          len(latencies), None, None, held, latencies, ages)


def test_overall_figures_take_every_chunk_and_weight_the_held_share_by_episode_time():
    episodes = [_episode(0.8, 3.0, [400.0, 500.0, 450.0], [0.45, 0.5, 0.48]),
                _episode(0.0, 1.0, [100.0], [0.1]), _episode(None, 2.0, [], [])]
    overall = overall_figures(episodes)
    assert overall['chunks'] == 4
    assert overall['latency_ms_median'] == pytest.approx(425.0)  # median of all 4 chunks
    assert overall['chunk_age_s_median'] == pytest.approx(0.465)
    assert overall['held_share'] == pytest.approx((0.8 * 3.0 + 0.0 * 1.0) / 4.0)
    assert latency_text(445.2, 0.4701, 0.83) == (
        'chunk latency p50 445 ms (age on arrival 0.470 s), held 83% of the ticks')
    assert latency_text(None, None, None) == (
        'chunk latency p50 - (age on arrival -), held - of the ticks')
