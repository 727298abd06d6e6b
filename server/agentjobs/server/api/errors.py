"""The one place that maps domain errors to gRPC codes (AIP-193) and HTTP statuses."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from agentjobs.server.domain import (
    DomainError,
    FundsAlreadyLockedError,
    IdempotencyConflictError,
    InvalidArgumentError,
    InvalidStateTransitionError,
    InvoiceNotFoundError,
    JobNotFoundError,
    PaymentConfigurationError,
    PaymentNotFoundError,
    PaymentServiceConflictError,
    PaymentServiceRejectedError,
    PaymentServiceUnavailableError,
    RequestTooLargeError,
    StatusIdMismatchError,
)

DOMAIN = "agentjobs"


@dataclass(frozen=True)
class Mapping:
    code: grpc.StatusCode
    http_status: int


# Most specific first: the first isinstance match wins.
_MAPPINGS: list[tuple[type[DomainError], Mapping]] = [
    (JobNotFoundError, Mapping(grpc.StatusCode.NOT_FOUND, 404)),
    (InvoiceNotFoundError, Mapping(grpc.StatusCode.NOT_FOUND, 404)),
    (InvalidArgumentError, Mapping(grpc.StatusCode.INVALID_ARGUMENT, 400)),
    (StatusIdMismatchError, Mapping(grpc.StatusCode.FAILED_PRECONDITION, 412)),
    (InvalidStateTransitionError, Mapping(grpc.StatusCode.FAILED_PRECONDITION, 409)),
    (FundsAlreadyLockedError, Mapping(grpc.StatusCode.FAILED_PRECONDITION, 409)),
    (IdempotencyConflictError, Mapping(grpc.StatusCode.ALREADY_EXISTS, 409)),
    (RequestTooLargeError, Mapping(grpc.StatusCode.RESOURCE_EXHAUSTED, 413)),
    (PaymentServiceUnavailableError, Mapping(grpc.StatusCode.UNAVAILABLE, 503)),
    # The payment service refused what we sent: the caller's input was bad.
    (PaymentServiceRejectedError, Mapping(grpc.StatusCode.INVALID_ARGUMENT, 400)),
    (PaymentServiceConflictError, Mapping(grpc.StatusCode.ABORTED, 409)),
    (PaymentNotFoundError, Mapping(grpc.StatusCode.NOT_FOUND, 404)),
    # Our credentials are wrong: not the caller's fault, and not retryable by them.
    (PaymentConfigurationError, Mapping(grpc.StatusCode.FAILED_PRECONDITION, 503)),
]
_FALLBACK = Mapping(grpc.StatusCode.FAILED_PRECONDITION, 409)


def mapping_for(error: DomainError) -> Mapping:
    for error_type, mapping in _MAPPINGS:
        if isinstance(error, error_type):
            return mapping
    return _FALLBACK


def public_message(error: DomainError) -> str:
    if isinstance(error, PaymentConfigurationError):
        return "the payment service is misconfigured; the operator has been alerted"
    return error.message


def to_rpc_status(error: DomainError) -> status_pb2.Status:
    mapping = mapping_for(error)
    details: list[any_pb2.Any] = []
    info = any_pb2.Any()
    info.Pack(
        error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=error.metadata)
    )
    details.append(info)
    if isinstance(error, InvalidArgumentError) and error.violations:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description
                )
                for v in error.violations
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(bad_request)
        details.append(packed)
    return status_pb2.Status(
        code=getattr(code_pb2, mapping.code.name),
        message=public_message(error),
        details=details,
    )


def simple_status(
    code: grpc.StatusCode, message: str, reason: str, *, violations: dict[str, str] | None = None
) -> status_pb2.Status:
    """A rich status for errors raised by the transport layer itself (auth, limits)."""
    error: DomainError
    if violations:
        from agentjobs.server.domain import FieldViolation

        error = InvalidArgumentError(
            message, [FieldViolation(f, d) for f, d in violations.items()], reason=reason
        )
    else:
        error = DomainError(message)
        error.reason = reason
    status = to_rpc_status(error)
    status.code = getattr(code_pb2, code.name)
    return status


async def abort_with(
    context: grpc.aio.ServicerContext,
    status: status_pb2.Status,
    trailers: tuple[tuple[str, str], ...] = (),
) -> None:
    """End the call with a rich status; `trailers` travel beside grpc-status-details-bin."""
    rich = rpc_status.to_status(status)
    await context.abort(rich.code, rich.details, (*rich.trailing_metadata, *trailers))


def http_body(error: DomainError) -> tuple[int, dict[str, object]]:
    """(HTTP status, JSON body) for the MIP-003 front: same reason and fields as gRPC."""
    mapping = mapping_for(error)
    body: dict[str, object] = {
        "error": {
            "code": mapping.code.name,
            "reason": error.reason,
            "message": public_message(error),
        }
    }
    if error.metadata:
        body["error"]["metadata"] = error.metadata  # type: ignore[index]
    if isinstance(error, InvalidArgumentError) and error.violations:
        body["error"]["field_violations"] = [  # type: ignore[index]
            {"field": v.field, "description": v.description} for v in error.violations
        ]
    return mapping.http_status, body
