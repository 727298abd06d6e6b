"""Checks made before anything starts, so that the commonest mistakes are found before
the database is touched, and without the gRPC core's own error lines on stderr."""

from __future__ import annotations

import socket
import ssl

from agentjobs.server.config import Settings, env_name, split_host_port
from agentjobs.server.startup_errors import Problem, listen_problem


def listen_problem_of(setting: str, address: str, *, reuse_port: bool = False) -> Problem | None:
    """Why nothing could listen on `address` now, or None when something could. Like
    the gRPC server, it succeeds if any address the host resolves to can be bound."""
    host, port = split_host_port(address)
    if port == 0:
        return None
    try:
        candidates = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        return listen_problem(setting, address, exc)
    first_error: OSError | None = None
    for family, kind, proto, _, where in candidates:
        with socket.socket(family, kind, proto) as probe:
            # As both servers do: a port whose old connections linger in TIME_WAIT is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                # Sibling processes of `serve --processes N` share the port.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                probe.bind(where)
            except OSError as exc:
                first_error = first_error or exc
                continue
        return None
    assert first_error is not None
    return listen_problem(setting, address, first_error)


def tls_problem_of(settings: Settings) -> Problem | None:
    """Whether the TLS files are a certificate with its key (and a CA) that TLS can use:
    the gRPC core would refuse them with three lines of its own and no setting named."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(
            settings.tls_cert_file, settings.tls_key_file, password=_no_password
        )
    except ssl.SSLError as exc:
        return Problem(
            "AGENTJOBS_TLS_CERT_FILE",
            str(settings.tls_cert_file),
            "not a PEM certificate whose unencrypted key is AGENTJOBS_TLS_KEY_FILE="
            f"{settings.tls_key_file} ({exc.reason or exc})",
        )
    except OSError as exc:
        return _unreadable(exc, settings)
    if settings.tls_client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=settings.tls_client_ca_file)
        except ssl.SSLError as exc:
            return Problem(
                "AGENTJOBS_TLS_CLIENT_CA_FILE",
                str(settings.tls_client_ca_file),
                f"not a PEM CA certificate ({exc.reason or exc})",
            )
        except OSError as exc:
            return _unreadable(exc, settings)
    return None


def _no_password() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal for an encrypted key.
    return b""


def _unreadable(exc: OSError, settings: Settings) -> Problem:
    for field in ("tls_cert_file", "tls_key_file", "tls_client_ca_file"):
        path = getattr(settings, field)
        if path is not None and exc.filename is not None and str(path) == str(exc.filename):
            return Problem(env_name(field), str(path), f"cannot read it: {exc.strerror}")
    return Problem("AGENTJOBS_TLS_CERT_FILE", str(settings.tls_cert_file), str(exc))
