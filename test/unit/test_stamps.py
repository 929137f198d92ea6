"""core.stamps: stamp <-> seconds, against hand-computed values and rclpy's own Time."""

from types import SimpleNamespace

import pytest
from builtin_interfaces.msg import Duration, Time

from pi05_moe_policy.core.stamps import (
    NS_PER_S,
    ns_sec_nanosec,
    sec_nanosec,
    sec_to_ns,
    stamp_to_ns,
    stamp_to_sec,
)


def test_stamp_to_sec_and_ns_read_any_sec_nanosec_object():
    for stamp in (Time(sec=12, nanosec=250_000_000), Duration(sec=12, nanosec=250_000_000),
                  SimpleNamespace(sec=12, nanosec=250_000_000)):  # a rosbags message's shape
        assert stamp_to_sec(stamp) == 12.25
        assert stamp_to_ns(stamp) == 12_250_000_000


def test_ns_is_exact_at_epoch_scale_where_float_seconds_are_not():
    stamp = Time(sec=1_700_000_000, nanosec=123_456_789)
    assert stamp_to_ns(stamp) == 1_700_000_000_123_456_789
    assert ns_sec_nanosec(stamp_to_ns(stamp)) == (1_700_000_000, 123_456_789)
    assert abs(stamp_to_sec(stamp) - 1_700_000_000.123456789) < 1e-6  # ~0.24 us resolution


@pytest.mark.parametrize(('seconds', 'expected'), [
    (0.0, (0, 0)),
    (1.5, (1, 500_000_000)),
    (2.0000000004, (2, 0)),  # rounds to the nearest nanosecond
    (2.0000000006, (2, 1)),
    (0.999_999_999_9, (1, 0)),  # rounding carries into sec: nanosec stays < 1e9
    (-0.25, (-1, 750_000_000)),  # builtin_interfaces: nanosec is always in [0, 1e9)
])
def test_sec_nanosec(seconds, expected):
    sec, nanosec = sec_nanosec(seconds)
    assert (sec, nanosec) == expected
    assert 0 <= nanosec < NS_PER_S
    assert sec_to_ns(seconds) == sec * NS_PER_S + nanosec


def test_round_trip_through_a_message():
    for t in (0.0, 0.02, 12.34, 1234.5678, 1_700_000_000.5):
        sec, nanosec = sec_nanosec(t)
        msg = Time(sec=sec, nanosec=nanosec)
        assert abs(stamp_to_sec(msg) - t) < 1e-6
        assert stamp_to_ns(msg) == sec_to_ns(t)
