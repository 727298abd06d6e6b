"""LISTEN on the channel every write NOTIFYs (delivered at commit, to every replica)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg

from agentjobs.server.repository.database_url import DatabaseTarget
from agentjobs.server.repository.feeds.hub import ChangeHub
from agentjobs.server.repository.queries.writes import NOTIFY_CHANNEL
from agentjobs.server.tasks import cancel_and_wait

log = logging.getLogger(__name__)

RECONNECT_MAX_S = 5.0


def asyncpg_dsn(target: DatabaseTarget) -> str:
    url = target.sql_url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class PostgresListener:
    def __init__(self, target: DatabaseTarget, hub: ChangeHub) -> None:
        self._dsn = asyncpg_dsn(target)
        self._hub = hub
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="agentjobs-listen")
        # Watchers started after start() returns must not miss a change: wait until
        # LISTEN is in place (bounded: the feed still reconnects in the background).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await self._connected.wait()

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _listen(self) -> None:
        pause = 0.1
        while True:
            connection: Any = None
            try:
                connection = await asyncpg.connect(self._dsn, timeout=10)
                lost = asyncio.Event()
                connection.add_termination_listener(lambda _c, lost=lost: lost.set())
                await connection.add_listener(NOTIFY_CHANNEL, self._notified)
                self._connected.set()
                # Whatever changed while we were not listening: everyone re-reads.
                self._hub.changed_all()
                pause = 0.1
                await lost.wait()
                log.warning("the change feed's PostgreSQL connection was lost; reconnecting")
            except asyncio.CancelledError:
                raise
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.warning("the change feed cannot listen on PostgreSQL (%s); retrying", exc)
            finally:
                if connection is not None and not connection.is_closed():
                    with contextlib.suppress(Exception):
                        await connection.close()
            await asyncio.sleep(pause)
            pause = min(pause * 2, RECONNECT_MAX_S)

    def _notified(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self._hub.changed(payload.split(",") if payload else ())
