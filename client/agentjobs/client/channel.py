"""What both clients share about the connection: TLS credentials, options, metadata."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from agentjobs.client.service_config import channel_options

StrPath = str | Path


def _read(path: StrPath | None) -> bytes | None:
    return Path(path).read_bytes() if path is not None else None


def channel_credentials(
    ca_file: StrPath | None = None,
    cert_file: StrPath | None = None,
    key_file: StrPath | None = None,
    *,
    tls: bool = False,
) -> grpc.ChannelCredentials | None:
    """None (plaintext) unless TLS is asked for, or a CA or a client certificate is
    given. Without a CA the server's certificate is checked against the system roots."""
    if (cert_file is None) != (key_file is None):
        raise ValueError("mutual TLS needs both cert_file and key_file")
    if not tls and ca_file is None and cert_file is None:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca_file),
        private_key=_read(key_file),
        certificate_chain=_read(cert_file),
    )


@dataclass(frozen=True)
class ConnectionSettings:
    target: str
    credentials: grpc.ChannelCredentials | None
    options: list[tuple[str, Any]]
    operator_metadata: tuple[tuple[str, str], ...] = field(default=())


def connection_settings(
    target: str,
    *,
    ca_file: StrPath | None,
    cert_file: StrPath | None,
    key_file: StrPath | None,
    tls: bool,
    operator_token: str | None,
    retry_policy: dict[str, Any] | None,
    options: list[tuple[str, Any]] | None,
) -> ConnectionSettings:
    metadata: tuple[tuple[str, str], ...] = ()
    if operator_token:
        metadata = (("authorization", f"Bearer {operator_token}"),)
    return ConnectionSettings(
        target=target,
        credentials=channel_credentials(ca_file, cert_file, key_file, tls=tls),
        options=channel_options(retry_policy, options),
        operator_metadata=metadata,
    )


class _UseDefault(enum.Enum):
    TOKEN = 0


# `timeout=DEFAULT` applies the client's default_timeout; `timeout=None` means no deadline.
DEFAULT = _UseDefault.TOKEN
Timeout = float | None | _UseDefault


def resolve_timeout(timeout: Timeout, default: float | None) -> float | None:
    return default if isinstance(timeout, _UseDefault) else timeout
