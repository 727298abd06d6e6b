"""Which database failures are faults of the moment, answered UNAVAILABLE so the caller
retries, rather than bugs (answered INTERNAL and logged with their traceback).

A fault of the moment: SQLite busy or locked by another process past the busy timeout,
the file unreadable, the disk full; PostgreSQL unreachable, restarting, shutting down,
out of connections, a statement cancelled by its timeout, a deadlock, the connection
lost mid-call; a pool with no connection in time. Constraint violations, bad SQL and
values the database refuses are not: retrying them cannot help.
"""

from __future__ import annotations

import logging
import sqlite3

from sqlalchemy import exc as sa_exc

from agentjobs.server.domain import StorageUnavailableError

log = logging.getLogger(__name__)

# SQLite answers these while another process holds the write lock or the disk fails.
_SQLITE_TRANSIENT = ("locked", "busy", "disk i/o", "unable to open", "disk is full")
# PostgreSQL SQLSTATE classes (and codes) a retry later can get past: 08 connection
# exception, 40 transaction rollback (deadlock, serialization), 53 insufficient
# resources, 57 operator intervention (57014: statement_timeout / cancel, 57P01 admin
# shutdown), 55P03 lock not available. SQLAlchemy wraps asyncpg's errors in its own
# class, which keeps the code as `sqlstate`.
_POSTGRES_TRANSIENT = ("08", "40", "53", "57", "55P03")
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
        if isinstance(sqlstate, str) and sqlstate.startswith(_POSTGRES_TRANSIENT):
            return True
        if isinstance(current, sqlite3.OperationalError):
            text = str(current).lower()
            return any(word in text for word in _SQLITE_TRANSIENT)
        if type(current).__name__ in ("ConnectionDoesNotExistError", "CannotConnectNowError"):
            return True
        if type(current).__name__ == "InterfaceError" and "connection is closed" in str(current):
            return True
        wrapped = current.orig if isinstance(current, sa_exc.DBAPIError) else None
        current = wrapped or current.__cause__ or current.__context__
    return False


def storage_error(exc: BaseException, what: str) -> StorageUnavailableError | None:
    """The error to raise instead of `exc` (logged for the operator), or None when `exc`
    is not a storage fault."""
    if not isinstance(exc, Exception) or not is_storage_fault(exc):
        return None
    # The driver's words go to the log (they can name hosts and files), never the
    # statement and its parameters (a buyer's input); the caller gets a reason and a
    # retryable code.
    cause = exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc
    log.warning("database %s failed: %s: %s", what, type(cause).__name__, cause)
    code = _sqlstate(exc)
    return StorageUnavailableError(
        f"the job store is unavailable for a {what}" + (f" (SQLSTATE {code})" if code else "")
    )


def _sqlstate(error: BaseException) -> str | None:
    """The PostgreSQL error code somewhere in the chain (not secret: a class of fault)."""
    current: BaseException | None = error
    for _ in range(_CHAIN_LIMIT):
        if current is None:
            return None
        code = getattr(current, "sqlstate", None)
        if isinstance(code, str):
            return code
        wrapped = current.orig if isinstance(current, sa_exc.DBAPIError) else None
        current = wrapped or current.__cause__ or current.__context__
    return None
