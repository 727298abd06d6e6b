"""Pricing modes over real gRPC and HTTP against the sandbox's registry (issue 11, items 5
and 8): a free agent's jobs run with no payment request at all (the sandbox refuses one
for a free listing, as upstream does), are counted as free and never invoiced; a paid
agent still refuses a job without identifier_from_purchaser; a dynamically priced job
asks for exactly what the agent priced (RequestedFunds) and the books show it; an agent
that cannot price an input refuses the job before any payment is requested."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from agentjobs.server.agent import Agent
from agentjobs.server.domain import Amount, EventType, InvoiceStatus, JobStatus
from agentjobs.server.payments.gateway import OnChainState
from agentjobs.server.payments.sandbox import AgentListing, Funds, Pricing
from agentjobs.v1 import jobs_pb2, operator_pb2
from tests.services.agents import INPUT_SCHEMA, ScriptedAgent
from tests.services.conftest import serve
from tests.services.money import (
    OPERATOR,
    POST_PAYMENT,
    get_json,
    job_stub,
    operator_stub,
    post_json,
    sandbox,
    sandbox_traffic,
    struct,
    watch_to_the_end,
)
from tests.services.support import event_types, invoice, purchaser, watch_until
from tests.support import error_details

# A native token as Masumi names units: policy id (56 hex) + asset name (hex).
TOKEN = "c48cbb3d5e57ed56e276bc45f99ab39abe94e6cd7ac39fb402da47ad" + "0014df105553444d"


def price(input_data: dict[str, Any]) -> list[tuple[int, str]]:
    """2 ADA plus 1 ADA per character, and one token per word."""
    text = str(input_data.get("text", ""))
    if input_data.get("mode") == "unpriceable":
        raise ValueError("no price for that")
    if input_data.get("mode") == "priceless":
        return [(0, "")]
    return [(2_000_000 + 1_000_000 * len(text), ""), (len(text.split()), TOKEN)]


# -- free ------------------------------------------------------------------------------
async def test_a_free_job_runs_without_a_payment_request(
    tmp_path: Path, scripted: ScriptedAgent
) -> None:
    # A free listing: upstream answers any POST /payment 400 "Pricing type not supported".
    async with (
        sandbox(agent=AgentListing(pricing=Pricing.free())) as payment_service,
        serve(tmp_path, payment_service, scripted.agent, pricing="free") as server,
        grpc.aio.insecure_channel(server.grpc_target) as channel,
        aiohttp.ClientSession(base_url=server.http_url) as http,
    ):
        stub = job_stub(channel)
        # Sokosumi starts a free agent's job with its input only.
        over_grpc = await stub.StartJob(
            jobs_pb2.StartJobRequest(input_data=struct({"text": "free lunch"}))
        )
        status, over_http = await post_json(http, "/start_job", {"input_data": {"text": "gratis"}})
        assert status == 200, over_http

        assert over_grpc.blockchain_identifier == "" and over_grpc.pay_by_time == 0
        assert over_http["blockchainIdentifier"] == "" and over_http["payByTime"] == 0
        final = await watch_to_the_end(stub, over_grpc.job_id)
        assert final.status == jobs_pb2.JOB_STATUS_COMPLETED
        assert (final.result, final.pricing, final.payment_source_type) == (
            "FREE LUNCH!",
            "free",
            "",
        )
        await watch_until(server, over_http["id"])
        status, shown = await get_json(http, f"/status?job_id={over_http['id']}")
        assert (status, shown["status"], shown["result"]) == (200, "completed", "GRATIS!")

        assert payment_service.request_counts[POST_PAYMENT] == 0
        for job_id in (over_grpc.job_id, over_http["id"]):
            types = await event_types(server, job_id)
            assert EventType.PAYMENT_REQUESTED not in types
            assert types[-1] is EventType.COMPLETED

        operator = operator_stub(channel)
        report = await operator.GetEarningsReport(
            operator_pb2.GetEarningsReportRequest(), metadata=OPERATOR
        )
        assert report.free_jobs == 2
        for total in (report.pending, report.locked, report.submitted, report.earned):
            assert total.count == 0
        completed = {c.status: c.count for c in report.jobs_by_status}
        assert completed[jobs_pb2.JOB_STATUS_COMPLETED] == 2
        invoices = await operator.ListInvoices(
            operator_pb2.ListInvoicesRequest(), metadata=OPERATOR
        )
        assert list(invoices.invoices) == []


async def test_a_paid_agent_still_needs_the_purchasers_identifier(
    tmp_path: Path, scripted: ScriptedAgent
) -> None:
    async with (
        sandbox() as payment_service,
        serve(tmp_path, payment_service, scripted.agent) as server,
        grpc.aio.insecure_channel(server.grpc_target) as channel,
        aiohttp.ClientSession(base_url=server.http_url) as http,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await job_stub(channel).StartJob(
                jobs_pb2.StartJobRequest(input_data=struct({"text": "not free"}))
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        reason, fields = error_details(refused.value)
        assert reason == "INVALID_ARGUMENT" and "identifier_from_purchaser" in fields

        status, body = await post_json(http, "/start_job", {"input_data": {"text": "not free"}})
        assert status == 400, body
        assert body["error"]["code"] == "INVALID_ARGUMENT"
        assert [v["field"] for v in body["error"]["field_violations"]] == [
            "identifier_from_purchaser"
        ]
        assert payment_service.request_counts[POST_PAYMENT] == 0


# -- dynamic ---------------------------------------------------------------------------
def priced_agent(scripted: ScriptedAgent) -> Agent:
    return Agent(handler=scripted.handle, input_schema=INPUT_SCHEMA, name="priced", price=price)


async def test_a_dynamically_priced_job_asks_for_what_the_agent_priced(
    tmp_path: Path, scripted: ScriptedAgent
) -> None:
    with sandbox_traffic() as traffic:
        async with (
            sandbox(agent=AgentListing(pricing=Pricing.dynamic())) as payment_service,
            serve(tmp_path, payment_service, priced_agent(scripted), pricing="dynamic") as server,
            grpc.aio.insecure_channel(server.grpc_target) as channel,
        ):
            stub = job_stub(channel)
            started = await stub.StartJob(
                jobs_pb2.StartJobRequest(
                    identifier_from_purchaser=purchaser(),
                    input_data=struct({"text": "three short words"}),
                )
            )
            expected = (Amount(amount=19_000_000, unit=""), Amount(amount=3, unit=TOKEN))
            [sent] = traffic.bodies("/payment")
            assert sent["RequestedFunds"] == [
                {"amount": "19000000", "unit": ""},
                {"amount": "3", "unit": TOKEN},
            ]
            bid = started.blockchain_identifier
            assert payment_service.payment(bid)["RequestedFunds"] == [
                {"amount": "19000000", "unit": ""},
                {"amount": "3", "unit": TOKEN},
            ]
            job = await server.app.jobs.get_job(started.job_id)
            assert job.pricing == "dynamic"
            assert (await invoice(server, job)).amounts == expected

            await payment_service.lock_funds(bid)
            final = await watch_to_the_end(stub, started.job_id)
            assert final.status == jobs_pb2.JOB_STATUS_COMPLETED
            async with asyncio.timeout(10):
                await payment_service.wait_for(bid, on_chain_state=OnChainState.RESULT_SUBMITTED)

            operator = operator_stub(channel)
            [shown] = (
                await operator.ListInvoices(operator_pb2.ListInvoicesRequest(), metadata=OPERATOR)
            ).invoices
            assert [(a.amount, a.unit) for a in shown.amounts] == [(19_000_000, ""), (3, TOKEN)]
            report = await server.app.earnings.report()
            owed = (
                report.total(InvoiceStatus.SUBMITTED).amounts
                or report.total(InvoiceStatus.CONFIRMED).amounts
            )
            assert sorted(owed, key=lambda a: a.unit) == sorted(expected, key=lambda a: a.unit)
            assert report.free_jobs == 0


@pytest.mark.parametrize(
    ("mode", "message"),
    [("unpriceable", "no price for that"), ("priceless", "priced this input at nothing")],
)
async def test_an_input_the_agent_cannot_price_is_refused_before_any_payment(
    tmp_path: Path, scripted: ScriptedAgent, mode: str, message: str
) -> None:
    async with (
        sandbox(agent=AgentListing(pricing=Pricing.dynamic())) as payment_service,
        serve(tmp_path, payment_service, priced_agent(scripted), pricing="dynamic") as server,
        grpc.aio.insecure_channel(server.grpc_target) as channel,
        aiohttp.ClientSession(base_url=server.http_url) as http,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await job_stub(channel).StartJob(
                jobs_pb2.StartJobRequest(
                    identifier_from_purchaser=purchaser(),
                    input_data=struct({"text": "x", "mode": mode}),
                )
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        reason, fields = error_details(refused.value)
        assert reason == "PRICING_FAILED" and "input_data" in fields
        assert message in (refused.value.details() or "")

        status, body = await post_json(
            http,
            "/start_job",
            {"identifier_from_purchaser": purchaser(), "input_data": {"mode": mode}},
        )
        assert (status, body["error"]["reason"]) == (400, "PRICING_FAILED"), body

        assert payment_service.request_counts[POST_PAYMENT] == 0
        report = await server.app.earnings.report()
        assert sum(report.jobs_by_status.values()) == 0  # nothing was stored either
    assert scripted.calls == []


async def test_a_fixed_price_job_sends_no_requested_funds(
    tmp_path: Path, scripted: ScriptedAgent
) -> None:
    """Upstream refuses RequestedFunds for a fixed-price listing: the registered price
    is what the buyer pays, and what the books show."""
    listing = AgentListing(pricing=Pricing.fixed(Funds(7_500_000)))
    with sandbox_traffic() as traffic:
        async with (
            sandbox(agent=listing) as payment_service,
            serve(tmp_path, payment_service, priced_agent(scripted)) as server,
        ):
            job = await server.app.jobs.start_job(purchaser(), {"text": "fixed"})
            [sent] = traffic.bodies("/payment")
            assert "RequestedFunds" not in sent
            assert (await invoice(server, job)).amounts == (Amount(amount=7_500_000, unit=""),)
            await payment_service.lock_funds(job.blockchain_identifier)
            assert (await watch_until(server, job.job_id)).status is JobStatus.COMPLETED
