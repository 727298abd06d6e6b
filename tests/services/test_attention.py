"""The operator's view of money that needs a person (issue 11, "Attention"): ListAttention
(OperatorService, operator token) lists every such job with its reason, what happened
and what to do; the Prometheus gauge agentjobs_payments_needing_attention{reason=...}
on /metrics counts them, refreshed with the replica's heartbeat (every lease / 3).

The jobs here need a person for reasons the payment service really produces: a
submission the chain job keeps failing (recovered on our own a bounded number of times,
then left to the operator, whose RecoverPayment lands it), a dispute, and invalid funds.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import aiohttp
import grpc
import pytest

from agentjobs.server.domain import InvoiceStatus, Job, JobStatus
from agentjobs.server.domain.lifecycle import AttentionReason, Policy
from agentjobs.server.domain.payment import NextAction, OnChainState
from agentjobs.server.testing import RunningServer
from agentjobs.v1 import operator_pb2
from tests.services.agents import ScriptedAgent
from tests.services.conftest import serve
from tests.services.money import (
    MINUTE,
    OPERATOR,
    RECOVERY,
    job_until,
    operator_stub,
    sandbox,
    stepped_sandbox,
)
from tests.services.support import invoice, poll_round, start, watch_until
from tests.support import error_details

GAUGE = re.compile(r'^agentjobs_payments_needing_attention\{reason="([A-Z_]+)"\} (\S+)$', re.M)
MAX_RECOVERIES = Policy().max_recoveries


class GaugeRefreshes:
    """Counts the heartbeat's refreshes of the attention gauge (the real Metrics object,
    observed), so a test waits for the next one instead of sleeping."""

    def __init__(self, server: RunningServer) -> None:
        self._metrics = server.app.metrics
        self._original = self._metrics.set_attention
        self._changed = asyncio.Condition()
        self._telling: set[asyncio.Task[None]] = set()
        self.count = 0

    def __enter__(self) -> GaugeRefreshes:
        def refreshed(counts: dict[str, int]) -> None:
            self._original(counts)
            self.count += 1
            task = asyncio.get_running_loop().create_task(self._tell())
            self._telling.add(task)
            task.add_done_callback(self._telling.discard)

        self._metrics.set_attention = refreshed  # type: ignore[method-assign]
        return self

    def __exit__(self, *_exc: object) -> None:
        self._metrics.set_attention = self._original  # type: ignore[method-assign]

    async def _tell(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def next(self, within_s: float = 10) -> None:
        """Until a refresh that read the database after this call has been shown."""
        wanted = self.count + 2  # one may be under way already, with older counts
        async with asyncio.timeout(within_s), self._changed:
            await self._changed.wait_for(lambda: self.count >= wanted)


def recovered_times(count: int) -> Callable[[Job], bool]:
    return lambda job: job.recoveries >= count


async def gauge(http: aiohttp.ClientSession) -> dict[str, float]:
    async with http.get("/metrics") as response:
        assert response.status == 200
        text = await response.text()
    return {reason: float(value) for reason, value in GAUGE.findall(text)}


async def test_the_operator_sees_what_needs_a_person_and_the_gauge_counts_it(
    tmp_path: Path, scripted: ScriptedAgent
) -> None:
    async with (
        stepped_sandbox() as (payment_service, chain_clock),
        serve(tmp_path, payment_service, scripted.agent, lease_s=0.3) as server,
        grpc.aio.insecure_channel(server.grpc_target) as channel,
        aiohttp.ClientSession(base_url=server.http_url) as http,
    ):
        operator = operator_stub(channel)
        with GaugeRefreshes(server) as refreshed:
            await refreshed.next()
            assert await gauge(http) == {}

            # 1. The chain job fails our submission again and again.
            failing = await start(server, text="unlucky")
            bid = failing.blockchain_identifier
            await payment_service.lock_funds(bid)
            assert (await watch_until(server, failing.job_id)).status is JobStatus.COMPLETED
            for recovered in range(1, MAX_RECOVERIES + 1):
                await payment_service.fail_next_action(bid, f"collateral missing ({recovered})")
                await job_until(server, failing.job_id, recovered_times(recovered))
            await payment_service.fail_next_action(bid, "collateral missing (again)")
            await job_until(server, failing.job_id, lambda j: j.attention is not None)
            assert payment_service.request_counts[RECOVERY] == MAX_RECOVERIES  # bounded

            # 2. The buyer disputes a result that reached the chain.
            disputed = await start(server, text="contested")
            await payment_service.lock_funds(disputed.blockchain_identifier)
            assert (await watch_until(server, disputed.job_id)).status is JobStatus.COMPLETED
            chain_clock.advance(MINUTE)
            async with asyncio.timeout(10):
                await payment_service.wait_for(
                    disputed.blockchain_identifier, on_chain_state=OnChainState.RESULT_SUBMITTED
                )
            await payment_service.request_refund(disputed.blockchain_identifier)

            # 3. The buyer's funds are invalid: the job never runs.
            invalid = await start(server, text="spoofed")
            await payment_service.mark_funds_invalid(invalid.blockchain_identifier)
            assert (await watch_until(server, invalid.job_id)).status is JobStatus.FAILED
            await job_until(server, disputed.job_id, lambda j: j.attention is not None)

            listed = await operator.ListAttention(
                operator_pb2.ListAttentionRequest(), metadata=OPERATOR
            )
            shown = {j.job_id: j.attention for j in listed.jobs}
            assert set(shown) == {failing.job_id, disputed.job_id, invalid.job_id}
            assert shown[failing.job_id].reason == AttentionReason.SUBMISSION_FAILED
            assert "collateral missing (again)" in shown[failing.job_id].message
            assert shown[failing.job_id].action == f"agentjobs recover {failing.job_id}"
            assert shown[disputed.job_id].reason == AttentionReason.DISPUTED
            assert shown[disputed.job_id].action == f"agentjobs refund {disputed.job_id}"
            assert shown[invalid.job_id].reason == AttentionReason.FUNDS_OR_DATUM_INVALID
            assert "invalid" in shown[invalid.job_id].message
            assert all(attention.since.seconds > 0 for attention in shown.values())
            # Most recently changed first.
            changed = [j.update_time.ToNanoseconds() for j in listed.jobs]
            assert changed == sorted(changed, reverse=True)

            await refreshed.next()
            assert await gauge(http) == {
                AttentionReason.SUBMISSION_FAILED: 1.0,
                AttentionReason.DISPUTED: 1.0,
                AttentionReason.FUNDS_OR_DATUM_INVALID: 1.0,
            }

            # Without the operator token nothing is listed.
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await operator.ListAttention(operator_pb2.ListAttentionRequest())
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED

            # The operator's RecoverPayment: the submission is retried and lands.
            await operator.RecoverPayment(
                operator_pb2.RecoverPaymentRequest(job_id=failing.job_id), metadata=OPERATOR
            )
            await job_until(server, failing.job_id, lambda j: j.attention is None)
            assert payment_service.request_counts[RECOVERY] == MAX_RECOVERIES + 1
            chain_clock.advance(MINUTE)
            async with asyncio.timeout(10):
                await payment_service.wait_for(bid, on_chain_state=OnChainState.RESULT_SUBMITTED)
            assert await poll_round(server)
            assert (await invoice(server, failing)).status is InvoiceStatus.CONFIRMED

            listed = await operator.ListAttention(
                operator_pb2.ListAttentionRequest(), metadata=OPERATOR
            )
            assert {j.job_id for j in listed.jobs} == {disputed.job_id, invalid.job_id}
            await refreshed.next()
            assert await gauge(http) == {
                AttentionReason.SUBMISSION_FAILED: 0.0,
                AttentionReason.DISPUTED: 1.0,
                AttentionReason.FUNDS_OR_DATUM_INVALID: 1.0,
            }


@pytest.mark.parametrize(
    ("mode", "status"),
    [("hold", JobStatus.RUNNING), ("ask", JobStatus.AWAITING_INPUT)],
    ids=["running", "asking"],
)
async def test_recovering_a_payment_never_stops_the_agent_at_work(
    tmp_path: Path, scripted: ScriptedAgent, mode: str, status: JobStatus
) -> None:
    """The job is the agent's until it has a result: an operator's RecoverPayment then is
    refused (FAILED_PRECONDITION, AGENT_AT_WORK), and the agent keeps working (or its
    question keeps its deadline). It used to take the job's one step over: the agent was
    stopped (or the question's deadline dropped) and, the recovery done, the job stayed
    RUNNING with nothing left to run it."""
    async with (
        sandbox() as payment_service,
        serve(tmp_path, payment_service, scripted.agent, shutdown_grace_s=0) as server,
        grpc.aio.insecure_channel(server.grpc_target) as channel,
    ):
        job = await start(server, text="busy", mode=mode)
        bid = job.blockchain_identifier
        await payment_service.lock_funds(bid)
        await watch_until(server, job.job_id, lambda j: j.status is status)
        await payment_service.fail_next_action(bid, "node down")
        flagged = await watch_until(server, job.job_id, lambda j: j.attention is not None)
        assert flagged.attention is not None
        assert flagged.attention.reason == AttentionReason.PAYMENT_ERROR

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await operator_stub(channel).RecoverPayment(
                operator_pb2.RecoverPaymentRequest(job_id=job.job_id), metadata=OPERATOR
            )
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_details(refused.value)[0] == "AGENT_AT_WORK"
        assert payment_service.request_counts[RECOVERY] == 0
        assert scripted.active == 1  # still at work (or waiting for its answer)
        still = await server.app.jobs.get_job(job.job_id)
        assert (still.status, still.step) == (status, flagged.step)

        assert payment_service.payment(bid)["NextAction"]["requestedAction"] == (
            NextAction.WAITING_FOR_MANUAL_ACTION
        )
    assert len(scripted.calls) == 1


async def test_a_recovery_the_payment_service_cannot_retry_leaves_no_loop(
    tmp_path: Path, scripted: ScriptedAgent
) -> None:
    """A parked action that was a plain wait (the job had failed, the buyer's money still
    locked) is not retryable: error-state-recovery answers 400. The attention then says
    to look in the payment service instead of suggesting the same recovery again."""
    async with (
        sandbox() as payment_service,
        serve(tmp_path, payment_service, scripted.agent, shutdown_grace_s=0) as server,
        grpc.aio.insecure_channel(server.grpc_target) as channel,
    ):
        job = await start(server, text="fails", mode="raise")
        bid = job.blockchain_identifier
        await payment_service.lock_funds(bid)
        await watch_until(server, job.job_id, lambda j: j.status is JobStatus.FAILED)
        await payment_service.fail_next_action(bid, "node down")
        # A failed job's payment still changes: wait on every write, not on the stream.
        flagged = await job_until(server, job.job_id, lambda j: j.attention is not None)
        assert flagged.attention is not None
        assert flagged.attention.action == f"agentjobs recover {job.job_id}"

        await operator_stub(channel).RecoverPayment(
            operator_pb2.RecoverPaymentRequest(job_id=job.job_id), metadata=OPERATOR
        )
        refused = await job_until(
            server,
            job.job_id,
            lambda j: j.attention is not None and "refused" in j.attention.message,
        )
        assert refused.attention is not None
        assert refused.attention.reason == AttentionReason.PAYMENT_ERROR
        assert "not retryable" in refused.attention.message
        assert refused.attention.action == ""
        assert refused.step is None
        assert payment_service.request_counts[RECOVERY] == 1
