"""The sandbox's aiohttp application: /api/v1 (the payment service API, with auth, the
envelope, faults and observers) and /sandbox (the controls of the buyer, the chain and
the operator)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import web

from agentjobs.server.payments.sandbox import observers
from agentjobs.server.payments.sandbox.api import API_KEY, Handler, PaymentApi, Route, request_input
from agentjobs.server.payments.sandbox.control import ControlApi
from agentjobs.server.payments.sandbox.errors import (
    INTERNAL_SERVER_ERROR,
    ApiError,
    SandboxConflictError,
    UnknownPaymentError,
)

if TYPE_CHECKING:
    from agentjobs.server.payments.sandbox.service import SandboxPaymentService

API_PREFIX = "/api/v1"
CONTROL_PREFIX = "/sandbox"
_ACTS_ON_A_PAYMENT = (
    "/payment/submit-result",
    "/payment/authorize-refund",
    "/payment/error-state-recovery",
)


def success(data: Any) -> dict[str, Any]:
    return {"status": "success", "data": data}


def failure(message: str) -> dict[str, Any]:
    return {"status": "error", "error": {"message": message}}


async def _body_or_none(request: web.Request) -> Any:
    try:
        return await request_input(request) if request.body_exists else None
    except ApiError:
        return None


def _drop_connection(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()
    # aiohttp's own signal for "the client is gone": the connection is closed quietly.
    raise asyncio.CancelledError


async def _answer(
    service: SandboxPaymentService, request: web.Request, handler: Handler, needs_pay: bool
) -> tuple[int, Any]:
    try:
        # Upstream authenticates in a middleware, before validating the input.
        request[API_KEY] = service.api_keys.authenticate(
            request.headers.get("token"), needs_pay=needs_pay
        )
        return 200, success(await handler(request))
    except ApiError as exc:
        return exc.status, failure(exc.message)


def _record_act(
    service: SandboxPaymentService, path: str, body: Any, status: int, answer: Any
) -> None:
    if not isinstance(body, dict) or not isinstance(body.get("blockchainIdentifier"), str):
        return
    details: dict[str, Any] = {}
    if path == "/payment/submit-result":
        details["resultHash"] = body.get("submitResultHash")
    if path == "/payment/error-state-recovery":
        details["retryPreviousAction"] = body.get("retryPreviousAction") is True
    if status != 200:
        details["message"] = answer["error"]["message"]
    service.requests.acted(
        path, body["blockchainIdentifier"], service.clock.now_ms(), status, **details
    )


def _route_handler(service: SandboxPaymentService, route: Route) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        method, path = route.method, route.path
        service.requests.counts[(method, API_PREFIX + path)] += 1
        body = await _body_or_none(request) if method == "POST" else None
        if observers.watching_requests():
            observers.notify_request(method, path, body)
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
            status, answer = 500, failure(INTERNAL_SERVER_ERROR)
        else:
            status, answer = await _answer(service, request, route.handler, route.needs_pay)
        if path in _ACTS_ON_A_PAYMENT:
            _record_act(service, path, body, status, answer)
        observers.notify(method, path, status, answer)
        return web.json_response(answer, status=status)

    return handle


def _unknown_api_route(service: SandboxPaymentService) -> Handler:
    async def unknown(request: web.Request) -> web.StreamResponse:
        # express-zod-api's not-found handler.
        answer = failure(f"Can not {request.method} {request.path}")
        service.requests.counts[(request.method, request.path)] += 1
        observers.notify(request.method, request.path[len(API_PREFIX) :], 404, answer)
        return web.json_response(answer, status=404)

    return unknown


def _control_middleware(service: SandboxPaymentService) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            service.api_keys.authenticate(request.headers.get("token"), needs_pay=False)
            status, answer = 200, success(await handler(request))
        except ApiError as exc:
            status, answer = exc.status, failure(exc.message)
        except UnknownPaymentError as exc:
            status, answer = 404, failure(str(exc))
        except SandboxConflictError as exc:
            status, answer = 409, failure(str(exc))
        return web.json_response(answer, status=status)

    return middleware


async def _unknown_control_route(request: web.Request) -> Any:
    raise ApiError(404, f"Can not {request.method} {request.path}")


async def _index(request: web.Request) -> web.Response:
    from agentjobs.server.payments import sandbox

    return web.Response(text=sandbox.__doc__ or "", content_type="text/plain")


def build_app(service: SandboxPaymentService) -> web.Application:
    api = web.Application()
    for route in PaymentApi(service).routes():
        handler = _route_handler(service, route)
        # Express routes ignore a trailing slash; the masumi SDK posts to /payment/.
        api.router.add_route(route.method, route.path, handler)
        api.router.add_route(route.method, route.path + "/", handler)
    api.router.add_route("*", "/{tail:.*}", _unknown_api_route(service))

    control = web.Application(middlewares=[_control_middleware(service)])
    for method, path, control_handler in ControlApi(service).routes():
        control.router.add_route(method, path, control_handler)
    control.router.add_route("*", "/{tail:.*}", _unknown_control_route)

    root = web.Application()
    root.add_subapp(API_PREFIX, api)
    root.add_subapp(CONTROL_PREFIX, control)
    root.router.add_get("/", _index)
    return root
