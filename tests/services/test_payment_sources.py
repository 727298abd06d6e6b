"""V2 payment sources end to end (issue 11, item 5), against a sandbox whose registry
lists the agent on a Web3CardanoV2 source and whose list and diff endpoints, like
upstream's, show V1 payments only unless `filterPaymentSourceType` says otherwise.

POST /payment carries paymentSourceType and supportedPaymentSourceIndex; StartJob and
/start_job echo both as Sokosumi's V2 schema reads them; the monitor's diff asks for V2
payments (or it would never see the lock) and the job runs when the buyer locks. A
server switched from V1 to V2 keeps following its open V1 payments: both source types
are polled."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import grpc

from agentjobs.server.domain import InvoiceStatus, JobStatus
from agentjobs.server.domain.payment import OnChainState, PaymentSourceType
from agentjobs.server.payments.sandbox import V1, V2, AgentListing
from agentjobs.v1 import jobs_pb2
from tests.services.agents import ScriptedAgent
from tests.services.conftest import API_KEY, serve
from tests.services.money import (
    SandboxTraffic,
    job_stub,
    post_json,
    sandbox,
    sandbox_traffic,
    serve_as,
    struct,
    watch_to_the_end,
)
from tests.services.support import invoice, poll_round, purchaser, start, watch_until

# Two registry entries of one seller: the agent as first registered (V1), and as
# registered again on a V2 source. Upstream routes a payment by the first 56 characters
# (the registry policy); the rest names the asset.
POLICY = "5eed" * 14
V1_AGENT = POLICY + "6167656e74763031"
V2_AGENT = POLICY + "6167656e74763032"


def diff_sources(traffic: SandboxTraffic) -> set[str]:
    """The payment source types of the payments the diff endpoint answered with."""
    seen: set[str] = set()
    for answer in traffic.answered("/payment/diff", 200):
        for payment in answer.body["data"]["Payments"]:
            seen.add(payment["PaymentSource"]["paymentSourceType"])
    return seen


async def unfiltered_diff(url: str) -> list[Any]:
    """GET /payment/diff as a client that sends no filterPaymentSourceType."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{url}/payment/diff", params={"network": "Preprod"}, headers={"token": API_KEY}
        ) as response,
    ):
        assert response.status == 200
        payments: list[Any] = (await response.json())["data"]["Payments"]
        return payments


async def test_a_v2_job_is_requested_echoed_polled_and_run(
    tmp_path: Path, scripted: ScriptedAgent
) -> None:
    with sandbox_traffic() as traffic:
        async with (
            sandbox(agent=AgentListing(source_type=V2)) as payment_service,
            serve(tmp_path, payment_service, scripted.agent, payment_source_index=0) as server,
            grpc.aio.insecure_channel(server.grpc_target) as channel,
            aiohttp.ClientSession(base_url=server.http_url) as http,
        ):
            stub = job_stub(channel)
            over_grpc = await stub.StartJob(
                jobs_pb2.StartJobRequest(
                    identifier_from_purchaser=purchaser(), input_data=struct({"text": "grpc"})
                )
            )
            status, over_http = await post_json(
                http,
                "/start_job",
                {"identifier_from_purchaser": purchaser(), "input_data": {"text": "http"}},
            )
            assert status == 200, over_http

            bodies = traffic.bodies("/payment")
            assert [(b["paymentSourceType"], b["supportedPaymentSourceIndex"]) for b in bodies] == [
                (V2, 0),
                (V2, 0),
            ]
            assert over_grpc.payment_source_type == V2
            assert over_grpc.HasField("supported_payment_source_index")
            assert over_grpc.supported_payment_source_index == 0
            assert (over_http["paymentSourceType"], over_http["supportedPaymentSourceIndex"]) == (
                V2,
                0,
            )
            for bid in (over_grpc.blockchain_identifier, over_http["blockchainIdentifier"]):
                shown = payment_service.payment(bid)["PaymentSource"]["paymentSourceType"]
                assert shown == V2

            # Only a diff that asks for V2 shows these payments (upstream's default is V1).
            assert await unfiltered_diff(payment_service.url) == []
            await traffic.wait(lambda: V2 in diff_sources(traffic))
            for bid in (over_grpc.blockchain_identifier, over_http["blockchainIdentifier"]):
                await payment_service.lock_funds(bid)
            final = await watch_to_the_end(stub, over_grpc.job_id)
            assert (final.status, final.result) == (jobs_pb2.JOB_STATUS_COMPLETED, "GRPC!")
            assert final.payment_source_type == V2
            other = await watch_until(server, over_http["id"])
            assert (other.status, other.result) == (JobStatus.COMPLETED, "HTTP!")
            assert other.payment_source_index == 0

            bid = over_grpc.blockchain_identifier
            async with asyncio.timeout(10):
                await payment_service.wait_for(bid, on_chain_state=OnChainState.RESULT_SUBMITTED)
            assert await poll_round(server)
            job = await server.app.jobs.get_job(over_grpc.job_id)
            assert (await invoice(server, job)).status is InvoiceStatus.CONFIRMED
            assert (await invoice(server, job)).payment_source_type == V2
    assert diff_sources(traffic) == {V2}


async def test_a_server_switched_to_v2_keeps_following_its_v1_payments(
    tmp_path: Path, scripted: ScriptedAgent
) -> None:
    agents = {V1_AGENT: AgentListing(source_type=V1), V2_AGENT: AgentListing(source_type=V2)}
    with sandbox_traffic() as traffic:
        async with sandbox(agents=agents) as payment_service:
            async with serve_as(
                tmp_path, payment_service, scripted.agent, agent_identifier=V1_AGENT
            ) as server:
                old = await start(server, text="from v1")
                assert old.payment_source_type == V1

            # The operator re-registered the agent on a V2 source and restarted.
            v2: dict[str, Any] = {"agent_identifier": V2_AGENT, "payment_source_index": 0}
            async with serve_as(tmp_path, payment_service, scripted.agent, **v2) as server:
                new = await start(server, text="from v2")
                assert new.payment_source_type == V2
                assert server.app.monitor is not None
                await payment_service.lock_funds(old.blockchain_identifier)
                await payment_service.lock_funds(new.blockchain_identifier)
                finished = [await watch_until(server, job.job_id) for job in (old, new)]
                assert [(j.status, j.result) for j in finished] == [
                    (JobStatus.COMPLETED, "FROM V1!"),
                    (JobStatus.COMPLETED, "FROM V2!"),
                ]
                async with asyncio.timeout(10):
                    await payment_service.wait_for(
                        old.blockchain_identifier, on_chain_state=OnChainState.RESULT_SUBMITTED
                    )
                assert await poll_round(server)
                assert (await invoice(server, old)).status is InvoiceStatus.CONFIRMED
                names = [f"diff:{s.value}:head" for s in PaymentSourceType]
                for name in names:
                    assert await server.app.repository.get_watermark(name) is not None, name
    assert diff_sources(traffic) == {V1, V2}
