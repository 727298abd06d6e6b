"""One job's claim on one of the runner's handler slots (its concurrency limit)."""

from __future__ import annotations

import asyncio


class Slot:
    """Taken while the job's handler computes, given back while it waits for a person.

    It remembers whether it is held, so giving it back after a cancellation that struck
    while it was being taken again can never release a slot it does not hold (which
    would silently raise the concurrency limit for every later job)."""

    def __init__(self, slots: asyncio.Semaphore) -> None:
        self._slots = slots
        self.held = False

    async def take(self) -> None:
        await self._slots.acquire()
        self.held = True

    def give_back(self) -> None:
        if self.held:
            self.held = False
            self._slots.release()
