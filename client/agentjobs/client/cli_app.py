"""`agentjobs`: start, follow and answer jobs of an agentjobs server; the operator's books.

Connection: --target or AGENTJOBS_TARGET (default 127.0.0.1:50051); operator commands
(list, earnings, invoices, cancel, attention, recover, refund, replicas) need --token or
AGENTJOBS_TOKEN; --timeout is the deadline of each call in seconds; --tls, --ca-file
enable TLS, --cert-file/--key-file mutual TLS (also AGENTJOBS_TLS, AGENTJOBS_CA_FILE,
AGENTJOBS_CERT_FILE, AGENTJOBS_KEY_FILE). They and --json go before the command
(`agentjobs --target X list`) or after it.

Money that needs a person: `attention` lists each such job with the command that helps,
`recover JOB_ID` retries a stuck payment action, `refund JOB_ID` gives the buyer's money
back where the payment's contract allows it (both exit 4 where there is nothing to do).

Every command takes --json and then prints exactly one JSON document on stdout
(canonical protobuf JSON: the .proto field names, enums by name, int64 as strings).

Errors are one line on stderr, `error: <REASON>: <message> (field: why; ...)`, and
the exit code says what went wrong:

\b
    0  success (watch: the job completed)
    1  the watched job failed, or an unexpected error
    2  usage error or invalid argument (bad input, unknown status name, bad file)
    3  not found (unknown job id)
    4  failed precondition (the job's status does not allow it; conflicts)
    5  server unavailable or deadline exceeded (nothing listening, server down)
    6  authentication: token missing or wrong (UNAUTHENTICATED, PERMISSION_DENIED)
    7  resource exhausted (rate or size limit)
  130  interrupted (Ctrl-C)

Set AGENTJOBS_DEBUG=1 to see the traceback of an unexpected error.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from agentjobs.client import cli_jobs, cli_money, cli_operator, cli_replicas
from agentjobs.client.cli_common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    error_line,
    global_options,
)


def _click_exception(name: str) -> type[Exception]:
    # Recent typer vendors click (typer._click), older typer uses click itself; both
    # expose BadParameter, whose bases are the exception classes of the click in use.
    base: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)
    return base


USAGE_ERROR = _click_exception("UsageError")
CLICK_EXCEPTION = _click_exception("ClickException")


class OneLineErrors(TyperGroup):
    """Click reports a usage error as a block (usage, hint, message); the CLI's contract
    is one line on stderr and an exit code, for usage errors too."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        run = super().main
        if not standalone_mode:
            return run(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            code = run(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except USAGE_ERROR as exc:
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            typer.echo(error_line("USAGE", _message(exc) + hint), err=True)
            sys.exit(EXIT_USAGE)
        except CLICK_EXCEPTION as exc:
            typer.echo(error_line("USAGE", _message(exc)), err=True)
            sys.exit(getattr(exc, "exit_code", EXIT_USAGE))
        except typer.Abort:
            typer.echo(error_line("INTERRUPTED"), err=True)
            sys.exit(EXIT_INTERRUPTED)
        # Without standalone mode click returns an Exit's code, or None on success.
        sys.exit(code if isinstance(code, int) else EXIT_OK)


def _message(exc: Exception) -> str:
    format_message = getattr(exc, "format_message", None)
    return str(format_message() if callable(format_message) else exc)


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="agentjobs",
        cls=OneLineErrors,
        help=__doc__,
        invoke_without_command=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        add_completion=False,
    )
    # The connection options before the command; `agentjobs` alone shows the help
    # (click's no_args_is_help would make it an error).
    app.callback()(global_options)
    cli_jobs.register(app)
    cli_operator.register(app)
    cli_money.register(app)
    cli_replicas.register(app)
    return app
