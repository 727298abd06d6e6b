"""Exceptions the client raises, decoded from the server's rich status (AIP-193).

Every failed call raises an `AgentJobsError` subclass chosen by the gRPC code; the
reason, metadata and field violations come from the `google.rpc.ErrorInfo` and
`google.rpc.BadRequest` details in the `grpc-status-details-bin` trailer. Errors raised
by the transport itself (server down, deadline) carry no details: their reason is then
the code's name, so callers can always switch on `reason`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

from agentjobs.client.convert import TERMINAL_STATUSES
from agentjobs.v1 import jobs_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"


class AgentJobsError(Exception):
    """A failed call: gRPC code, server message, ErrorInfo reason/metadata, violations."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
        field_violations: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.code = code
        self.message = message
        self.reason = reason or code.name
        self.metadata: dict[str, str] = dict(metadata or {})
        self.field_violations: list[tuple[str, str]] = list(field_violations)
        super().__init__(self.describe())

    def describe(self) -> str:
        """One line: `REASON: message (field: why; ...)`."""
        text = f"{self.reason}: {self.message}" if self.message else self.reason
        if self.field_violations:
            text += " (" + "; ".join(f"{f}: {d}" for f, d in self.field_violations) + ")"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code.name}, reason={self.reason!r}, "
            f"message={self.message!r}, field_violations={self.field_violations!r})"
        )


class InvalidArgument(AgentJobsError):
    """INVALID_ARGUMENT: `field_violations` says which fields and why."""


class JobNotFound(AgentJobsError):
    """NOT_FOUND: no such job (or invoice)."""


class FailedPrecondition(AgentJobsError):
    """FAILED_PRECONDITION: the job is not in a status that allows the call."""


class AlreadyExists(AgentJobsError):
    """ALREADY_EXISTS: a request_id reused for a different request."""


class Unauthenticated(AgentJobsError):
    """UNAUTHENTICATED: an operator call without a token."""


class PermissionDenied(AgentJobsError):
    """PERMISSION_DENIED: a wrong operator token (or the operator service is disabled)."""


class Unavailable(AgentJobsError):
    """UNAVAILABLE: the server (or its payment service) cannot be reached; retried already."""


class ResourceExhausted(AgentJobsError):
    """RESOURCE_EXHAUSTED: rate or size limit."""


class DeadlineExceeded(AgentJobsError):
    """DEADLINE_EXCEEDED: the call did not finish within its timeout."""


_BY_CODE: dict[grpc.StatusCode, type[AgentJobsError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: JobNotFound,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}

_CODE_BY_NUMBER: dict[int, grpc.StatusCode] = {c.value[0]: c for c in grpc.StatusCode}


def error_from_status(
    code: grpc.StatusCode, message: str, status: status_pb2.Status | None = None
) -> AgentJobsError:
    """The exception for a code and message, enriched by a google.rpc.Status if any."""
    reason = ""
    metadata: dict[str, str] = {}
    violations: list[tuple[str, str]] = []
    if status is not None:
        message = status.message or message
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason = info.reason
                metadata.update(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations.extend((v.field, v.description) for v in bad.field_violations)
    cls = _BY_CODE.get(code, AgentJobsError)
    return cls(code, message, reason, metadata, violations)


def _status_from_trailers(
    code: grpc.StatusCode, trailers: Iterable[tuple[str, Any]] | None
) -> status_pb2.Status | None:
    for key, value in trailers or ():
        if key != STATUS_DETAILS_KEY:
            continue
        status = status_pb2.Status.FromString(value)
        # A status whose code disagrees with the call's was not meant for this call
        # (a proxy rewrote the code): trust the transport's code, ignore the details.
        if _CODE_BY_NUMBER.get(status.code) != code:
            return None
        return status
    return None


def error_from_rpc(error: grpc.RpcError) -> AgentJobsError:
    """Decode a sync or asyncio gRPC error (both are grpc.Call-like) into AgentJobsError."""
    code_of = getattr(error, "code", None)
    code: grpc.StatusCode = code_of() if callable(code_of) else grpc.StatusCode.UNKNOWN
    details_of = getattr(error, "details", None)
    message = (details_of() if callable(details_of) else None) or ""
    trailers_of = getattr(error, "trailing_metadata", None)
    trailers = trailers_of() if callable(trailers_of) else None
    return error_from_status(code, message, _status_from_trailers(code, trailers))


def final_snapshot(job_id: str, last: jobs_pb2.Job | None) -> jobs_pb2.Job:
    """The last watched snapshot if it is terminal; the server ends WatchJob only at a
    terminal status, so anything else means the stream was cut short."""
    if last is None or last.status not in TERMINAL_STATUSES:
        raise Unavailable(
            grpc.StatusCode.UNAVAILABLE,
            f"the watch of job {job_id} ended before the job finished",
            "WATCH_ENDED_EARLY",
        )
    return last
