"""Database faults a caller can only wait out, turned into StorageUnavailableError."""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from agentjobs.server.domain import StorageUnavailableError

# SQLite answers these while another process holds the write lock or the disk fails.
_SQLITE_TRANSIENT = ("locked", "busy", "disk i/o", "unable to open", "readonly", "full")


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
