"""OpenTelemetry tracing, on only when the standard OTEL_* variables ask for it.

Off (no OTEL_TRACES_EXPORTER, no OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, or
OTEL_SDK_DISABLED=true): nothing of the OpenTelemetry SDK or its instrumentations is
imported, and each hook below costs one check of a module global. On (`start()`): spans
for every gRPC call (server side, the caller's `traceparent` honoured), every HTTP
request, every payment-service call, every database write transaction and every agent
handler run, each with the request id of the call it serves as `agentjobs.request_id`.

The hooks, for code that must not know whether tracing is on:

    with telemetry.span("db.transaction", backend="sqlite"): ...
    async with telemetry.span("agent.run", job_id=job.job_id): ...

Keyword attributes are recorded as `agentjobs.<name>`. The wiring of the servers and the
payment-service client calls `grpc_server_interceptors()`, `asgi_app()` and
`aiohttp_trace_configs()`, which give nothing (or the app unchanged) when off.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from agentjobs.server.config import SettingProblem

if TYPE_CHECKING:
    from agentjobs.server.telemetry_otel import Tracing

ATTRIBUTE_PREFIX = "agentjobs."
REQUEST_ID_ATTRIBUTE = "agentjobs.request_id"

# What turns tracing on; OTEL_SERVICE_NAME and the rest only shape it.
_SWITCHES = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)

_tracing: Tracing | None = None


def wanted(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the OTEL_* variables ask for traces (the SDK's own reading of them)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = env.get("OTEL_TRACES_EXPORTER")
    if exporters is not None:
        return exporters.strip().lower() not in ("", "none")
    return any(env.get(name, "").strip() for name in _SWITCHES[1:])


def start(
    environ: Mapping[str, str] | None = None,
    *,
    exporter: Any = None,
    make_global: bool = True,
) -> None:
    """Turn tracing on: from the OTEL_* variables, or with `exporter` (a SpanExporter,
    e.g. the SDK's InMemorySpanExporter in tests; its spans are exported as each ends).
    `make_global` also installs the tracer provider as OpenTelemetry's global one, so
    an agent's own spans join ours. Raises SettingProblem for unusable OTEL_* values."""
    global _tracing
    if _tracing is not None:
        raise RuntimeError("tracing is already on")
    env = os.environ if environ is None else environ
    try:
        from agentjobs.server import telemetry_otel
    except ImportError as missing:
        setting = next((name for name in _SWITCHES if env.get(name)), _SWITCHES[0])
        raise SettingProblem(
            setting,
            env.get(setting),
            "tracing needs the otel extra: pip install 'agentjobs[otel]' "
            f"(module {missing.name} is missing)",
        ) from missing
    _tracing = telemetry_otel.Tracing.create(env, exporter=exporter, make_global=make_global)


def stop() -> None:
    """Export what is pending and turn tracing off again."""
    global _tracing
    tracing, _tracing = _tracing, None
    if tracing is not None:
        tracing.shutdown()


def enabled() -> bool:
    return _tracing is not None


class _NoSpan:
    """What span() gives when tracing is off: enters and leaves, records nothing."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


_NO_SPAN = _NoSpan()


def span(name: str, **attributes: str | int | float | bool) -> Any:
    """A span around a block (`with` or `async with`), current while the block runs, so
    spans started inside are its children. An exception leaving the block is recorded
    and marks the span as an error (and goes on)."""
    if _tracing is None:
        return _NO_SPAN
    return _tracing.span(name, {ATTRIBUTE_PREFIX + k: v for k, v in attributes.items()})


def tag_request_id(request_id: str) -> None:
    """Put the request id on the current span (the server span of the call being
    served): it is chosen after the instrumentation opened that span."""
    if _tracing is not None:
        _tracing.tag_current(REQUEST_ID_ATTRIBUTE, request_id)


def grpc_server_interceptors() -> list[Any]:
    """To put first in the grpc.aio server's interceptors: a span per call."""
    return [] if _tracing is None else [_tracing.grpc_server_interceptor()]


def asgi_app(app: Any) -> Any:
    """The ASGI app, wrapped in a span per HTTP request when tracing is on."""
    return app if _tracing is None else _tracing.asgi_middleware(app)


def aiohttp_trace_configs() -> list[Any]:
    """For aiohttp.ClientSession(trace_configs=...): a span per outgoing request."""
    return [] if _tracing is None else [_tracing.aiohttp_trace_config()]
