"""Wiring: one process (a replica) serves gRPC and MIP-003 HTTP from the same services,
runs workers that claim steps from the database and, when it holds the lease, the
payment monitor; and shuts all of it down gracefully. Everything is built here, in
the constructor's order; nothing reaches for a global.

Roles: `all` (the default: everything), `api` (gRPC + HTTP, never runs steps or the
monitor), `worker` (steps and the monitor; serves only health and metrics).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from agentjobs.server.agent import Agent, load_agent
from agentjobs.server.api.grpc_server import GrpcServer
from agentjobs.server.api.http_front import create_http_app
from agentjobs.server.api.http_server import HttpLimits, HttpServer
from agentjobs.server.api.metrics import Metrics
from agentjobs.server.config import Settings
from agentjobs.server.domain import DomainError
from agentjobs.server.domain.lifecycle import Policy
from agentjobs.server.domain.payment import PaymentSourceType, Pricing
from agentjobs.server.domain.steps import Step
from agentjobs.server.payments.gateway import PaymentGateway
from agentjobs.server.payments.masumi import MasumiPaymentGateway
from agentjobs.server.payments.sandbox import SandboxPaymentService
from agentjobs.server.payments.sandbox.clock import Clock as SandboxClock
from agentjobs.server.payments.signing import load_signer
from agentjobs.server.repository.base import JobRepository
from agentjobs.server.repository.database_url import Backend, parse_database_url
from agentjobs.server.repository.factory import open_repository
from agentjobs.server.services.agent_runner import AgentRunner
from agentjobs.server.services.availability import PaymentServiceHealth
from agentjobs.server.services.core import Clock, Core
from agentjobs.server.services.earnings import EarningsService
from agentjobs.server.services.intents import IntentSettings, PaymentIntents
from agentjobs.server.services.jobs import JobsService
from agentjobs.server.services.monitor import PaymentMonitor
from agentjobs.server.services.operator import OperatorService, ReplicaHeartbeat
from agentjobs.server.services.steps import StepHandler, payment_steps
from agentjobs.server.services.steps.run_agent import RunAgent
from agentjobs.server.services.steps.submit import submit_result
from agentjobs.server.services.worker import Worker

log = logging.getLogger(__name__)

# A syntactically valid agent identifier (57+ characters) for the sandbox only.
SANDBOX_AGENT_IDENTIFIER = "sandbox" + "0" * 50 + "6167656e746a6f6273"
# Replicas without a heartbeat for this long are removed from the replicas table.
FORGET_REPLICAS_AFTER_MS = 24 * 3600 * 1000


@dataclass
class Payments:
    gateway: MasumiPaymentGateway
    sandbox: SandboxPaymentService | None
    agent_identifier: str
    # A cheap authenticated read of the payment service, for PaymentServiceHealth.
    probe: Callable[[], Awaitable[object]] | None = None


def default_replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def sandbox_state_file(database_url: str | None) -> Path | None:
    """Where the embedded sandbox keeps its payments: beside the SQLite file, so the two
    survive a restart together and go when the database file goes. None for memory://
    (nothing survives anyway) and PostgreSQL (no file of ours to put it beside; several
    replicas would each start their own sandbox)."""
    target = parse_database_url(database_url)
    if target.backend is not Backend.SQLITE or target.url is None or not target.url.database:
        return None
    return Path(f"{target.url.database}.sandbox.json")


async def start_payments(
    settings: Settings,
    observer: Callable[[Exception | None], None] | None = None,
    *,
    sandbox_clock: SandboxClock | None = None,
) -> Payments:
    sandbox: SandboxPaymentService | None = None
    if settings.uses_sandbox:
        api_key = secrets.token_hex(16)
        sandbox = SandboxPaymentService(
            api_key=api_key,
            lock_after=settings.sandbox_lock_after_s,
            state_file=sandbox_state_file(settings.database_url),
            clock=sandbox_clock,
        )
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


def policy_for(settings: Settings) -> Policy:
    return Policy(
        chain_pickup_ms=int(settings.chain_pickup_s * 1000),
        submit_margin_ms=int(settings.submit_margin_s * 1000),
        expiry_grace_ms=int(settings.expiry_grace_s * 1000),
        free_deadline_ms=int(settings.result_window_s * 1000),
        retry_base_ms=int(settings.retry_base_s * 1000),
        retry_max_ms=int(settings.retry_max_s * 1000),
    )


class App:
    def __init__(
        self,
        settings: Settings,
        *,
        agent: Agent | None = None,
        clock: Clock | None = None,
        sandbox_clock: SandboxClock | None = None,
    ) -> None:
        """`clock`: the server's time; `sandbox_clock`: the built-in sandbox's (tests)."""
        self.settings = settings
        self._sandbox_clock = sandbox_clock
        self.agent = agent or load_agent(settings.agent)
        if settings.pricing == "dynamic" and self.agent.price is None:
            raise SystemExit(
                "AGENTJOBS_PRICING=dynamic needs an agent that prices its jobs (Agent.price)"
            )
        self.signer = load_signer(settings.signing_key_file, settings.network)
        self.clock = clock or Clock()
        self.replica_id = settings.replica_id or default_replica_id()
        self.metrics = Metrics()
        self.worker: Worker | None = None
        self.monitor: PaymentMonitor | None = None
        self._background: list[asyncio.Task[None]] = []
        self._stopped = asyncio.Event()

    @property
    def gateway(self) -> PaymentGateway:
        return self.payments.gateway

    async def start(self) -> None:
        settings = self.settings
        self.repository: JobRepository = open_repository(settings.database_url)
        await self.repository.open()
        self.payment_health = PaymentServiceHealth()
        self.payments = await start_payments(
            settings, self.payment_health.observe, sandbox_clock=self._sandbox_clock
        )
        self.payment_health.probe = self.payments.probe
        self.sandbox = self.payments.sandbox
        self.core = Core(
            repository=self.repository,
            gateway=self.payments.gateway,
            policy=policy_for(settings),
            clock=self.clock,
            replica_id=self.replica_id,
            lease_ms=int(settings.lease_s * 1000),
        )
        source = (
            PaymentSourceType.V1 if settings.payment_source_index is None else PaymentSourceType.V2
        )
        self.intents = PaymentIntents(
            self.core,
            self.agent,
            IntentSettings(
                pay_window=timedelta(seconds=settings.pay_window_s),
                result_window=timedelta(seconds=settings.result_window_s),
                source_index=settings.payment_source_index,
                dynamic_pricing=settings.pricing == "dynamic",
                answer_timeout=timedelta(seconds=settings.payment_timeout_s),
            ),
        )
        self.runner = AgentRunner(self.agent, concurrency=settings.runner_concurrency)
        if settings.runs_workers:
            self.monitor = PaymentMonitor(
                self.core,
                self.intents,
                interval_s=settings.monitor_interval_s,
                overlap_s=settings.diff_overlap_s,
                configured_source=source,
                source_index=settings.payment_source_index,
            )
            self.worker = Worker(
                self.core,
                self._step_handlers(),
                self.runner,
                poll_s=settings.worker_poll_s,
            )
        self.jobs = JobsService(
            self.core,
            self.intents,
            self.agent,
            agent_identifier=self.payments.agent_identifier,
            sandbox=settings.uses_sandbox,
            max_input_bytes=settings.max_input_bytes,
            pricing=Pricing(settings.pricing),
            on_new_payment=self.monitor.poke if self.monitor is not None else None,
            payment_health=self.payment_health,
            signer=self.signer,
        )
        self.earnings = EarningsService(self.repository)
        self.operator = OperatorService(self.core)
        self.heartbeat = ReplicaHeartbeat(self.core, settings.role)
        self.metrics.jobs_running.set_function(lambda: self.runner.computing)
        if self.worker is not None:
            worker = self.worker
            self.metrics.steps_held.set_function(lambda: worker.steps_held)
        if self.monitor is not None:
            monitor = self.monitor
            self.metrics.monitor_leader.set_function(lambda: int(monitor.leadership.leading))
        self.grpc = GrpcServer(
            settings,
            self.jobs,
            self.earnings,
            self.metrics,
            operator=self.operator,
            health_only=not settings.serves_api,
        )
        self.http = HttpServer(
            create_http_app(
                self.jobs,
                metrics=self.metrics,
                is_serving=lambda: self.jobs.accepting,
                max_body_bytes=settings.max_message_bytes,
                mip003=settings.serves_api,
            ),
            settings.http_address,
            HttpLimits(
                max_connections=settings.http_max_connections,
                header_timeout_s=settings.http_header_timeout_s,
                body_timeout_s=settings.http_body_timeout_s,
                keepalive_timeout_s=settings.http_keepalive_timeout_s,
                max_requests_per_connection=settings.http_max_requests_per_connection,
            ),
            reuse_port=settings.reuse_port,
        )
        released = await self.repository.release_all(self.replica_id)
        if released:
            log.info("took back %d step(s) this replica id held when it last stopped", released)
        await self.heartbeat.beat()
        await self.grpc.start()
        await self.http.start()
        if self.worker is not None:
            self.worker.start()
        if self.monitor is not None:
            self._background.append(asyncio.create_task(self.monitor.run(), name="payment-monitor"))
        self._background.append(asyncio.create_task(self._keep_alive(), name="heartbeat"))
        log.info(
            "agentjobs replica %s (role %s) serving gRPC on %s and HTTP on http://%s:%d",
            self.replica_id,
            settings.role,
            self.grpc_target,
            self.http.host,
            self.http.port,
        )

    def _step_handlers(self) -> dict[Step, StepHandler]:
        return {
            Step.REQUEST_PAYMENT: self.intents.settle_abandoned,
            Step.EXPIRE: payment_steps.expire,
            Step.RUN: RunAgent(self.runner),
            Step.SUBMIT: submit_result,
            Step.FOLLOW: payment_steps.follow,
            Step.RECOVER: payment_steps.recover,
            Step.REFUND: payment_steps.refund,
            Step.INPUT_DEADLINE: payment_steps.input_deadline,
        }

    async def _keep_alive(self) -> None:
        """The replica's heartbeat, and the attention gauge with it."""
        interval = self.core.lease_ms / 3000
        while True:
            await asyncio.sleep(interval)
            try:
                await self.heartbeat.beat()
                self.metrics.set_attention(await self.repository.count_attention())
                await self.repository.prune_replicas(self.clock.now_ms() - FORGET_REPLICAS_AFTER_MS)
            except DomainError as exc:
                log.warning("replica heartbeat failed: %s", exc.message)
            except Exception:
                log.exception("replica heartbeat failed")

    @property
    def grpc_target(self) -> str:
        host = self.settings.grpc_address.rpartition(":")[0]
        return f"{host}:{self.grpc.port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.http.host}:{self.http.port}"

    async def stop(self) -> None:
        """Drain: stop taking work, let RPCs and running steps finish within the grace
        period, give unfinished steps back, then close everything in reverse order."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        grace = self.settings.shutdown_grace_s
        self.jobs.accepting = False
        await self.grpc.set_serving(False)
        if self.monitor is not None:
            self.monitor.stop()
        stopping = [self.grpc.stop(grace)]
        if self.worker is not None:
            stopping.append(self.worker.stop(grace))
        await asyncio.gather(*stopping)
        self.runner.stop()
        for task in self._background:
            if task.get_name() != "payment-monitor":
                task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(DomainError):
            await self.heartbeat.leave()
        await self.http.stop()
        await self.payment_health.close()
        await self.payments.gateway.close()
        if self.sandbox is not None:
            await self.sandbox.stop()
        await self.repository.close()
        log.info("agentjobs stopped (replica %s)", self.replica_id)
