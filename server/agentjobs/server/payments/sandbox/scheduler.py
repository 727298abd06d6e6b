"""Runs the simulated chain's steps when the sandbox clock reaches them.

While a step runs, `now_ms()` is the moment it was due, not the moment it ran: a
ManualClock moved an hour ahead replays the hour's events at their own times, and a step
may schedule a follow-up that is already due (it runs in the same pass).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from agentjobs.server.payments.sandbox.clock import Clock
from agentjobs.server.tasks import cancel_and_wait

log = logging.getLogger(__name__)


@dataclass(order=True)
class _Due:
    due_ms: int
    seq: int
    name: str = field(compare=False)
    step: Callable[[], None] = field(compare=False)


class Scheduler:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._heap: list[_Due] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running_due: int | None = None
        # Periodic chain jobs tick at whole intervals from here, as upstream's timers do.
        self.epoch_ms = clock.now_ms()
        clock.subscribe(self._time_jumped)

    @property
    def pending(self) -> int:
        return len(self._heap)

    def now_ms(self) -> int:
        return self._clock.now_ms() if self._running_due is None else self._running_due

    def at(self, due_ms: int, name: str, step: Callable[[], None]) -> None:
        heapq.heappush(self._heap, _Due(due_ms, next(self._seq), name, step))
        self._wake.set()

    def after(self, delay_s: float, name: str, step: Callable[[], None]) -> None:
        """Run `step` once the clock is `delay_s` later than now."""
        self.at(self.now_ms() + round(delay_s * 1000), name, step)

    def next_tick_ms(self, interval_s: float, not_before_ms: int | None = None) -> int:
        """The first tick of a job running every `interval_s` that comes after now (and
        not before `not_before_ms`)."""
        earliest = max(self.now_ms() + 1, not_before_ms or 0)
        interval_ms = round(interval_s * 1000)
        if interval_ms <= 0:
            return earliest
        ticks = math.ceil((earliest - self.epoch_ms) / interval_ms)
        return self.epoch_ms + max(ticks, 0) * interval_ms

    def at_next_tick(
        self,
        interval_s: float,
        name: str,
        step: Callable[[], None],
        not_before_ms: int | None = None,
    ) -> None:
        self.at(self.next_tick_ms(interval_s, not_before_ms), name, step)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sandbox-chain")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    def run_due(self) -> None:
        now = self._clock.now_ms()
        while self._heap and self._heap[0].due_ms <= now:
            due = heapq.heappop(self._heap)
            self._running_due = due.due_ms
            try:
                due.step()
            except Exception:
                # One broken step must not stop the chain for every other payment.
                log.exception("sandbox chain step %r failed", due.name)
            finally:
                self._running_due = None

    def _time_jumped(self) -> None:
        self.run_due()
        self._wake.set()

    async def _run(self) -> None:
        while True:
            self.run_due()
            timeout = (
                max(0.0, (self._heap[0].due_ms - self._clock.now_ms()) / 1000)
                if self._heap
                else None
            )
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)


class ChainTime:
    """The time the chain and its books see: a step's due time while it runs."""

    def __init__(self, scheduler: Scheduler, clock: Clock) -> None:
        self._scheduler = scheduler
        self._clock = clock

    def now_ms(self) -> int:
        return self._scheduler.now_ms()

    def subscribe(self, listener: Callable[[], None]) -> None:
        self._clock.subscribe(listener)
