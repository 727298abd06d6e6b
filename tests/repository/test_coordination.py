"""What the replicas share besides jobs: heartbeats and the diff watermarks."""

from __future__ import annotations

from datetime import datetime

import pytest

from agentjobs.server.domain import JobStatus
from agentjobs.server.domain.steps import Step
from agentjobs.server.repository.base import JobRepository, ReplicaRow, Watermark
from tests.repository.builders import T0, T0_MS, at, insert


async def test_replicas_heartbeat_list_prune_and_remove(repo: JobRepository) -> None:
    assert await repo.list_replicas(T0_MS) == []
    await repo.heartbeat("host-b:2", "worker", started_at=T0_MS + 10, now_ms=T0_MS + 10)
    await repo.heartbeat("host-a:1", "all", started_at=T0_MS, now_ms=T0_MS)
    await repo.heartbeat("host-c:3", "api", started_at=T0_MS + 20, now_ms=T0_MS + 20)
    # A later beat moves heartbeat_at (and the role).
    await repo.heartbeat("host-a:1", "worker", started_at=T0_MS, now_ms=T0_MS + 500)
    assert await repo.list_replicas(T0_MS + 500) == [
        ReplicaRow("host-a:1", "worker", T0_MS, T0_MS + 500, 0),
        ReplicaRow("host-b:2", "worker", T0_MS + 10, T0_MS + 10, 0),
        ReplicaRow("host-c:3", "api", T0_MS + 20, T0_MS + 20, 0),
    ]
    await repo.prune_replicas(older_than_ms=T0_MS + 20)
    assert [r.replica_id for r in await repo.list_replicas(T0_MS)] == ["host-a:1", "host-c:3"]
    await repo.remove_replica("host-c:3")
    await repo.remove_replica("never-there")
    assert [r.replica_id for r in await repo.list_replicas(T0_MS)] == ["host-a:1"]


async def test_a_replica_restarted_under_its_id_shows_its_new_start(repo: JobRepository) -> None:
    """AGENTJOBS_REPLICA_ID fixed (a StatefulSet pod name): the process was killed (its
    row stayed) and started again under the same id."""
    await repo.heartbeat("pod-0", "all", started_at=T0_MS, now_ms=T0_MS + 1_000)
    await repo.heartbeat("pod-0", "worker", started_at=T0_MS + 5_000, now_ms=T0_MS + 5_000)
    assert await repo.list_replicas(T0_MS + 5_000) == [
        ReplicaRow("pod-0", "worker", T0_MS + 5_000, T0_MS + 5_000, 0)
    ]


async def test_steps_held_counts_unexpired_leases(repo: JobRepository) -> None:
    for n in range(3):
        await insert(repo, status=JobStatus.RUNNING, step=Step.RUN, run_at=T0_MS + n)
    await repo.heartbeat("w1", "worker", started_at=T0_MS, now_ms=T0_MS)
    await repo.heartbeat("w2", "worker", started_at=T0_MS + 1, now_ms=T0_MS)
    await repo.claim("w1", now_ms=T0_MS + 5, lease_ms=1_000, limit=2, affinity_grace_ms=0)
    await repo.claim("w2", now_ms=T0_MS + 5, lease_ms=9_000, limit=5, affinity_grace_ms=0)
    held = {r.replica_id: r.steps_held for r in await repo.list_replicas(T0_MS + 5)}
    assert held == {"w1": 2, "w2": 1}
    later = {r.replica_id: r.steps_held for r in await repo.list_replicas(T0_MS + 1_006)}
    assert later == {"w1": 0, "w2": 1}


async def test_watermarks(repo: JobRepository) -> None:
    assert await repo.get_watermark("payments:Preprod") is None
    first = Watermark(last_update=T0)
    await repo.set_watermark("payments:Preprod", first)
    assert await repo.get_watermark("payments:Preprod") == first
    moved = Watermark(last_update=at(1.000123), cursor_id="cursor-7")
    await repo.set_watermark("payments:Preprod", moved)
    stored = await repo.get_watermark("payments:Preprod")
    assert stored == moved
    assert stored is not None and stored.last_update.utcoffset() is not None
    assert await repo.get_watermark("payments:Mainnet") is None


async def test_a_naive_watermark_is_refused(repo: JobRepository) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await repo.set_watermark("w", Watermark(last_update=datetime(2030, 1, 1)))
    assert await repo.get_watermark("w") is None
