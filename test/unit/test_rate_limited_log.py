"""RateLimitedLog: one line per key per period, suppressed counts, every occurrence counted."""

from __future__ import annotations

import pytest

from pi05_moe_policy.core.rate_limited_log import FirstSeen, RateLimitedLog
from pi05_moe_policy.core.stats import RateMeter, RunningStats


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_one_line_per_key_per_period_with_the_suppressed_count():
    lines, clock = [], FakeClock()
    log = RateLimitedLog(lines.append, period_s=5.0, clock=clock)
    assert log(('/wrist', 'image'), 'bad wrist')
    assert not log(('/wrist', 'image'), 'bad wrist')
    assert log(('/joint_states', 'nan'), 'nan joints')  # another key is not held back
    clock.t = 4.9
    assert not log(('/wrist', 'image'), 'bad wrist')
    clock.t = 5.0
    assert log(('/wrist', 'image'), 'bad wrist')
    assert lines == ['bad wrist', 'nan joints',
                     'bad wrist (2 similar message(s) suppressed in the last 5 s)']
    assert log.counts == {('/wrist', 'image'): 4, ('/joint_states', 'nan'): 1}
    assert log.total() == 5 and log.total(lambda k: k[0] == '/wrist') == 4


def test_period_zero_logs_everything():
    lines = []
    log = RateLimitedLog(lines.append, period_s=0.0, clock=FakeClock())
    for _ in range(3):
        log('k', 'x')
    assert lines == ['x', 'x', 'x']


def test_rate_meter_and_running_stats():
    meter = RateMeter()
    assert meter.rate(10.0) == 0.0  # first call opens the window
    for _ in range(30):
        meter.tick()
    assert meter.rate(12.0) == 15.0
    assert meter.rate(12.0) == 0.0  # zero-length window
    stats = RunningStats(window=3)
    assert stats.summary() == {}
    for v in (100.0, 1.0, 2.0, 3.0):  # the first value falls out of the window
        stats.add(v)
    assert stats.summary() == {'mean': 2.0, 'p50': 2.0, 'p99': 2.98, 'max': 3.0}


def test_first_seen_says_once_per_key_with_bounded_memory():
    once = FirstSeen(capacity=2)
    assert once.first('a') and not once.first('a')
    assert once.first('b') and once.first('c')  # 'a' falls out: at most 2 keys are kept
    assert once.first('a') and not once.first('c')
    with pytest.raises(ValueError, match='capacity=0'):
        FirstSeen(0)
