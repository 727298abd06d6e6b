"""Wiring: one process serves gRPC and MIP-003 HTTP from the same services, runs the
payment monitor and the job runner, and shuts all of it down gracefully."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from agentjobs.server.agent import Agent, load_agent
from agentjobs.server.api.grpc_server import GrpcServer
from agentjobs.server.api.http_front import create_http_app
from agentjobs.server.api.http_server import HttpLimits, HttpServer
from agentjobs.server.api.metrics import Metrics
from agentjobs.server.config import Settings
from agentjobs.server.payments.gateway import PaymentGateway
from agentjobs.server.payments.masumi import MasumiPaymentGateway
from agentjobs.server.payments.sandbox import SandboxPaymentService
from agentjobs.server.repository.base import JobRepository
from agentjobs.server.repository.factory import open_repository
from agentjobs.server.services.availability import PaymentServiceHealth
from agentjobs.server.services.book import JobBook, JobChanges
from agentjobs.server.services.earnings import EarningsService
from agentjobs.server.services.jobs import JobsService
from agentjobs.server.services.monitor import PaymentMonitor
from agentjobs.server.services.runner import JobRunner

log = logging.getLogger(__name__)

# A syntactically valid agent identifier (57+ characters) for the sandbox only.
SANDBOX_AGENT_IDENTIFIER = "sandbox" + "0" * 50 + "6167656e746a6f6273"


@dataclass
class Payments:
    gateway: PaymentGateway
    sandbox: SandboxPaymentService | None
    agent_identifier: str
    # A cheap authenticated read of the payment service, for PaymentServiceHealth.
    probe: Callable[[], Awaitable[object]] | None = None


async def start_payments(
    settings: Settings, observer: Callable[[Exception | None], None] | None = None
) -> Payments:
    sandbox: SandboxPaymentService | None = None
    if settings.uses_sandbox:
        api_key = secrets.token_hex(16)
        sandbox = SandboxPaymentService(api_key=api_key, lock_after=settings.sandbox_lock_after_s)
        url = await sandbox.start("127.0.0.1", 0)
        agent_identifier = settings.agent_identifier or SANDBOX_AGENT_IDENTIFIER
        log.warning(
            "SANDBOX PAYMENT SERVICE at %s: no PAYMENT_SERVICE_URL is configured, so payments "
            "are simulated on loopback and no real funds move",
            url,
        )
    else:
        assert settings.payment_service_url is not None
        if not settings.payment_api_key or not settings.agent_identifier:
            raise SystemExit("PAYMENT_SERVICE_URL needs PAYMENT_API_KEY and AGENT_IDENTIFIER too")
        url = settings.payment_service_url
        api_key = settings.payment_api_key.get_secret_value()
        agent_identifier = settings.agent_identifier
    gateway = MasumiPaymentGateway(
        payment_service_url=url,
        api_key=api_key,
        agent_identifier=agent_identifier,
        network=settings.network,
        timeout_s=settings.payment_timeout_s,
        seller_vkey_override=settings.seller_vkey,
        observer=observer,
    )
    return Payments(
        gateway=gateway, sandbox=sandbox, agent_identifier=agent_identifier, probe=gateway.probe
    )


class App:
    def __init__(self, settings: Settings, *, agent: Agent | None = None) -> None:
        self.settings = settings
        self.agent = agent or load_agent(settings.agent)
        self.metrics = Metrics()
        self._monitor_task: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        settings = self.settings
        self.repository: JobRepository = open_repository(settings.database_url)
        await self.repository.open()
        self.payment_health = PaymentServiceHealth()
        self.payments = await start_payments(settings, self.payment_health.observe)
        self.payment_health.probe = self.payments.probe
        self.sandbox = self.payments.sandbox
        gateway = self.payments.gateway
        self.book = JobBook(self.repository, JobChanges())
        self.runner = JobRunner(
            self.book,
            gateway,
            self.agent,
            concurrency=settings.runner_concurrency,
            submit_margin_s=settings.submit_margin_s,
        )
        self.jobs = JobsService(
            self.book,
            gateway,
            self.runner,
            self.agent,
            agent_identifier=self.payments.agent_identifier,
            sandbox=settings.uses_sandbox,
            max_input_bytes=settings.max_input_bytes,
            pay_window=timedelta(seconds=settings.pay_window_s),
            result_window=timedelta(seconds=settings.result_window_s),
            payment_health=self.payment_health,
        )
        self.earnings = EarningsService(self.repository)
        self.monitor = PaymentMonitor(
            self.book, gateway, self.runner, interval_s=settings.monitor_interval_s
        )
        self.metrics.jobs_running.set_function(lambda: self.runner.active)
        self.grpc = GrpcServer(settings, self.jobs, self.earnings, self.metrics)
        self.http = HttpServer(
            create_http_app(
                self.jobs,
                metrics=self.metrics,
                is_serving=lambda: self.jobs.accepting,
                max_body_bytes=settings.max_message_bytes,
            ),
            settings.http_address,
            HttpLimits(
                max_connections=settings.http_max_connections,
                header_timeout_s=settings.http_header_timeout_s,
                body_timeout_s=settings.http_body_timeout_s,
                keepalive_timeout_s=settings.http_keepalive_timeout_s,
                max_requests_per_connection=settings.http_max_requests_per_connection,
            ),
        )
        await self.grpc.start()
        await self.http.start()
        recovered = await self.runner.recover()
        if recovered:
            log.info("recovered %d running job(s) after a restart", recovered)
        self._monitor_task = asyncio.create_task(self.monitor.run(), name="payment-monitor")
        log.info(
            "agentjobs serving gRPC on %s and MIP-003 HTTP on http://%s:%d",
            self.grpc_target,
            self.http.host,
            self.http.port,
        )

    @property
    def grpc_target(self) -> str:
        host = self.settings.grpc_address.rpartition(":")[0]
        return f"{host}:{self.grpc.port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.http.host}:{self.http.port}"

    async def stop(self) -> None:
        """Drain: stop taking work, let RPCs and running handlers finish within the
        grace period, then close everything in reverse order of start."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        grace = self.settings.shutdown_grace_s
        self.jobs.accepting = False
        await self.grpc.set_serving(False)
        _, drained = await asyncio.gather(self.grpc.stop(grace), self.runner.drain(grace))
        if not drained:
            log.warning(
                "shutdown: jobs still running after %.1fs; they resume at next start", grace
            )
        await self.runner.stop()
        self.monitor.stop()
        if self._monitor_task is not None:
            await self._monitor_task
        await self.http.stop()
        await self.payment_health.close()
        await self.payments.gateway.close()
        if self.sandbox is not None:
            await self.sandbox.stop()
        await self.repository.close()
        log.info("agentjobs stopped")
