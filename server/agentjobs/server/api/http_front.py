"""The MIP-003 HTTP front: the paths the Masumi marketplace and registry speak, served
from the same JobsService as the gRPC servicers. Handlers translate and nothing more;
domain errors become HTTP answers in api/errors.py, the one place that maps them."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from agentjobs.server.api import mip003_shapes as shapes
from agentjobs.server.api.errors import http_body
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
        return JSONResponse(body, status_code=status)

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
        answer = jobs.availability()
        # The registry marks an agent offline on a non-2xx answer: that is exactly what
        # a draining server wants, and nothing else.
        return JSONResponse(
            shapes.availability_body(answer), status_code=200 if answer.available else 503
        )

    @app.get("/input_schema")
    async def input_schema() -> JSONResponse:
        return JSONResponse(jobs.input_schema())

    @app.get("/demo")
    async def demo() -> JSONResponse:
        return JSONResponse(shapes.demo_body(*jobs.demo()))

    return app
