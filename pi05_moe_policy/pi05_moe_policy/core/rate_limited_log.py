"""Rate-limited warnings keyed by (topic, problem). Pure: no rclpy.

A node that receives bad input at 30 Hz must say so without flooding its log. ``RateLimitedLog``
emits the first occurrence of each key at once, then at most one line per ``period_s`` for that
key, and tells how many were held back in between. Every occurrence is counted, so the counts can
go to ``/diagnostics`` even when the log is quiet. Keys are independent: a bad encoding on one
topic never hides a NaN on another.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable


class RateLimitedLog:
    """Call ``emit(text)`` at most once per ``period_s`` per key; count every call.

    Thread-safe: subscription callbacks and the inference worker share one instance.

    rclpy loggers fix one severity per *calling line*, and for a bound method such as
    ``node.get_logger().info`` that line is inside this class. So give at most one severity as a
    bound method per process; wrap any other in a lambda written at the node
    (``lambda text: node.get_logger().info(text)``).
    """

    def __init__(self, emit: Callable[[str], None], period_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not period_s >= 0:
            raise ValueError(f'RateLimitedLog.period_s={period_s!r}: expected a number >= 0')
        self._emit = emit
        self._period = float(period_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[Hashable, float] = {}  # key -> clock time of the last emitted line
        self._held: dict[Hashable, int] = {}  # key -> occurrences held back since then
        self.counts: dict[Hashable, int] = {}  # key -> every occurrence

    def __call__(self, key: Hashable, text: str) -> bool:
        """Record one occurrence of ``key``; emit ``text`` unless the key spoke too recently.

        Returns True when the line was emitted.
        """
        now = self._clock()
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + 1
            last = self._last.get(key)
            if last is not None and now - last < self._period:
                self._held[key] = self._held.get(key, 0) + 1
                return False
            held = self._held.pop(key, 0)
            self._last[key] = now
        if held:
            text = f'{text} ({held} similar message(s) suppressed in the last {self._period:g} s)'
        self._emit(text)
        return True

    def total(self, predicate: Callable[[Hashable], bool] = lambda key: True) -> int:
        """Occurrences summed over the keys that satisfy ``predicate``."""
        with self._lock:
            return sum(n for key, n in self.counts.items() if predicate(key))


class FirstSeen:
    """``first(key)`` is True the first time ``key`` comes, among the last ``capacity`` keys.

    For "say it once" messages keyed by what a user sends (a prompt, a set of joint names): the
    memory stays bounded however many distinct keys a fuzzer or a chatty operator sends.
    """

    def __init__(self, capacity: int = 64) -> None:
        if capacity < 1:
            raise ValueError(f'FirstSeen.capacity={capacity!r}: expected an int >= 1')
        self._capacity = capacity
        self._seen: OrderedDict[Hashable, None] = OrderedDict()
        self._lock = threading.Lock()

    def first(self, key: Hashable) -> bool:
        with self._lock:
            if key in self._seen:
                self._seen.move_to_end(key)
                return False
            self._seen[key] = None
            if len(self._seen) > self._capacity:
                self._seen.popitem(last=False)
            return True
