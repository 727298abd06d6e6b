"""In-process fan-out of change hints."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

ANY = "*"


class ChangeHub:
    """Per-job wake-ups plus listeners for every change (workers, the monitor)."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._listeners: list[Callable[[], None]] = []

    def changed(self, job_ids: Iterable[str]) -> None:
        for job_id in job_ids:
            if job_id == ANY:
                self.changed_all()
                return
            for event in self._waiters.get(job_id, ()):
                event.set()
        for listener in self._listeners:
            listener()

    def changed_all(self) -> None:
        """Wake every watcher (after hints may have been lost)."""
        for events in self._waiters.values():
            for event in events:
                event.set()
        for listener in self._listeners:
            listener()

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    @property
    def watched(self) -> int:
        return sum(len(events) for events in self._waiters.values())

    @contextmanager
    def subscribe(self, job_id: str) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._waiters.setdefault(job_id, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[job_id]
