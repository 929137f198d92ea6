"""When a stream is due, on the simulator's clock: rates that need not divide the tick rate."""


class RateSchedule:
    """Fires at `hz` on average when polled once per tick of a faster clock.

    30 Hz polled at 50 Hz fires on 3 ticks of every 5. If polling falls behind by more than a
    period, the missed firings are dropped rather than burst.
    """

    def __init__(self, hz: float, start: float = 0.0):
        if hz <= 0:
            raise ValueError(f'hz must be > 0, got {hz!r}')
        self.period = 1.0 / hz
        self.next = start

    def due(self, now: float) -> bool:
        """True (and schedule the next firing) if a firing is due at time `now` (s)."""
        if now + 1e-9 < self.next:
            return False
        self.next += self.period
        if self.next <= now:
            self.next = now + self.period
        return True
