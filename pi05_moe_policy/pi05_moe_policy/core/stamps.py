"""Message stamps <-> seconds and nanoseconds. Pure: no rclpy, no message imports.

A stamp is any object with integer ``sec`` and ``nanosec`` fields: rclpy's
``builtin_interfaces/Time`` and ``Duration``, and the same messages read by rosbags. Build a
message from :func:`sec_nanosec` with ``Time(sec=..., nanosec=...)``.

Float seconds have about 0.24 us resolution at epoch scale; where a stamp must survive a round
trip exactly (a chunk's stamp is its observation's), copy the message instead.
"""

from __future__ import annotations

from typing import Any

NS_PER_S = 1_000_000_000


def stamp_to_sec(stamp: Any) -> float:
    """Seconds of a ``sec``/``nanosec`` stamp, as a float."""
    return stamp.sec + stamp.nanosec * 1e-9


def stamp_to_ns(stamp: Any) -> int:
    """Nanoseconds of a ``sec``/``nanosec`` stamp, exact."""
    return stamp.sec * NS_PER_S + stamp.nanosec


def sec_to_ns(seconds: float) -> int:
    """Float seconds rounded to the nearest nanosecond."""
    return round(seconds * 1e9)


def sec_nanosec(seconds: float) -> tuple[int, int]:
    """``(sec, nanosec)`` of float seconds, with ``0 <= nanosec < 1e9`` (negative times too)."""
    return ns_sec_nanosec(sec_to_ns(seconds))


def ns_sec_nanosec(nanoseconds: int) -> tuple[int, int]:
    """``(sec, nanosec)`` of integer nanoseconds, with ``0 <= nanosec < 1e9``."""
    return divmod(int(nanoseconds), NS_PER_S)
