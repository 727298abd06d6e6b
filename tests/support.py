"""Helpers shared by the test suites (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import socket

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

IN_CI = os.environ.get("CI", "").lower() == "true"


def error_details(error: grpc.aio.AioRpcError) -> tuple[str, dict[str, str]]:
    """(ErrorInfo.reason, {field: description}) from a rich status."""
    status = rpc_status.from_call(error)
    assert status is not None, f"no rich status on {error.code()}: {error.details()}"
    reason, fields = "", {}
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            assert info.domain == "agentjobs"
            reason = info.reason
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields.update({v.field: v.description for v in bad.field_violations})
    assert reason, "every error carries ErrorInfo"
    return reason, fields


def free_port() -> int:
    """A loopback port nothing listens on (free now; tests bind it moments later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
