"""The MIP-003 HTTP front: the paths the Masumi marketplace and registry speak, served
from the same JobsService as the gRPC servicers. Handlers translate and nothing more;
domain errors become HTTP answers in api/errors.py, the one place that maps them."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from agentjobs.server.api import mip003_shapes as shapes
from agentjobs.server.api.access import HTTP_PATHS
from agentjobs.server.api.errors import error_body, http_body
from agentjobs.server.api.http_bodies import (
    idempotency_key,
    optional_object,
    optional_string,
    read_json_object,
    required_string,
)
from agentjobs.server.api.http_middleware import RequestContextMiddleware
from agentjobs.server.api.metrics import Metrics
from agentjobs.server.domain import DomainError, FieldViolation, InvalidArgumentError
from agentjobs.server.services.jobs import JobsService

log = logging.getLogger(__name__)

# What an HTTP status no service raised (routing, the transport) means in gRPC terms.
_TRANSPORT_ERRORS: dict[int, tuple[grpc.StatusCode, str]] = {
    404: (grpc.StatusCode.NOT_FOUND, "PATH_NOT_FOUND"),
    405: (grpc.StatusCode.UNIMPLEMENTED, "METHOD_NOT_ALLOWED"),
}
# nginx's "client closed request": the client left before the body was read.
CLIENT_CLOSED_REQUEST = 499


class ErrorJSONResponse(JSONResponse):
    """Error bodies in ASCII JSON: whatever a message quotes, it always encodes."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def create_http_app(
    jobs: JobsService,
    *,
    metrics: Metrics,
    is_serving: Callable[[], bool],
    max_body_bytes: int,
    mip003: bool = True,
) -> FastAPI:
    """The MIP-003 paths plus /metrics and /healthz; only the last two when `mip003` is
    False (a worker replica)."""
    app = FastAPI(
        title="agentjobs MIP-003",
        description="MIP-003 agent endpoints backed by agentjobs",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.add_middleware(RequestContextMiddleware, metrics=metrics)

    @app.exception_handler(DomainError)
    async def domain_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DomainError)
        status, body = http_body(exc)
        headers = {"retry-after": "1"} if status == 503 else None
        return ErrorJSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(HTTPException)
    async def transport_error(request: Request, exc: Exception) -> JSONResponse:
        # Unknown paths (404) and methods (405) answer in the same shape as the rest.
        assert isinstance(exc, HTTPException)
        code, reason = _TRANSPORT_ERRORS.get(
            exc.status_code, (grpc.StatusCode.INVALID_ARGUMENT, "BAD_REQUEST")
        )
        message = (
            f"no {request.method} {request.url.path} here"
            if exc.status_code in _TRANSPORT_ERRORS
            else str(exc.detail)
        )
        return ErrorJSONResponse(
            error_body(code, reason, message), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(ClientDisconnect)
    async def client_gone(_request: Request, _exc: Exception) -> Response:
        # Nobody reads this answer (the connection is closed); it is for the metrics.
        return ErrorJSONResponse(
            error_body(grpc.StatusCode.CANCELLED, "CLIENT_CLOSED_REQUEST", "the client left"),
            status_code=CLIENT_CLOSED_REQUEST,
        )

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        # Starlette logs the traceback after this handler answers.
        return ErrorJSONResponse(
            error_body(grpc.StatusCode.INTERNAL, "INTERNAL", "internal error"), status_code=500
        )

    @app.get("/metrics")
    async def metrics_page() -> Response:
        payload, content_type = metrics.render()
        return Response(payload, media_type=content_type)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        serving = is_serving()
        return JSONResponse(
            {"status": "serving" if serving else "not_serving"},
            status_code=200 if serving else 503,
        )

    if not mip003:
        return app

    @app.post("/start_job")
    async def start_job(request: Request) -> JSONResponse:
        body = await read_json_object(request, max_body_bytes)
        job = await jobs.start_job(
            # Optional: free agents are started without one (paid pricing refuses that).
            optional_string(body, "identifier_from_purchaser"),
            optional_object(body, "input_data"),
            idempotency_key(request, body),
        )
        return JSONResponse(shapes.start_job_body(job))

    @app.get("/status")
    async def status(request: Request) -> JSONResponse:
        job_id = request.query_params.get("job_id")
        if not job_id:
            raise InvalidArgumentError(
                "the job_id query parameter is required", [FieldViolation("job_id", "required")]
            )
        return JSONResponse(shapes.status_body(await jobs.get_job(job_id)))

    @app.post("/provide_input")
    async def provide_input(request: Request) -> JSONResponse:
        body = await read_json_object(request, max_body_bytes)
        receipt = await jobs.provide_input(
            required_string(body, "job_id"),
            required_string(body, "status_id"),
            optional_object(body, "input_data"),
            idempotency_key(request, body),
        )
        return JSONResponse(shapes.provide_input_body(receipt))

    @app.get("/availability")
    async def availability() -> JSONResponse:
        answer = await jobs.availability()
        # MIP-003 puts "unavailable" in the body of a 2xx answer (as the masumi SDK
        # does): a payment service that rejects us is said there, with why. Only a
        # draining replica answers 503, so that a load balancer and the registry stop
        # sending it traffic; the other replicas keep serving.
        return JSONResponse(
            shapes.availability_body(answer), status_code=503 if answer.draining else 200
        )

    @app.get("/input_schema")
    async def input_schema() -> JSONResponse:
        return JSONResponse(jobs.input_schema())

    @app.get("/demo")
    async def demo() -> JSONResponse:
        return JSONResponse(shapes.demo_body(*jobs.demo()))

    served = {
        (method, getattr(route, "path", ""))
        for route in app.routes
        for method in getattr(route, "methods", None) or ()
        if method != "HEAD"
    }
    if served != set(HTTP_PATHS):
        # The access table (api/access.py) must say who may call every path served.
        raise RuntimeError(f"HTTP paths and the access table differ: {served ^ set(HTTP_PATHS)}")
    return app
