"""The operator's money calls on both clients: attention (paged), recover, refund,
replicas, with the server's refusals decoded into the client's exceptions."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from agentjobs.client import (
    AsyncJobClient,
    FailedPrecondition,
    JobClient,
    JobNotFound,
    PermissionDenied,
    Unauthenticated,
)
from agentjobs.server.testing import RunningServer, ThreadedServer
from tests.client.conftest import Cli
from tests.client.money import Chain


@pytest.fixture
async def async_client(server: RunningServer) -> AsyncIterator[AsyncJobClient]:
    async with AsyncJobClient(
        server.grpc_target, operator_token=server.operator_token
    ) as job_client:
        yield job_client


async def test_async_client_money_calls_and_their_refusals(
    server: RunningServer, async_client: AsyncJobClient
) -> None:
    assert list((await async_client.list_attention()).jobs) == []
    assert [job async for job in async_client.iter_attention()] == []
    unpaid = await async_client.start_job({"text": "unpaid"})

    with pytest.raises(FailedPrecondition) as nothing:
        await async_client.recover_payment(unpaid.job_id)
    assert (nothing.value.code, nothing.value.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "NOTHING_TO_RECOVER",
    )
    with pytest.raises(FailedPrecondition) as forbidden:
        await async_client.authorize_refund(unpaid.job_id)
    assert forbidden.value.reason == "REFUND_NOT_POSSIBLE"
    assert forbidden.value.metadata["job_id"] == unpaid.job_id
    with pytest.raises(JobNotFound):
        await async_client.authorize_refund("no-such-job")

    (replica,) = (await async_client.list_replicas()).replicas
    assert (replica.replica_id, replica.role) == (server.app.replica_id, "all")
    assert not replica.gone

    async with AsyncJobClient(server.grpc_target) as anonymous:
        for call in (
            anonymous.list_attention(),
            anonymous.recover_payment(unpaid.job_id),
            anonymous.authorize_refund(unpaid.job_id),
            anonymous.list_replicas(),
        ):
            with pytest.raises(Unauthenticated):
                await call


def test_sync_client_pages_attention_and_refunds_a_dispute(
    threaded: ThreadedServer, cli: Cli, client: JobClient
) -> None:
    chain = Chain(threaded, cli, client)
    disputed, _ = chain.disputed("contested")
    invalid, bid = chain.start("spoofed")
    chain.run(threaded.sandbox.mark_funds_invalid(bid))
    chain.run(chain.monitor.poll_once())

    first = client.list_attention(page_size=1)
    assert len(first.jobs) == 1 and first.next_page_token
    second = client.list_attention(page_size=1, page_token=first.next_page_token)
    # Most recently changed first.
    assert [first.jobs[0].job_id, *(j.job_id for j in second.jobs)] == [invalid, disputed]
    paged = list(client.iter_attention(page_size=1))
    assert [(j.job_id, j.attention.reason) for j in paged] == [
        (invalid, "FUNDS_OR_DATUM_INVALID"),
        (disputed, "DISPUTED"),
    ]
    assert paged[0].attention.action == ""  # invalid funds: nothing the seller can do

    scheduled = client.authorize_refund(disputed).job
    assert (scheduled.job_id, scheduled.next_step) == (disputed, "refund")
    with pytest.raises(FailedPrecondition) as forbidden:
        client.authorize_refund(invalid)
    assert forbidden.value.reason == "REFUND_NOT_POSSIBLE"
    with pytest.raises(FailedPrecondition) as nothing:
        client.recover_payment(disputed)
    assert nothing.value.reason == "NOTHING_TO_RECOVER"
    (replica,) = client.list_replicas().replicas
    assert replica.replica_id == threaded.running.app.replica_id

    with JobClient(threaded.grpc_target, operator_token="nope") as impostor:
        with pytest.raises(PermissionDenied):
            impostor.list_replicas()
        with pytest.raises(PermissionDenied):
            impostor.authorize_refund(disputed)
