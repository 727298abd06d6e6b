"""One server interceptor for every RPC: request id, operator auth, error mapping,
metrics and the access log. One wrapper instead of a chain of five keeps the per-call
overhead to a single extra coroutine frame."""

from __future__ import annotations

import hmac
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from google.rpc import status_pb2

from agentjobs.server import telemetry
from agentjobs.server.api.errors import abort_with, simple_status, to_rpc_status
from agentjobs.server.api.metrics import Metrics
from agentjobs.server.api.request_context import REQUEST_ID_KEY, new_request_id, request_id_var
from agentjobs.server.domain import DomainError, FieldViolation, InvalidArgumentError

log = logging.getLogger("agentjobs.access")
errors_log = logging.getLogger(__name__)

OPERATOR_PREFIX = "/agentjobs.v1.OperatorService/"


class ServerInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, metrics: Metrics, operator_token: str | None) -> None:
        self._metrics = metrics
        self._token = operator_token

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method
        metadata = dict(handler_call_details.invocation_metadata or ())
        # Requests arrive as bytes and are parsed inside the wrapper: grpc's own parse
        # failure would surface as UNKNOWN; ours is INVALID_ARGUMENT with details.
        call = _Call(self, method, metadata, handler.request_deserializer)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                call.unary(handler.unary_unary),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                call.stream(handler.unary_stream),
                response_serializer=handler.response_serializer,
            )
        return handler  # no client-streaming RPCs in this contract

    def authorize(
        self, method: str, metadata: dict[str, Any]
    ) -> tuple[grpc.StatusCode, str] | None:
        if not method.startswith(OPERATOR_PREFIX):
            return None
        if not self._token:
            return (
                grpc.StatusCode.PERMISSION_DENIED,
                "the operator service is disabled: no operator token is configured",
            )
        given = str(metadata.get("authorization", ""))
        if not given:
            return (
                grpc.StatusCode.UNAUTHENTICATED,
                "operator calls need 'authorization: Bearer <token>' metadata",
            )
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.encode(), self._token.encode()
        ):
            return grpc.StatusCode.PERMISSION_DENIED, "the operator token is not valid"
        return None


class _Call:
    """Per-RPC state; the wrappers below run the handler inside it."""

    __slots__ = ("_deserialize", "_metadata", "_method", "_owner", "_request_id")

    def __init__(
        self,
        owner: ServerInterceptor,
        method: str,
        metadata: dict[str, Any],
        deserialize: Callable[[bytes], Any] | None,
    ) -> None:
        self._owner = owner
        self._method = method
        self._metadata = metadata
        self._deserialize = deserialize
        self._request_id = "-"

    def _parse(self, raw: Any) -> Any:
        if self._deserialize is None:
            return raw
        try:
            return self._deserialize(raw)
        except DecodeError as exc:
            raise InvalidArgumentError(
                f"the request is not a valid message for {self._method}: {exc}",
                [FieldViolation("request", "malformed protobuf message")],
                reason="MALFORMED_REQUEST",
            ) from None

    async def _begin(self, context: grpc.aio.ServicerContext) -> None:
        self._request_id = new_request_id(self._metadata.get(REQUEST_ID_KEY))
        request_id_var.set(self._request_id)
        telemetry.tag_request_id(self._request_id)
        # Echoed in the trailers, which go out with the status anyway: response headers
        # sent early would stop a client's retry policy from retrying an UNAVAILABLE, and
        # a separate send of initial metadata costs a sixth of a status read's time.
        context.set_trailing_metadata(((REQUEST_ID_KEY, self._request_id),))
        refusal = self._owner.authorize(self._method, self._metadata)
        if refusal is not None:
            code, message = refusal
            reason = (
                "UNAUTHENTICATED"
                if code is grpc.StatusCode.UNAUTHENTICATED
                else "PERMISSION_DENIED"
            )
            await self._abort(context, simple_status(code, message, reason))

    async def _abort(self, context: grpc.aio.ServicerContext, status: status_pb2.Status) -> None:
        # abort() replaces the trailers set in _begin: the request id goes again.
        await abort_with(context, status, ((REQUEST_ID_KEY, self._request_id),))

    async def _fail(self, context: grpc.aio.ServicerContext, exc: Exception) -> None:
        if isinstance(exc, DomainError):
            await self._abort(context, to_rpc_status(exc))
        errors_log.exception("unexpected error in %s", self._method)
        await self._abort(
            context, simple_status(grpc.StatusCode.INTERNAL, "internal error", "INTERNAL")
        )

    def _finish(self, context: grpc.aio.ServicerContext, started: float) -> None:
        code = context.code() or grpc.StatusCode.OK
        code_name = code.name if isinstance(code, grpc.StatusCode) else str(code)
        elapsed = time.perf_counter() - started
        metrics = self._owner._metrics
        metrics.grpc_requests.labels(self._method, code_name).inc()
        metrics.grpc_latency.labels(self._method).observe(elapsed)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "%s %s %.1fms peer=%s", self._method, code_name, elapsed * 1000, context.peer()
            )

    def unary(
        self, behavior: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
    ) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            try:
                await self._begin(context)
                return await behavior(self._parse(request), context)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await self._fail(context, exc)
            finally:
                self._finish(context, started)

        return wrapped

    def stream(self, behavior: Callable[[Any, grpc.aio.ServicerContext], Any]) -> Any:
        # grpc.aio picks the streaming API by the handler's kind: an async generator
        # yields responses, a coroutine (e.g. the health service's Watch) calls
        # context.write(). The wrapper must be of the same kind as what it wraps.
        if inspect.iscoroutinefunction(behavior):
            return self.unary(behavior)

        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            started = time.perf_counter()
            try:
                await self._begin(context)
                async for response in behavior(self._parse(request), context):
                    yield response
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await self._fail(context, exc)
            finally:
                self._finish(context, started)

        return wrapped
