"""Database faults a caller can only wait out, turned into StorageUnavailableError."""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from agentjobs.server.domain import StorageUnavailableError

# SQLite answers these while another process holds the write lock or the disk fails.
_SQLITE_TRANSIENT = ("locked", "busy", "disk i/o", "unable to open", "readonly", "full")
# PostgreSQL SQLSTATE classes (and codes) a retry later can get past: 08 connection
# exception, 40 transaction rollback (deadlock, serialization), 53 insufficient
# resources, 57 operator intervention (57014: statement_timeout / cancel, 57P01 admin
# shutdown), 55P03 lock not available. SQLAlchemy wraps asyncpg's errors in its own
# class, which keeps the code as `sqlstate`.
_POSTGRES_TRANSIENT = ("08", "40", "53", "57", "55P03")


def storage_error(exc: BaseException, what: str) -> StorageUnavailableError | None:
    """The error to raise instead of `exc`, or None when `exc` is not a storage fault."""
    original = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(original, sqlite3.OperationalError):
        text = str(original).lower()
        if any(word in text for word in _SQLITE_TRANSIENT):
            return StorageUnavailableError(f"the database is unavailable ({what}): {original}")
        return None
    if isinstance(exc, OperationalError | InterfaceError) and not isinstance(
        original, sqlite3.Error
    ):
        return StorageUnavailableError(
            f"the database is unavailable ({what}): {type(original).__name__}"
        )
    sqlstate = getattr(original, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith(_POSTGRES_TRANSIENT):
        return StorageUnavailableError(
            f"the database is unavailable ({what}): SQLSTATE {sqlstate} "
            f"({type(getattr(original, '__cause__', None) or original).__name__})"
        )
    if isinstance(original, OSError | ConnectionError | TimeoutError):
        return StorageUnavailableError(
            f"the database cannot be reached ({what}): {type(original).__name__}"
        )
    name = type(original).__module__ + "." + type(original).__name__
    if name.startswith("asyncpg.") and any(
        marker in name
        for marker in (
            "ConnectionDoesNotExist",
            "CannotConnectNow",
            "ConnectionFailure",
            "TooManyConnections",
            "AdminShutdown",
            "CrashShutdown",
            "InternalClientError",
        )
    ):
        return StorageUnavailableError(f"the database is unavailable ({what}): {name}")
    return None
