"""Other processes' commits to the same SQLite file, seen through PRAGMA data_version
(a counter of a connection's that moves whenever another connection commits); then the
events written since tell which jobs changed. One tiny query per poll on the event
loop's thread.

"Written since" is rowid > the newest rowid seen. SQLite gives a new row the largest
rowid plus one, so when the newest events are deleted (delete_intent removes an
intent's events) their rowids are handed out again: the watcher remembers which event
it saw last, and when that one is gone it cannot tell what changed and wakes everyone."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

from agentjobs.server.repository.feeds.hub import ChangeHub
from agentjobs.server.tasks import cancel_and_wait

log = logging.getLogger(__name__)

POLL_S = 0.05
# Events read per query; a look reads until it has them all.
ROWS_PER_QUERY = 10_000


class SqliteWatcher:
    def __init__(self, path: str, hub: ChangeHub, poll_s: float = POLL_S) -> None:
        self._path = path
        self._hub = hub
        self._poll_s = poll_s
        self._task: asyncio.Task[None] | None = None
        self._connection: sqlite3.Connection | None = None
        self._version = -1
        # The newest event seen: its rowid and its key (job_id, sequence).
        self._last_event = 0
        self._last_key: tuple[str, int] | None = None

    async def start(self) -> None:
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA busy_timeout = 0")
        connection.execute("PRAGMA query_only = ON")
        self._connection = connection
        self._version = self._data_version()
        self._last_event, self._last_key = self._newest_event()
        self._task = asyncio.create_task(self._watch(), name="agentjobs-sqlite-watch")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _data_version(self) -> int:
        assert self._connection is not None
        (version,) = self._connection.execute("PRAGMA data_version").fetchone()
        return int(version)

    def _newest_event(self) -> tuple[int, tuple[str, int] | None]:
        assert self._connection is not None
        row = self._connection.execute(
            "SELECT rowid, job_id, sequence FROM job_events ORDER BY rowid DESC LIMIT 1"
        ).fetchone()
        return (0, None) if row is None else (int(row[0]), (str(row[1]), int(row[2])))

    def _last_seen_is_gone(self) -> bool:
        if self._last_key is None:
            return False
        assert self._connection is not None
        row = self._connection.execute(
            "SELECT job_id, sequence FROM job_events WHERE rowid = ?", (self._last_event,)
        ).fetchone()
        return row is None or (str(row[0]), int(row[1])) != self._last_key

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
        if self._last_seen_is_gone():
            # Deleted, its rowid perhaps reused: the events since cannot be told apart.
            self._last_event, self._last_key = self._newest_event()
            self._hub.changed_all()
            return
        changed: dict[str, None] = {}
        while True:
            rows = self._connection.execute(
                "SELECT rowid, job_id, sequence FROM job_events WHERE rowid > ? "
                "ORDER BY rowid LIMIT ?",
                (self._last_event, ROWS_PER_QUERY),
            ).fetchall()
            if rows:
                last = rows[-1]
                self._last_event, self._last_key = int(last[0]), (str(last[1]), int(last[2]))
            changed.update(dict.fromkeys(str(row[1]) for row in rows))
            if len(rows) < ROWS_PER_QUERY:
                break
        # Steps may have become due without an event (a retry scheduled elsewhere): the
        # hub's listeners (workers) look in any case.
        self._hub.changed(changed)
