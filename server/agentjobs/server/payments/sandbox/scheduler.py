"""Runs the simulated chain's delayed steps when the sandbox clock reaches them."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from agentjobs.server.payments.sandbox.clock import Clock

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
        clock.subscribe(self._wake.set)

    @property
    def pending(self) -> int:
        return len(self._heap)

    def after(self, delay_s: float, name: str, step: Callable[[], None]) -> None:
        """Run `step` once the clock is `delay_s` later than now."""
        due = self._clock.now_ms() + round(delay_s * 1000)
        heapq.heappush(self._heap, _Due(due, next(self._seq), name, step))
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sandbox-chain")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def run_due(self) -> None:
        now = self._clock.now_ms()
        while self._heap and self._heap[0].due_ms <= now:
            due = heapq.heappop(self._heap)
            try:
                due.step()
            except Exception:
                # One broken step must not stop the chain for every other payment.
                log.exception("sandbox chain step %r failed", due.name)

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
