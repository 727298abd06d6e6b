"""Which jobs changed, in this process and in every other one sharing the database.

Wake-up hints only, never the truth: a reader woken re-reads the database, and a hint
lost (a dropped connection) costs latency, not correctness (reconnecting wakes everyone).
- hub.py: the in-process fan-out (WatchJob streams, workers, the monitor);
- postgres.py: LISTEN on the channel every write NOTIFYs in its transaction;
- sqlite.py: PRAGMA data_version, polled: it changes whenever another connection commits.
"""

from agentjobs.server.repository.feeds.hub import ChangeHub

__all__ = ["ChangeHub"]
