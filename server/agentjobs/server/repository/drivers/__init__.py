"""The narrow interface every store implements: run a function in one write transaction,
or in one read; the queries (repository/queries/) are written once, for all of them.

- sqlite.py: one writer thread owns the write connection and commits many callers'
  transactions per fsync (group commit); reads run on the event loop's thread;
- postgres.py: asyncpg through SQLAlchemy, each transaction on a pooled connection;
- memory.py: SQLite in memory, everything inline (tests; nothing survives).
"""

from agentjobs.server.repository.drivers.base import Body, Database, open_database

__all__ = ["Body", "Database", "open_database"]
