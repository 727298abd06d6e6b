"""The timestamps every backend writes: timezone-aware UTC, microsecond precision,
and strictly increasing per row even when the wall clock stands still or steps back."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from agentjobs.server.domain import utcnow

Clock = Callable[[], datetime]

# The finest step every backend stores exactly (PostgreSQL timestamptz, our SQLite text).
TICK = timedelta(microseconds=1)

__all__ = ["TICK", "Clock", "as_utc", "later_than", "utcnow"]


def as_utc(value: datetime, name: str = "timestamp") -> datetime:
    """The same instant in UTC. A naive datetime is a bug at the caller: its zone is unknown."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def later_than(previous: datetime, now: datetime) -> datetime:
    """`now`, unless that would not move past `previous` (same microsecond, clock
    stepped back): then one tick after `previous`, so "updated_at advances" always holds."""
    now = as_utc(now)
    return now if now > previous else previous + TICK
