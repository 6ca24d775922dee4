"""Time as a dependency: hold expiry, sweeps, jobs and cache lifetimes read a clock the
tests can move.

`now()` is wall time, for what is stored or compared with stored times (hold expiry).
`monotonic()` is for measuring intervals in this process (cache time-to-live): it never
goes backwards when the system clock is set, and its origin means nothing.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class FrozenClock:
    """A clock that only moves when told to; for tests and the flash-sale benchmark."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)
        self._elapsed = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        """Seconds this clock has moved forward since it was made."""
        return self._elapsed

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        self._elapsed += max(0.0, seconds)
        return self._now

    def set(self, when: datetime) -> None:
        """Jump to `when`; like a system clock being set, the monotonic reading only
        ever moves forward."""
        self._elapsed += max(0.0, (when - self._now).total_seconds())
        self._now = when
