"""The sandbox's aiohttp application: /api/v1 (the payment service API, with faults,
auth, the envelope and response observers) and /sandbox (the buyer's controls)."""

from __future__ import annotations

import asyncio
import hmac
from typing import TYPE_CHECKING, Any

from aiohttp import web

from agentjobs.server.payments.sandbox import observers
from agentjobs.server.payments.sandbox.api import Handler, PaymentApi
from agentjobs.server.payments.sandbox.chain import SandboxConflictError
from agentjobs.server.payments.sandbox.control import ControlApi
from agentjobs.server.payments.sandbox.validation import ApiError

if TYPE_CHECKING:
    from agentjobs.server.payments.sandbox.service import SandboxPaymentService

API_PREFIX = "/api/v1"
CONTROL_PREFIX = "/sandbox"


def success(data: Any) -> dict[str, Any]:
    return {"status": "success", "data": data}


def failure(message: str) -> dict[str, Any]:
    return {"status": "error", "error": {"message": message}}


def _authorized(request: web.Request, api_key: str) -> ApiError | None:
    presented = request.headers.get("token")
    if not presented:
        return ApiError(401, "Unauthorized, no authentication token provided")
    # Never echo what was presented: it may be a real key sent to the wrong place.
    if not hmac.compare_digest(presented.encode(), api_key.encode()):
        return ApiError(401, "Unauthorized, invalid authentication token provided")
    return None


async def _answer(request: web.Request, handler: Handler, api_key: str) -> tuple[int, Any]:
    refused = _authorized(request, api_key)
    if refused is not None:
        return refused.status, failure(refused.message)
    try:
        return 200, success(await handler(request))
    except ApiError as exc:
        return exc.status, failure(exc.message)
    except SandboxConflictError as exc:
        return 409, failure(str(exc))
    except web.HTTPException as exc:
        return exc.status, failure(exc.reason)


async def _body_or_none(request: web.Request) -> Any:
    if not request.can_read_body:
        return None
    try:
        return await request.json()
    except ValueError:
        return None


def _drop_connection(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()
    # aiohttp's own signal for "the client is gone": the connection is closed quietly.
    raise asyncio.CancelledError


def _api_middleware(service: SandboxPaymentService) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        method = request.method
        path = request.path[len(API_PREFIX) :].rstrip("/") or "/"
        service.request_counts[(method, API_PREFIX + path)] += 1
        if observers.watching_requests():
            observers.notify_request(method, path, await _body_or_none(request))
        faults = service.faults
        if faults.latency_s > 0:
            await asyncio.sleep(faults.latency_s)
        if faults.take_drop(method):
            _drop_connection(request)
        if faults.take_malformed():
            return web.Response(
                text=faults.malformed_body, status=200, content_type="application/json"
            )
        if faults.take_error():
            status, body = 500, failure("Internal Server Error (sandbox fault injection)")
        else:
            status, body = await _answer(request, handler, service.api_key)
        observers.notify(method, path, status, body)
        return web.json_response(body, status=status)

    return middleware


def _control_middleware(service: SandboxPaymentService) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        status, body = await _answer(request, handler, service.api_key)
        return web.json_response(body, status=status)

    return middleware


async def _unknown_route(request: web.Request) -> Any:
    raise ApiError(404, f"Cannot {request.method} {request.path}")


async def _index(request: web.Request) -> web.Response:
    from agentjobs.server.payments import sandbox

    return web.Response(text=sandbox.__doc__ or "", content_type="text/plain")


def build_app(service: SandboxPaymentService) -> web.Application:
    api = web.Application(middlewares=[_api_middleware(service)])
    for method, path, handler in PaymentApi(service).routes():
        # Express routes ignore a trailing slash; the masumi SDK posts to /payment/.
        api.router.add_route(method, path, handler)
        api.router.add_route(method, path + "/", handler)
    api.router.add_route("*", "/{tail:.*}", _unknown_route)

    control = web.Application(middlewares=[_control_middleware(service)])
    for method, path, handler in ControlApi(service).routes():
        control.router.add_route(method, path, handler)
    control.router.add_route("*", "/{tail:.*}", _unknown_route)

    root = web.Application()
    root.add_subapp(API_PREFIX, api)
    root.add_subapp(CONTROL_PREFIX, control)
    root.router.add_get("/", _index)
    return root
