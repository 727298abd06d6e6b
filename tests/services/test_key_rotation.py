"""A rotated PAYMENT_API_KEY (issue 11, item 2). The payment service answers
submit-result 403 to any key but the one that created the payment: the job is not
failed and not retried in a loop; its money needs a person (API_KEY_MISMATCH, with what
to do), /availability still says the agent takes jobs (the key itself was accepted),
and once the operator has restored the old key, RecoverPayment submits it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc

from agentjobs.server.domain import InvoiceStatus, JobStatus
from agentjobs.server.domain.lifecycle import AttentionReason
from agentjobs.server.domain.steps import Step
from agentjobs.v1 import jobs_pb2, operator_pb2
from tests.services.agents import ScriptedAgent
from tests.services.conftest import API_KEY, serve
from tests.services.money import (
    MINUTE,
    OPERATOR,
    SUBMIT_RESULT,
    job_stub,
    operator_stub,
    request_count,
    requests_report,
    sandbox,
    serve_as,
    watch_to_the_end,
)
from tests.services.support import invoice, poll_round, start, watch_until

KEY_B = "rotated-payment-key-b"


async def test_a_rotated_key_asks_for_the_old_one_and_recovers_with_it(
    tmp_path: Path, scripted: ScriptedAgent
) -> None:
    async with sandbox() as payment_service:
        payment_service.add_api_key(KEY_B)
        # Key A creates the payment; the agent is still at work when the server stops.
        async with serve(tmp_path, payment_service, scripted.agent, shutdown_grace_s=0) as server:
            job = await start(server, text="rotated", mode="hold")
            bid = job.blockchain_identifier
            await payment_service.lock_funds(bid)
            async with asyncio.timeout(10):
                await scripted.wait_for_calls(1)

        scripted.gate.set()
        # Monitor rounds only when the test asks: no other call follows the 403 by itself.
        async with (
            serve_as(
                tmp_path,
                payment_service,
                scripted.agent,
                payment_api_key=KEY_B,
                monitor_interval_s=3600,
            ) as server,
            grpc.aio.insecure_channel(server.grpc_target) as channel,
        ):
            flagged = await watch_until(server, job.job_id, lambda j: j.attention is not None)
            # A 403 is about that payment: the service accepted our key, and new jobs can
            # still start (/availability must not tell the registry otherwise).
            available = await job_stub(channel).GetAvailability(jobs_pb2.GetAvailabilityRequest())
            assert available.availability == jobs_pb2.AVAILABILITY_AVAILABLE, available.message
            assert flagged.status is JobStatus.RUNNING  # not failed: the money is still ours
            assert flagged.attention is not None
            assert flagged.attention.reason == AttentionReason.API_KEY_MISMATCH
            assert "another API key" in flagged.attention.message
            assert flagged.attention.action == f"agentjobs recover {job.job_id}"
            report = await requests_report(payment_service)
            [refused] = report["payments"][bid]["rejectedSubmitResults"]
            assert refused["status"] == 403
            assert report["payments"][bid]["acceptedSubmitResults"] == []

            # No retry loop: the monitor goes on polling, nothing submits again, and the
            # next try is scheduled a long way off.
            for _ in range(5):
                assert await poll_round(server)
            assert request_count(await requests_report(payment_service), *SUBMIT_RESULT) == 1
            waiting = await server.app.jobs.get_job(job.job_id)
            assert waiting.step is Step.SUBMIT and waiting.run_at is not None
            assert waiting.run_at - server.app.clock.now_ms() > 10 * MINUTE * 1000
            assert (await invoice(server, job)).status is InvoiceStatus.PAID
            assert payment_service.accepted_submissions(bid) == 0

        # The operator puts key A back and asks for the submission.
        async with (
            serve_as(tmp_path, payment_service, scripted.agent, payment_api_key=API_KEY) as server,
            grpc.aio.insecure_channel(server.grpc_target) as channel,
        ):
            listed = await operator_stub(channel).ListAttention(
                operator_pb2.ListAttentionRequest(), metadata=OPERATOR
            )
            assert [(j.job_id, j.attention.reason) for j in listed.jobs] == [
                (job.job_id, AttentionReason.API_KEY_MISMATCH)
            ]
            answer = await operator_stub(channel).RecoverPayment(
                operator_pb2.RecoverPaymentRequest(job_id=job.job_id), metadata=OPERATOR
            )
            assert answer.job.next_step == Step.SUBMIT.value
            final = await watch_to_the_end(job_stub(channel), job.job_id)
            assert (final.status, final.result) == (jobs_pb2.JOB_STATUS_COMPLETED, "ROTATED!")
            assert not final.HasField("attention")
            assert payment_service.accepted_submissions(bid) == 1
            assert payment_service.request_counts[SUBMIT_RESULT] == 2
            assert (await invoice(server, job)).status in (
                InvoiceStatus.SUBMITTED,
                InvoiceStatus.CONFIRMED,
            )
            listed = await operator_stub(channel).ListAttention(
                operator_pb2.ListAttentionRequest(), metadata=OPERATOR
            )
            assert list(listed.jobs) == []
