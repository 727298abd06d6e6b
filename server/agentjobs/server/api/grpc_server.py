"""The grpc.aio server: our two services, health, reflection, channelz, limits, TLS."""

from __future__ import annotations

from pathlib import Path

import grpc
from grpc_channelz.v1 import channelz
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from agentjobs.server import telemetry
from agentjobs.server.api.interceptor import ServerInterceptor
from agentjobs.server.api.job_servicer import JobServicer
from agentjobs.server.api.metrics import Metrics
from agentjobs.server.api.operator_servicer import OperatorServicer
from agentjobs.server.api.rpc_limits import RpcLimits
from agentjobs.server.config import Settings
from agentjobs.server.services.earnings import EarningsService
from agentjobs.server.services.jobs import JobsService
from agentjobs.server.services.operator import OperatorService
from agentjobs.v1 import jobs_pb2, jobs_pb2_grpc, operator_pb2, operator_pb2_grpc

SERVICE_NAMES = (
    jobs_pb2.DESCRIPTOR.services_by_name["JobService"].full_name,
    operator_pb2.DESCRIPTOR.services_by_name["OperatorService"].full_name,
)


class GrpcServer:
    def __init__(
        self,
        settings: Settings,
        jobs: JobsService,
        earnings: EarningsService,
        metrics: Metrics,
        *,
        operator: OperatorService,
        health_only: bool = False,
    ) -> None:
        """`health_only`: a worker replica serves only the health service."""
        token = settings.operator_token.get_secret_value() if settings.operator_token else None
        self.limits = RpcLimits(settings.max_concurrent_rpcs, settings.max_watches_per_peer)
        self.server = grpc.aio.server(
            # No maximum_concurrent_rpcs: grpc's counts health calls too and refuses them
            # with the rest; the interceptor's limits exempt health (api/rpc_limits.py).
            interceptors=[
                *telemetry.grpc_server_interceptors(),
                ServerInterceptor(metrics, token, self.limits),
            ],
            options=[
                ("grpc.max_receive_message_length", settings.max_message_bytes),
                ("grpc.max_send_message_length", settings.max_message_bytes),
                # Only `serve --processes N` shares a port: otherwise a second server
                # on the same port must fail, not split the traffic.
                ("grpc.so_reuseport", 1 if settings.reuse_port else 0),
                # HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: one connection cannot open more
                # streams than this; the client queues the rest on its side.
                ("grpc.max_concurrent_streams", settings.grpc_max_streams_per_connection),
            ],
        )
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self._names: tuple[str, ...] = ()
        if not health_only:
            jobs_pb2_grpc.add_JobServiceServicer_to_server(
                JobServicer(jobs, settings.max_message_bytes), self.server
            )
            operator_pb2_grpc.add_OperatorServiceServicer_to_server(
                OperatorServicer(jobs, earnings, operator), self.server
            )
            self._names = SERVICE_NAMES
            reflection.enable_server_reflection(
                (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server
            )
            channelz.add_channelz_servicer(self.server)
        self.port = self._bind(settings)

    def _bind(self, settings: Settings) -> int:
        address = settings.grpc_address
        if settings.tls_cert_file and settings.tls_key_file:
            credentials = grpc.ssl_server_credentials(
                [(_read(settings.tls_key_file), _read(settings.tls_cert_file))],
                root_certificates=_read(settings.tls_client_ca_file)
                if settings.tls_client_ca_file
                else None,
                require_client_auth=settings.tls_client_ca_file is not None,
            )
            port = self.server.add_secure_port(address, credentials)
        else:
            port = self.server.add_insecure_port(address)
        if port == 0:
            raise OSError(f"cannot bind the gRPC server to {address}")
        return port

    async def start(self) -> None:
        await self.server.start()
        await self.set_serving(True)

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *self._names):
            await self.health.set(name, status)

    async def stop(self, grace_s: float) -> None:
        await self.server.stop(grace_s)


def _read(path: Path) -> bytes:
    return path.read_bytes()
