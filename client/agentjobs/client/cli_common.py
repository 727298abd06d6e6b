"""What every `agentjobs` command shares: exit codes, the one-line error contract, the
connection options and the JSON / rich output helpers."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import grpc
import typer
from rich.console import Console

from agentjobs.client import cli_format as fmt
from agentjobs.client.errors import AgentJobsError
from agentjobs.client.sync_client import JobClient

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_PRECONDITION = 4
EXIT_UNAVAILABLE = 5
EXIT_AUTH = 6
EXIT_RESOURCE_EXHAUSTED = 7
EXIT_INTERRUPTED = 130

EXIT_CODES: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: EXIT_USAGE,
    grpc.StatusCode.OUT_OF_RANGE: EXIT_USAGE,
    grpc.StatusCode.NOT_FOUND: EXIT_NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION: EXIT_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS: EXIT_PRECONDITION,
    grpc.StatusCode.ABORTED: EXIT_PRECONDITION,
    grpc.StatusCode.UNAVAILABLE: EXIT_UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: EXIT_UNAVAILABLE,
    grpc.StatusCode.UNAUTHENTICATED: EXIT_AUTH,
    grpc.StatusCode.PERMISSION_DENIED: EXIT_AUTH,
    grpc.StatusCode.RESOURCE_EXHAUSTED: EXIT_RESOURCE_EXHAUSTED,
}

DEFAULT_TARGET = "127.0.0.1:50051"


class UsageProblem(Exception):
    """A bad value the CLI itself detected (exit 2, one line)."""


class MissingToken(Exception):
    """An operator command without a token: refused before any call (exit 6)."""


# -- the error contract: one line on stderr, a documented exit code --------------
def error_line(reason: str, message: str = "") -> str:
    line = f"error: {reason}: {message}" if message else f"error: {reason}"
    # Server messages may hold newlines; the contract is one line.
    return " ".join(line.split())


def fail(reason: str, message: str, code: int) -> NoReturn:
    typer.echo(error_line(reason, message), err=True)
    raise typer.Exit(code)


def _describe(error: AgentJobsError, target: object) -> tuple[str, str]:
    # Transport failures carry no ErrorInfo: say where we tried to go.
    if error.code == grpc.StatusCode.UNAVAILABLE and error.reason == "UNAVAILABLE":
        return "UNAVAILABLE", f"cannot reach the agentjobs server at {target} ({error.message})"
    reason, _, message = error.describe().partition(": ")
    return reason, message


P = ParamSpec("P")
R = TypeVar("R")


def cli_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turns every failure of a command into one stderr line and its exit code."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except AgentJobsError as exc:
            reason, message = _describe(exc, kwargs.get("target", ""))
            fail(reason, message, EXIT_CODES.get(exc.code, EXIT_FAILED))
        except UsageProblem as exc:
            fail("USAGE", str(exc), EXIT_USAGE)
        except MissingToken as exc:
            fail("UNAUTHENTICATED", str(exc), EXIT_AUTH)
        except KeyboardInterrupt:
            fail("INTERRUPTED", "", EXIT_INTERRUPTED)
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            if os.environ.get("AGENTJOBS_DEBUG"):
                raise
            fail("INTERNAL", f"{type(exc).__name__}: {exc}", EXIT_FAILED)

    return wrapper


# -- connection options (every command) -----------------------------------------
Target = Annotated[
    str, typer.Option("--target", envvar="AGENTJOBS_TARGET", help="host:port of the server.")
]
Token = Annotated[
    str | None,
    typer.Option("--token", envvar="AGENTJOBS_TOKEN", help="Operator token.", show_default=False),
]
Timeout = Annotated[float, typer.Option("--timeout", help="Deadline of each call, seconds.")]
Tls = Annotated[
    bool,
    typer.Option(
        "--tls", envvar="AGENTJOBS_TLS", help="Use TLS (implied by --ca-file / --cert-file)."
    ),
]
CaFile = Annotated[
    Path | None,
    typer.Option(
        "--ca-file", envvar="AGENTJOBS_CA_FILE", help="CA of the server's certificate (PEM)."
    ),
]
CertFile = Annotated[
    Path | None,
    typer.Option("--cert-file", envvar="AGENTJOBS_CERT_FILE", help="Client certificate (mTLS)."),
]
KeyFile = Annotated[
    Path | None,
    typer.Option("--key-file", envvar="AGENTJOBS_KEY_FILE", help="Client private key (mTLS)."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


def connect(
    target: str,
    timeout: float,
    tls: bool,
    ca_file: Path | None,
    cert_file: Path | None,
    key_file: Path | None,
    token: str | None = None,
) -> JobClient:
    try:
        return JobClient(
            target,
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            tls=tls,
            operator_token=token,
            default_timeout=timeout,
        )
    except (OSError, ValueError) as exc:
        raise UsageProblem(f"cannot set up the connection: {exc}") from exc


def require_token(token: str | None) -> str:
    # The server would answer UNAUTHENTICATED too; naming the missing flag helps more.
    if not token:
        raise MissingToken("operator commands need --token or AGENTJOBS_TOKEN")
    return token


# -- output ------------------------------------------------------------------------
def console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def print_json(document: Any) -> None:
    typer.echo(fmt.dumps(document))
