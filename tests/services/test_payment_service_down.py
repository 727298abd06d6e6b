"""The payment service down: StartJob answers UNAVAILABLE and leaves nothing behind; a
buyer who pays while it is down (or failing) is caught up with once it is back."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from agentjobs.server.api.errors import mapping_for
from agentjobs.server.domain import JobStatus, PaymentServiceUnavailableError
from agentjobs.server.payments.sandbox import SandboxPaymentService
from agentjobs.server.testing import running_server
from tests.services.agents import ScriptedAgent
from tests.services.conftest import AGENT_IDENTIFIER, API_KEY, serve
from tests.services.support import poll_round, purchaser, start, watch_until
from tests.support import free_port


async def test_start_job_while_the_service_is_down_leaves_nothing(
    tmp_path: Path, scripted: ScriptedAgent
) -> None:
    async with running_server(
        tmp_path,
        agent=scripted.agent,
        payment_service_url=f"http://127.0.0.1:{free_port()}/api/v1",
        payment_api_key=API_KEY,
        agent_identifier=AGENT_IDENTIFIER,
        payment_timeout_s=0.5,
    ) as server:
        with pytest.raises(PaymentServiceUnavailableError) as raised:
            await server.app.jobs.start_job(purchaser(), {"text": "nobody home"}, "request-1")
        assert mapping_for(raised.value).code is grpc.StatusCode.UNAVAILABLE
        assert await server.app.repository.count() == 0
        assert (await server.app.earnings.invoices()).items == []
        assert await server.app.repository.get_by_request_id("request-1") is None


async def test_a_buyer_paying_while_the_service_is_down_is_caught_up_with(
    tmp_path: Path, scripted: ScriptedAgent
) -> None:
    port = free_port()
    payment_service = SandboxPaymentService(api_key=API_KEY, lock_after=None, settle_after=0.02)
    await payment_service.start("127.0.0.1", port)
    try:
        async with serve(
            tmp_path, payment_service, scripted.agent, payment_timeout_s=0.5
        ) as server:
            down = await start(server, text="paid while down")
            failing = await start(server, text="paid while failing")

            await payment_service.stop()  # its books (and the chain) live on in-process
            await payment_service.lock_funds(down.blockchain_identifier)
            assert not await poll_round(server)
            assert not await poll_round(server)

            await payment_service.start("127.0.0.1", port)
            payment_service.faults.error_rate = 1.0
            await payment_service.lock_funds(failing.blockchain_identifier)
            assert not await poll_round(server)
            for job in (down, failing):
                assert (await server.app.jobs.get_job(job.job_id)).status is (
                    JobStatus.AWAITING_PAYMENT
                )

            payment_service.faults.error_rate = 0.0
            for job, result in ((down, "PAID WHILE DOWN!"), (failing, "PAID WHILE FAILING!")):
                final = await watch_until(server, job.job_id)
                assert (final.status, final.result) == (JobStatus.COMPLETED, result)
                assert payment_service.accepted_submissions(job.blockchain_identifier) == 1
        assert len(scripted.calls) == 2
    finally:
        await payment_service.stop()
