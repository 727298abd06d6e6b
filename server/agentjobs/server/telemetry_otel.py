"""The OpenTelemetry SDK side of telemetry.py, imported only once tracing is on (the
`otel` extra: opentelemetry-sdk, the OTLP exporters and the grpc, asgi and
aiohttp-client instrumentations)."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from types import TracebackType
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.aiohttp_client import create_trace_config
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.instrumentation.grpc.filters import full_method_name, negate
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter

from agentjobs.server.config import SettingProblem

DEFAULT_SERVICE_NAME = "agentjobs-server"
EXPORTER_GROUP = "opentelemetry_traces_exporter"
# The Python SDK's reading of OTEL_TRACES_EXPORTER=otlp: grpc unless a protocol is set.
OTLP_BY_PROTOCOL = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}
# grpc.aio hands this coroutine-style stream (it writes with context.write()) to the
# instrumentation's wrapper, which only iterates async generators; a long-lived health
# subscription is no call worth a span anyway.
UNTRACED_METHOD = "/grpc.health.v1.Health/Watch"


class _RequestIdProcessor(SpanProcessor):
    """Every span started while a request is served carries its request id."""

    def __init__(self) -> None:
        # Loaded here, not at the top: the repository and services layers import
        # telemetry, and only this tracing-on path needs the api layer's context.
        from agentjobs.server.api.request_context import request_id_var

        self._request_id = request_id_var

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        request_id = self._request_id.get()
        if request_id != "-":
            span.set_attribute("agentjobs.request_id", request_id)


class _CurrentSpan:
    """start_as_current_span() for `with` and `async with` alike."""

    __slots__ = ("_manager",)

    def __init__(self, manager: Any) -> None:
        self._manager = manager

    def __enter__(self) -> Any:
        return self._manager.__enter__()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        result: bool | None = self._manager.__exit__(kind, exc, tb)
        return result

    async def __aenter__(self) -> Any:
        return self._manager.__enter__()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        result: bool | None = self._manager.__exit__(kind, exc, tb)
        return result


class Tracing:
    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self._tracer = provider.get_tracer("agentjobs.server")

    @classmethod
    def create(
        cls, environ: Mapping[str, str], *, exporter: SpanExporter | None, make_global: bool
    ) -> Tracing:
        provider = TracerProvider(resource=_resource())
        provider.add_span_processor(_RequestIdProcessor())
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            for configured in _configured_exporters(environ):
                provider.add_span_processor(BatchSpanProcessor(configured))
        if make_global:
            trace.set_tracer_provider(provider)
        return cls(provider)

    def shutdown(self) -> None:
        self.provider.shutdown()

    def span(self, name: str, attributes: dict[str, Any]) -> _CurrentSpan:
        return _CurrentSpan(self._tracer.start_as_current_span(name, attributes=attributes))

    def tag_current(self, key: str, value: str) -> None:
        trace.get_current_span().set_attribute(key, value)

    def grpc_server_interceptor(self) -> Any:
        return aio_server_interceptor(
            tracer_provider=self.provider, filter_=negate(full_method_name(UNTRACED_METHOD))
        )

    def asgi_middleware(self, app: Any) -> Any:
        # The receive/send sub-spans of every request double the spans for no insight.
        return OpenTelemetryMiddleware(
            app, tracer_provider=self.provider, exclude_spans=["receive", "send"]
        )

    def aiohttp_trace_config(self) -> Any:
        return create_trace_config(tracer_provider=self.provider)


def _resource() -> Resource:
    # Resource.create() reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES itself; a
    # service that names none would be "unknown_service".
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return resource


def _configured_exporters(environ: Mapping[str, str]) -> list[SpanExporter]:
    setting = "OTEL_TRACES_EXPORTER"
    given = environ.get(setting) or "otlp"
    exporters: list[SpanExporter] = []
    for raw in given.split(","):
        name = raw.strip().lower()
        if name in ("", "none"):
            continue
        if name == "otlp":
            name = _otlp_exporter(environ)
        found = entry_points(group=EXPORTER_GROUP, name=name)
        if not found:
            installed = sorted({e.name for e in entry_points(group=EXPORTER_GROUP)})
            raise SettingProblem(
                setting,
                given,
                f"no span exporter {raw.strip()!r} is installed; use "
                f"otlp or one of {', '.join(installed)} (or none)",
            )
        exporter_class = next(iter(found)).load()
        exporters.append(exporter_class())
    return exporters


def _otlp_exporter(environ: Mapping[str, str]) -> str:
    for setting in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = environ.get(setting, "").strip()
        if protocol:
            if protocol not in OTLP_BY_PROTOCOL:
                raise SettingProblem(setting, protocol, f"use one of {', '.join(OTLP_BY_PROTOCOL)}")
            return OTLP_BY_PROTOCOL[protocol]
    return OTLP_BY_PROTOCOL["grpc"]
