"""Which database failures are faults of the moment, answered UNAVAILABLE so the caller
retries, rather than bugs (answered INTERNAL and logged with their traceback).

A fault of the moment: SQLite busy or locked by another connection past the busy
timeout, the file unreadable or the disk full; PostgreSQL unreachable, restarting,
shutting down, out of connections, or the connection lost mid-call; a pool that had no
connection in time. Constraint violations, bad SQL and values the database refuses
are not: retrying them cannot help.
"""

from __future__ import annotations

import logging
import sqlite3
from types import TracebackType

from sqlalchemy import exc as sa_exc

from agentjobs.server.domain import StorageUnavailableError

log = logging.getLogger(__name__)

# SQLSTATE classes and codes: connection exception (08), insufficient resources (53),
# operator intervention (57P: admin/crash shutdown, cannot connect now), query
# cancelled (57014, e.g. statement_timeout), serialization failure and deadlock.
_TRANSIENT_SQLSTATES = ("08", "53", "57P", "57014", "40001", "40P01")
_TRANSIENT_SQLITE = ("locked", "busy", "unable to open", "disk i/o", "disk is full")
_CHAIN_LIMIT = 8


def is_storage_fault(error: BaseException) -> bool:
    """True when `error`, or what it wraps, is a fault of the moment (see module doc)."""
    current: BaseException | None = error
    for _ in range(_CHAIN_LIMIT):
        if current is None:
            return False
        if isinstance(current, sa_exc.TimeoutError | OSError):
            return True
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        sqlstate = getattr(current, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_TRANSIENT_SQLSTATES):
            return True
        if isinstance(current, sqlite3.OperationalError):
            text = str(current).lower()
            return any(word in text for word in _TRANSIENT_SQLITE)
        if type(current).__name__ == "InterfaceError" and "connection is closed" in str(current):
            return True
        wrapped = current.orig if isinstance(current, sa_exc.DBAPIError) else None
        current = wrapped or current.__cause__ or current.__context__
    return False


class StorageFaults:
    """`async with StorageFaults("write"):` turns a fault of the moment raised inside
    into StorageUnavailableError; every other exception passes through unchanged."""

    __slots__ = ("_what",)

    def __init__(self, what: str) -> None:
        self._what = what

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None or not isinstance(exc, Exception) or not is_storage_fault(exc):
            return
        # The driver's words stay in the log (they can name hosts and files), never the
        # statement and its parameters (a buyer's input); the caller gets a reason and
        # a retryable code.
        cause = exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc
        log.warning("database %s failed: %s: %s", self._what, type(cause).__name__, cause)
        raise StorageUnavailableError(f"the job store is unavailable for a {self._what}") from exc


READ_FAULTS = StorageFaults("read")
WRITE_FAULTS = StorageFaults("write")
