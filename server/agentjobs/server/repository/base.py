"""The repository's public names (the implementation is store.py)."""

from agentjobs.server.repository.queries.coordination import ReplicaRow, Watermark
from agentjobs.server.repository.queries.reads import JobState, Page
from agentjobs.server.repository.queries.writes import Fence, Lease
from agentjobs.server.repository.store import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    JobRepository,
    RequestIdTakenError,
)

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "Fence",
    "JobRepository",
    "JobState",
    "Lease",
    "Page",
    "ReplicaRow",
    "RequestIdTakenError",
    "Watermark",
]
