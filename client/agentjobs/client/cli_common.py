"""What every `agentjobs` command shares: exit codes, the one-line error contract, the
connection options and the JSON / rich output helpers."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
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
            reason, message = _describe(exc, _current_target.get())
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


# -- connection options --------------------------------------------------------
# Accepted before the command (`agentjobs --target X list`, read from the environment
# too) and after it (`agentjobs list --target X`); after wins, then before, then the
# environment, then the default. So only the options before the command read the
# environment: an AGENTJOBS_TARGET must not outrank a --target given before the command.
DEFAULT_TIMEOUT_S = 10.0

TargetHelp = "host:port of the server [env AGENTJOBS_TARGET; default 127.0.0.1:50051]."
TokenHelp = "Operator token [env AGENTJOBS_TOKEN]."
TimeoutHelp = "Deadline of each call, seconds (more than 0) [default 10]."

GlobalTarget = Annotated[
    str | None, typer.Option("--target", envvar="AGENTJOBS_TARGET", help=TargetHelp)
]
GlobalToken = Annotated[
    str | None,
    typer.Option("--token", envvar="AGENTJOBS_TOKEN", help=TokenHelp, show_default=False),
]
GlobalTls = Annotated[
    bool,
    typer.Option(
        "--tls", envvar="AGENTJOBS_TLS", help="Use TLS (implied by --ca-file / --cert-file)."
    ),
]
GlobalCaFile = Annotated[
    Path | None,
    typer.Option(
        "--ca-file", envvar="AGENTJOBS_CA_FILE", help="CA of the server's certificate (PEM)."
    ),
]
GlobalCertFile = Annotated[
    Path | None,
    typer.Option("--cert-file", envvar="AGENTJOBS_CERT_FILE", help="Client certificate (mTLS)."),
]
GlobalKeyFile = Annotated[
    Path | None,
    typer.Option("--key-file", envvar="AGENTJOBS_KEY_FILE", help="Client private key (mTLS)."),
]

Target = Annotated[str | None, typer.Option("--target", help=TargetHelp, show_default=False)]
Token = Annotated[str | None, typer.Option("--token", help=TokenHelp, show_default=False)]
Timeout = Annotated[float | None, typer.Option("--timeout", help=TimeoutHelp, show_default=False)]
Tls = Annotated[bool, typer.Option("--tls", help="Use TLS (implied by --ca-file / --cert-file).")]
CaFile = Annotated[
    Path | None, typer.Option("--ca-file", help="CA of the server's certificate (PEM).")
]
CertFile = Annotated[Path | None, typer.Option("--cert-file", help="Client certificate (mTLS).")]
KeyFile = Annotated[Path | None, typer.Option("--key-file", help="Client private key (mTLS).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


@dataclass(frozen=True)
class Connection:
    """The connection options as given; None / False: not given."""

    target: str | None = None
    token: str | None = None
    timeout: float | None = None
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    as_json: bool = False

    def over(self, before: Connection) -> Connection:
        """These options (given after the command) over those given before it."""
        return Connection(
            target=self.target or before.target,
            token=self.token or before.token,
            timeout=self.timeout if self.timeout is not None else before.timeout,
            tls=self.tls or before.tls,
            ca_file=self.ca_file or before.ca_file,
            cert_file=self.cert_file or before.cert_file,
            key_file=self.key_file or before.key_file,
            as_json=self.as_json or before.as_json,
        )

    @property
    def resolved_target(self) -> str:
        return self.target or DEFAULT_TARGET

    @property
    def resolved_timeout(self) -> float:
        return DEFAULT_TIMEOUT_S if self.timeout is None else self.timeout


# The target of the command being run, for the message when nothing answers there.
_current_target: ContextVar[str] = ContextVar("agentjobs_cli_target", default=DEFAULT_TARGET)


def checked_timeout(timeout: float | None, option: str = "--timeout") -> float | None:
    if timeout is not None and not timeout > 0:
        raise UsageProblem(f"{option} must be more than 0 seconds, got {timeout:g}")
    return timeout


def connection(ctx: typer.Context, given: Connection) -> Connection:
    """The options of this command over those given before it (see the callback)."""
    before = ctx.find_root().obj
    merged = given.over(before if isinstance(before, Connection) else Connection())
    checked_timeout(merged.timeout)
    _current_target.set(merged.resolved_target)
    return merged


def global_options(
    ctx: typer.Context,
    target: GlobalTarget = None,
    token: GlobalToken = None,
    timeout: Timeout = None,
    tls: GlobalTls = False,
    ca_file: GlobalCaFile = None,
    cert_file: GlobalCertFile = None,
    key_file: GlobalKeyFile = None,
    as_json: AsJson = False,
) -> None:
    """The connection options given before the command, kept for it."""
    try:
        checked_timeout(timeout)
    except UsageProblem as exc:
        fail("USAGE", str(exc), EXIT_USAGE)
    ctx.obj = Connection(target, token, timeout, tls, ca_file, cert_file, key_file, as_json)
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())


def connect(options: Connection, *, operator: bool = False) -> JobClient:
    token = require_token(options.token) if operator else None
    try:
        return JobClient(
            options.resolved_target,
            ca_file=options.ca_file,
            cert_file=options.cert_file,
            key_file=options.key_file,
            tls=options.tls,
            operator_token=token,
            default_timeout=options.resolved_timeout,
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
