"""The one source of "now" for retention, deadlines and expiries.

Everything inside the platform is UTC. Code that needs the time takes a Clock, so tests move time
forward by days without waiting (ManualClock) while production reads the system clock.
Design: docs/design/time.md
"""

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to; for tests."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta


def to_us(moment: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime (the envelope's time unit)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: every time inside the platform must carry its zone")
    # timedelta // timedelta is exact integer arithmetic (no float): every microsecond counts.
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
