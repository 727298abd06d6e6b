"""Other processes' commits to the same SQLite file, seen through PRAGMA data_version
(a counter of a connection's that moves whenever another connection commits); then the
events written since tell which jobs changed. One tiny query per poll on the event
loop's thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3

from agentjobs.server.repository.feeds.hub import ChangeHub

log = logging.getLogger(__name__)

POLL_S = 0.1


class SqliteWatcher:
    def __init__(self, path: str, hub: ChangeHub, poll_s: float = POLL_S) -> None:
        self._path = path
        self._hub = hub
        self._poll_s = poll_s
        self._task: asyncio.Task[None] | None = None
        self._connection: sqlite3.Connection | None = None
        self._version = -1
        self._last_event = 0

    async def start(self) -> None:
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA busy_timeout = 0")
        connection.execute("PRAGMA query_only = ON")
        self._connection = connection
        self._version = self._data_version()
        self._last_event = self._max_event()
        self._task = asyncio.create_task(self._watch(), name="agentjobs-sqlite-watch")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _data_version(self) -> int:
        assert self._connection is not None
        (version,) = self._connection.execute("PRAGMA data_version").fetchone()
        return int(version)

    def _max_event(self) -> int:
        assert self._connection is not None
        (last,) = self._connection.execute(
            "SELECT COALESCE(MAX(rowid), 0) FROM job_events"
        ).fetchone()
        return int(last)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._poll_s)
            try:
                self._check()
            except sqlite3.Error as exc:
                # Busy for a moment (another process checkpointing): look again next poll.
                log.debug("the SQLite change check failed: %s", exc)

    def _check(self) -> None:
        version = self._data_version()
        if version == self._version:
            return
        self._version = version
        assert self._connection is not None
        rows = self._connection.execute(
            "SELECT rowid, job_id FROM job_events WHERE rowid > ? ORDER BY rowid LIMIT 10000",
            (self._last_event,),
        ).fetchall()
        if rows:
            self._last_event = int(rows[-1][0])
        # Steps may have become due without an event (a retry scheduled elsewhere): the
        # hub's listeners (workers) look in any case.
        self._hub.changed(dict.fromkeys(job_id for _, job_id in rows))
