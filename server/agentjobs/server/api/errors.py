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
    OperationNotPossibleError,
    PaymentConfigurationError,
    PaymentKeyMismatchError,
    PaymentNotFoundError,
    PaymentServiceConflictError,
    PaymentServiceRejectedError,
    PaymentServiceUnavailableError,
    RequestTooLargeError,
    StaleJobError,
    StatusIdMismatchError,
    StorageUnavailableError,
    UnsupportedMediaTypeError,
)
from agentjobs.server.domain.input_rules import shown

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
    (OperationNotPossibleError, Mapping(grpc.StatusCode.FAILED_PRECONDITION, 409)),
    # Other writers kept moving the job: nothing was written, a retry decides again.
    (StaleJobError, Mapping(grpc.StatusCode.ABORTED, 409)),
    (RequestTooLargeError, Mapping(grpc.StatusCode.RESOURCE_EXHAUSTED, 413)),
    (UnsupportedMediaTypeError, Mapping(grpc.StatusCode.INVALID_ARGUMENT, 415)),
    (PaymentServiceUnavailableError, Mapping(grpc.StatusCode.UNAVAILABLE, 503)),
    # Nothing was written; the client's retry policy retries UNAVAILABLE.
    (StorageUnavailableError, Mapping(grpc.StatusCode.UNAVAILABLE, 503)),
    # The payment service refused what we sent: the caller's input was bad.
    (PaymentServiceRejectedError, Mapping(grpc.StatusCode.INVALID_ARGUMENT, 400)),
    (PaymentServiceConflictError, Mapping(grpc.StatusCode.ABORTED, 409)),
    (PaymentNotFoundError, Mapping(grpc.StatusCode.NOT_FOUND, 404)),
    # A payment of another API key (an operator's recover/refund): theirs to fix.
    (PaymentKeyMismatchError, Mapping(grpc.StatusCode.FAILED_PRECONDITION, 409)),
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
    if isinstance(error, StorageUnavailableError):
        # The database's own words can name hosts, users and files: logged, not answered.
        return "the job store is unavailable right now; retry later"
    return _encodable(error.message)


def _encodable(text: str, limit: int = 2000) -> str:
    """Protobuf strings and UTF-8 JSON refuse lone surrogates: a message quoting a
    caller's bad value must never turn its INVALID_ARGUMENT into INTERNAL."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return shown(text, limit)
    return text if len(text) <= limit else text[:limit] + "…"


def _metadata(error: DomainError) -> dict[str, str]:
    return {_encodable(k, 64): _encodable(v, 256) for k, v in error.metadata.items()}


def to_rpc_status(error: DomainError) -> status_pb2.Status:
    mapping = mapping_for(error)
    details: list[any_pb2.Any] = []
    info = any_pb2.Any()
    info.Pack(
        error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=_metadata(error))
    )
    details.append(info)
    if isinstance(error, InvalidArgumentError) and error.violations:
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=_encodable(v.field), description=_encodable(v.description)
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
    violations = error.violations if isinstance(error, InvalidArgumentError) else []
    return mapping.http_status, error_body(
        mapping.code,
        error.reason,
        public_message(error),
        [(v.field, v.description) for v in violations],
        _metadata(error),
    )


def error_body(
    code: grpc.StatusCode,
    reason: str,
    message: str,
    violations: list[tuple[str, str]] | None = None,
    metadata: dict[str, str] | None = None,
) -> dict[str, object]:
    """The one JSON error shape of the HTTP front, also for what no service raised
    (404, 405, 415, 500): `{"error": {"code", "reason", "message", "field_violations"}}`."""
    error: dict[str, object] = {
        "code": code.name,
        "reason": reason,
        "message": _encodable(message),
        "field_violations": [
            {"field": _encodable(f), "description": _encodable(d)} for f, d in violations or ()
        ],
    }
    if metadata:
        error["metadata"] = metadata
    return {"error": error}
