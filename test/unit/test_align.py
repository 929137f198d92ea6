"""As-of alignment checked against a brute-force reference."""

import numpy as np
import pytest

from pi05_moe_training.dataset.align import (
    align_asof,
    asof_indices,
    clock_offset,
    control_grid,
    sort_stream,
)


def reference_asof(times, query):
    """The newest index with times[i] <= q, by brute force (-1 if none)."""
    out = []
    for q in query:
        candidates = [i for i, t in enumerate(times) if t <= q]
        out.append(max(candidates) if candidates else -1)
    return np.array(out)


def test_asof_matches_reference_on_random_streams():
    rng = np.random.default_rng(0)
    for _ in range(50):
        times = np.sort(rng.uniform(0, 10, rng.integers(1, 40)))
        times[rng.integers(0, times.size)] = times[0]  # duplicates happen
        times.sort()
        query = rng.uniform(-1, 11, 30)
        np.testing.assert_array_equal(asof_indices(times, query), reference_asof(times, query))


def test_asof_exact_stamp_is_included_and_future_excluded():
    times = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(asof_indices(times, [0.5, 1.0, 1.999, 2.0, 99.0]),
                                  [-1, 0, 0, 1, 2])
    with pytest.raises(ValueError, match='non-decreasing'):
        asof_indices(np.array([2.0, 1.0]), [1.5])


def test_control_grid():
    grid = control_grid(10.0, 11.0, 50.0)
    assert grid.shape == (51,) and grid[0] == 10.0 and grid[-1] == pytest.approx(11.0)
    assert control_grid(10.0, 10.999, 50.0).shape == (50,)
    assert control_grid(2.0, 1.0, 50.0).size == 0
    with pytest.raises(ValueError, match='fps=0'):
        control_grid(0.0, 1.0, 0)


def test_align_asof_ages_and_staleness():
    times = np.array([0.0, 0.1, 0.2, 1.0])
    grid = np.array([-0.05, 0.05, 0.15, 0.5, 0.9, 1.0])
    aligned = align_asof(times, grid)
    np.testing.assert_array_equal(aligned.index, [-1, 0, 1, 2, 2, 3])
    np.testing.assert_allclose(aligned.age_s[1:], [0.05, 0.05, 0.3, 0.7, 0.0])
    assert np.isinf(aligned.age_s[0])
    np.testing.assert_array_equal(aligned.stale(0.25), [True, False, False, True, True, False])


def test_clock_offset_is_the_median_delay():
    header = np.arange(100) * 0.01
    receive = header + 5.0 + 0.002
    receive[::10] += 0.5  # a few late deliveries do not move the estimate
    assert clock_offset(receive, header) == pytest.approx(5.002)
    assert clock_offset([], []) == 0.0


def test_sort_stream_is_stable():
    order = sort_stream(np.array([3.0, 1.0, 2.0, 1.0]))
    np.testing.assert_array_equal(order, [1, 3, 2, 0])
