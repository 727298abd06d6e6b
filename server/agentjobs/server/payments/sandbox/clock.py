"""Where the sandbox's time comes from: the wall clock, or a clock a test moves by hand."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Epoch milliseconds."""
        ...

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call `listener` whenever time jumps (the chain then runs what became due)."""
        ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def subscribe(self, listener: Callable[[], None]) -> None:
        # Wall time never jumps; the chain's own timers see it move.
        return None


class ManualClock:
    """Time stands still until a test calls advance(); everything the chain had due by
    then has happened when advance() returns."""

    def __init__(self, start_ms: int | None = None) -> None:
        self._now_ms = SystemClock().now_ms() if start_ms is None else start_ms
        self._listeners: list[Callable[[], None]] = []

    def now_ms(self) -> int:
        return self._now_ms

    def subscribe(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._now_ms += round(seconds * 1000)
        for listener in self._listeners:
            listener()


class JumpingClock:
    """The wall clock, which a test may jump forward (to the unlock time, say) while
    everything else the chain does keeps its real pace."""

    def __init__(self) -> None:
        self._offset_ms = 0
        self._listeners: list[Callable[[], None]] = []

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self._offset_ms

    def subscribe(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def jump(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._offset_ms += round(seconds * 1000)
        for listener in self._listeners:
            listener()
