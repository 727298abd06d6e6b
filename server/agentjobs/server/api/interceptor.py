"""One server interceptor for every RPC: request id, access control (api/access.py),
fair limits (api/rpc_limits.py), error mapping, metrics and the access log. One wrapper
instead of a chain of five keeps the per-call overhead to a single extra coroutine frame.

After a client cancels, grpc.aio releases the call at once, while a response generator
left suspended at a `yield` is finalised later by the garbage collector. Touching the
context from there (context.peer() did) reads a released call: the process died with
SIGSEGV. So everything wanted from the context is read in _begin, while the call is
alive, and _finish (the slots given back, the metrics, the access log) uses only what
was read then. It runs once per call: from the wrapper when the handler ends, or from
grpc's done callback when a cancellation ended the call before the handler could.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from agentjobs.server.api.access import Access, Rule, grpc_rule
from agentjobs.server.api.errors import abort_with, simple_status, to_rpc_status
from agentjobs.server.api.metrics import Metrics
from agentjobs.server.api.request_context import REQUEST_ID_KEY, new_request_id, request_id_var
from agentjobs.server.api.rpc_limits import RpcLimits, peer_key
from agentjobs.server.domain import DomainError, FieldViolation, InvalidArgumentError

log = logging.getLogger("agentjobs.access")
errors_log = logging.getLogger(__name__)


class ServerInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, metrics: Metrics, operator_token: str | None, limits: RpcLimits) -> None:
        self._metrics = metrics
        self._token = operator_token.encode() if operator_token else None
        self.limits = limits

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
        # Unary requests arrive as bytes and are parsed inside the wrapper: grpc's own
        # parse failure would surface as UNKNOWN; ours is INVALID_ARGUMENT with details.
        call = _Call(self, method, grpc_rule(method), metadata, handler.request_deserializer)
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
        # Client-streaming methods (only reflection): grpc parses each request message.
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                call.unary(handler.stream_unary, parse=False),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            call.stream(handler.stream_stream, parse=False),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def authorize(self, rule: Rule, metadata: dict[str, Any]) -> status_pb2.Status | None:
        """None when the caller may make the call; else the status that refuses it."""
        if rule.access is not Access.OPERATOR:
            return None
        if self._token is None:
            return simple_status(
                grpc.StatusCode.PERMISSION_DENIED,
                "operator calls are disabled: no operator token is configured",
                "PERMISSION_DENIED",
            )
        given = str(metadata.get("authorization", ""))
        if not given:
            return simple_status(
                grpc.StatusCode.UNAUTHENTICATED,
                "operator calls need 'authorization: Bearer <token>' metadata",
                "UNAUTHENTICATED",
            )
        scheme, _, token = given.partition(" ")
        # Constant time in the token's content: a mismatch says nothing of how close it was.
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), self._token
        ):
            return simple_status(
                grpc.StatusCode.PERMISSION_DENIED,
                "the operator token is not valid",
                "PERMISSION_DENIED",
            )
        return None


class _Call:
    """Per-RPC state; the wrappers below run the handler inside it."""

    __slots__ = (
        "_admitted",
        "_code",
        "_deadline",
        "_deserialize",
        "_finished",
        "_metadata",
        "_method",
        "_owner",
        "_peer",
        "_peer_key",
        "_request_id",
        "_rule",
        "_started",
    )

    def __init__(
        self,
        owner: ServerInterceptor,
        method: str,
        rule: Rule,
        metadata: dict[str, Any],
        deserialize: Callable[[bytes], Any] | None,
    ) -> None:
        self._owner = owner
        self._method = method
        self._rule = rule
        self._metadata = metadata
        self._deserialize = deserialize
        self._request_id = "-"
        self._peer = "-"
        self._peer_key = "-"
        self._started = 0.0
        self._deadline: float | None = None
        self._admitted = False
        self._finished = False
        # How the call ended, as far as the wrapper saw it; None: it never got to say
        # (a client cancellation, or a deadline, ended it first).
        self._code: grpc.StatusCode | None = None

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
        self._started = time.perf_counter()
        self._request_id = new_request_id(self._metadata.get(REQUEST_ID_KEY))
        request_id_var.set(self._request_id)
        # Read while the call is alive (see the module doc): never again after this.
        self._peer = context.peer()
        remaining = context.time_remaining()
        self._deadline = None if remaining is None else time.monotonic() + remaining
        context.add_done_callback(self._done)
        telemetry.tag_request_id(self._request_id)
        # Echoed in the trailers, which go out with the status anyway: response headers
        # sent early would stop a client's retry policy from retrying an UNAVAILABLE, and
        # a separate send of initial metadata costs a sixth of a status read's time.
        context.set_trailing_metadata(((REQUEST_ID_KEY, self._request_id),))
        refusal = self._owner.authorize(self._rule, self._metadata)
        if refusal is not None:
            await self._abort(context, refusal)
        if self._rule.limited:
            self._peer_key = peer_key(self._peer)
        limited = self._owner.limits.admit(self._rule, self._peer_key)
        if limited is not None:
            await self._abort(
                context,
                simple_status(grpc.StatusCode.RESOURCE_EXHAUSTED, limited.message, limited.reason),
            )
        self._admitted = True

    async def _abort(self, context: grpc.aio.ServicerContext, status: status_pb2.Status) -> None:
        self._code = _CODES.get(status.code, grpc.StatusCode.UNKNOWN)
        # abort() replaces the trailers set in _begin: the request id goes again.
        await abort_with(context, status, ((REQUEST_ID_KEY, self._request_id),))

    async def _fail(self, context: grpc.aio.ServicerContext, exc: Exception) -> None:
        if isinstance(exc, DomainError):
            await self._abort(context, to_rpc_status(exc))
        errors_log.exception("unexpected error in %s", self._method)
        await self._abort(
            context, simple_status(grpc.StatusCode.INTERNAL, "internal error", "INTERNAL")
        )

    def _aborted_elsewhere(self, context: grpc.aio.ServicerContext) -> None:
        # A handler's own context.abort(): the call is alive still, its code is set.
        if self._code is None:
            code = context.code()
            self._code = code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN

    def _done(self, _context: object) -> None:
        """grpc's done callback: the call is over, however it ended. The context is not
        touched here: the call may already be released."""
        self._finish()

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._admitted:
            self._owner.limits.release(self._rule, self._peer_key)
        code = self._code
        if code is None:
            late = self._deadline is not None and time.monotonic() >= self._deadline
            code = grpc.StatusCode.DEADLINE_EXCEEDED if late else grpc.StatusCode.CANCELLED
        elapsed = time.perf_counter() - self._started
        metrics = self._owner._metrics
        metrics.grpc_requests.labels(self._method, code.name).inc()
        metrics.grpc_latency.labels(self._method).observe(elapsed)
        if log.isEnabledFor(logging.INFO):
            token = request_id_var.set(self._request_id)
            try:
                log.info(
                    "%s %s %.1fms peer=%s", self._method, code.name, elapsed * 1000, self._peer
                )
            finally:
                request_id_var.reset(token)

    def unary(
        self,
        behavior: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]],
        *,
        parse: bool = True,
    ) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                await self._begin(context)
                response = await behavior(self._parse(request) if parse else request, context)
                self._code = grpc.StatusCode.OK
                return response
            except grpc.aio.AbortError:
                self._aborted_elsewhere(context)
                raise
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._fail(context, exc)
            finally:
                self._finish()

        return wrapped

    def stream(
        self, behavior: Callable[[Any, grpc.aio.ServicerContext], Any], *, parse: bool = True
    ) -> Any:
        # grpc.aio picks the streaming API by the handler's kind: an async generator
        # yields responses, a coroutine (e.g. the health service's Watch) calls
        # context.write(). The wrapper must be of the same kind as what it wraps.
        if inspect.iscoroutinefunction(behavior):
            return self.unary(behavior, parse=parse)

        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                await self._begin(context)
                # aclosing: the handler's own cleanup (e.g. WatchJob's subscription)
                # runs when this stream ends, not whenever the collector gets to it.
                responses = behavior(self._parse(request) if parse else request, context)
                async with contextlib.aclosing(responses):
                    async for response in responses:
                        yield response
                self._code = grpc.StatusCode.OK
            except grpc.aio.AbortError:
                self._aborted_elsewhere(context)
                raise
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._fail(context, exc)
            finally:
                # Also when the stream is closed at a `yield` (GeneratorExit) long after
                # the call ended: _finish reads nothing of the context.
                self._finish()

        return wrapped


_CODES = {code.value[0]: code for code in grpc.StatusCode}
