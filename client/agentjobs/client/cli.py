"""`agentjobs`: start, follow and answer jobs of an agentjobs server; the operator's books.

Connection: --target or AGENTJOBS_TARGET (default 127.0.0.1:50051); operator commands
(earnings, invoices, cancel) need --token or AGENTJOBS_TOKEN; --timeout is the deadline
of each call in seconds; --ca-file enables TLS, --cert-file/--key-file mutual TLS.

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
    6  authentication: missing (UNAUTHENTICATED) or wrong (PERMISSION_DENIED) token
    7  resource exhausted (rate or size limit)
  130  interrupted (Ctrl-C)

Set AGENTJOBS_DEBUG=1 to see the traceback of an unexpected error.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import grpc
import typer
from rich.console import Console

from agentjobs.client import cli_format as fmt
from agentjobs.client.convert import (
    TERMINAL_STATUSES,
    invoice_status,
    job_status,
    struct_to_dict,
)
from agentjobs.client.errors import AgentJobsError
from agentjobs.client.sync_client import JobClient
from agentjobs.v1 import jobs_pb2

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

app = typer.Typer(
    name="agentjobs",
    help=__doc__,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
)


class UsageProblem(Exception):
    """A bad value the CLI itself detected (exit 2, one line)."""


# -- shared options ------------------------------------------------------------
Target = Annotated[
    str, typer.Option("--target", envvar="AGENTJOBS_TARGET", help="host:port of the server.")
]
Token = Annotated[
    str | None,
    typer.Option("--token", envvar="AGENTJOBS_TOKEN", help="Operator token.", show_default=False),
]
Timeout = Annotated[float, typer.Option("--timeout", help="Deadline of each call, seconds.")]
CaFile = Annotated[
    Path | None, typer.Option("--ca-file", help="CA certificate (PEM): use TLS.", exists=False)
]
CertFile = Annotated[Path | None, typer.Option("--cert-file", help="Client certificate (mTLS).")]
KeyFile = Annotated[Path | None, typer.Option("--key-file", help="Client private key (mTLS).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
Inputs = Annotated[
    list[str] | None,
    typer.Option(
        "--input",
        "-i",
        help="key=value, repeatable; the value is JSON when it parses (5, true, [1]), "
        "else a string.",
    ),
]
InputFile = Annotated[
    Path | None, typer.Option("--input-file", help="A JSON object; --input entries override it.")
]

P = ParamSpec("P")
R = TypeVar("R")


def _connect(
    target: str,
    timeout: float,
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
            operator_token=token,
            default_timeout=timeout,
        )
    except (OSError, ValueError) as exc:
        raise UsageProblem(f"cannot set up the connection: {exc}") from exc


def _fail(reason: str, message: str, code: int) -> NoReturn:
    line = f"error: {reason}: {message}" if message else f"error: {reason}"
    typer.echo(" ".join(line.split()), err=True)
    raise typer.Exit(code)


def _describe(error: AgentJobsError, target: object) -> str:
    text = error.describe()
    # Transport failures carry no ErrorInfo: say where we tried to go.
    if error.code == grpc.StatusCode.UNAVAILABLE and error.reason == "UNAVAILABLE":
        text = f"UNAVAILABLE: cannot reach the agentjobs server at {target} ({error.message})"
    return text


def cli_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turns every failure into one stderr line and a documented exit code."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except AgentJobsError as exc:
            reason, _, message = _describe(exc, kwargs.get("target", "")).partition(": ")
            _fail(reason, message, EXIT_CODES.get(exc.code, EXIT_FAILED))
        except UsageProblem as exc:
            _fail("USAGE", str(exc), EXIT_USAGE)
        except KeyboardInterrupt:
            _fail("INTERRUPTED", "", EXIT_INTERRUPTED)
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            if os.environ.get("AGENTJOBS_DEBUG"):
                raise
            _fail("INTERNAL", f"{type(exc).__name__}: {exc}", EXIT_FAILED)

    return wrapper


# -- input parsing -------------------------------------------------------------
def parse_value(text: str) -> Any:
    """JSON when it parses (numbers, booleans, null, lists, objects), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_inputs(pairs: list[str] | None, input_file: Path | None) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if input_file is not None:
        try:
            loaded = json.loads(input_file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageProblem(f"cannot read {input_file}: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise UsageProblem(f"{input_file} is not valid JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise UsageProblem(f"{input_file} must hold a JSON object")
        data.update(loaded)
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageProblem(f"--input {pair!r} is not key=value")
        data[key.strip()] = parse_value(value)
    return data


def parse_when(text: str | None, option: str) -> datetime | None:
    """ISO date or date-time; without a zone it is local time."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise UsageProblem(f"{option} {text!r} is not an ISO date (2025-01-31[T12:00])") from None


def _checked(parse: Callable[[str], str], value: str | None, option: str) -> str | None:
    if not value:
        return None
    try:
        return parse(value)
    except ValueError as exc:
        raise UsageProblem(f"{option}: {exc}") from exc


# -- output --------------------------------------------------------------------
def _console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def _print_json(document: Any) -> None:
    typer.echo(fmt.dumps(document))


# -- JobService commands -------------------------------------------------------
@app.command()
@cli_errors
def start(
    inputs: Inputs = None,
    input_file: InputFile = None,
    identifier: Annotated[
        str | None,
        typer.Option(help="Purchaser identifier (hex, 14-26 chars); random when not given."),
    ] = None,
    request_id: Annotated[
        str | None, typer.Option(help="Idempotency key; reuse it to retry safely.")
    ] = None,
    target: Target = DEFAULT_TARGET,
    timeout: Timeout = 10.0,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """Start a job; prints its id and the payment request."""
    data = parse_inputs(inputs, input_file)
    with _connect(target, timeout, ca_file, cert_file, key_file) as client:
        started = client.start_job(
            data, identifier_from_purchaser=identifier, request_id=request_id
        )
    if as_json:
        _print_json(fmt.to_dict(started))
        return
    console = _console()
    console.print(fmt.started_view(started))
    console.print(f"\nFollow it with: agentjobs watch {started.job_id}")


@app.command()
@cli_errors
def status(
    job_id: str,
    target: Target = DEFAULT_TARGET,
    timeout: Timeout = 10.0,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """Show a job's status (and the input it asks for, its result or its error)."""
    with _connect(target, timeout, ca_file, cert_file, key_file) as client:
        answer = client.get_job_status(job_id)
    if as_json:
        _print_json(fmt.to_dict(answer))
        return
    _console().print(fmt.status_view(answer))


@app.command()
@cli_errors
def watch(
    job_id: str,
    target: Target = DEFAULT_TARGET,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Deadline of the whole watch, seconds; 0: none.")
    ] = 0.0,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """Follow a job until it completes (exit 0) or fails (exit 1)."""
    console = _console()
    updates: list[jobs_pb2.WatchJobResponse] = []
    with _connect(target, 10.0, ca_file, cert_file, key_file) as client:
        for update in client.watch(job_id, timeout=timeout or None):
            updates.append(update)
            if as_json:
                continue
            console.print(fmt.event_line(update))
            job = update.job
            if job.status == jobs_pb2.JOB_STATUS_AWAITING_INPUT and (
                not update.HasField("event")
                or update.event.type == jobs_pb2.JOB_EVENT_TYPE_INPUT_REQUESTED
            ):
                console.print(f"  the agent asks: {job.input_request_message}")
                if job.HasField("input_schema"):
                    console.print(fmt.schema_table(job.input_schema, title="  requested input"))
                console.print(
                    f"  answer with: agentjobs input {job.job_id} "
                    f"--status-id {job.status_id} --input key=value"
                )
    final = updates[-1].job if updates else None
    if as_json:
        _print_json(
            {
                "job": fmt.to_dict(final) if final is not None else None,
                "events": [fmt.to_dict(u.event) for u in updates if u.HasField("event")],
            }
        )
    if final is None or final.status not in TERMINAL_STATUSES:
        _fail("WATCH_ENDED_EARLY", f"the stream ended before job {job_id} finished", EXIT_FAILED)
    if not as_json:
        console.print(fmt.job_view(final))
    if final.status != jobs_pb2.JOB_STATUS_COMPLETED:
        raise typer.Exit(EXIT_FAILED)


@app.command("input")
@cli_errors
def provide_input(
    job_id: str,
    status_id: Annotated[
        str | None,
        typer.Option(help="The awaiting-input status answered; read from the job if omitted."),
    ] = None,
    inputs: Inputs = None,
    input_file: InputFile = None,
    request_id: Annotated[
        str | None, typer.Option(help="Idempotency key; reuse it to retry safely.")
    ] = None,
    target: Target = DEFAULT_TARGET,
    timeout: Timeout = 10.0,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """Answer a job that awaits input."""
    data = parse_inputs(inputs, input_file)
    with _connect(target, timeout, ca_file, cert_file, key_file) as client:
        if not status_id:
            status_id = client.get_job_status(job_id).status_id
        answer = client.provide_input(job_id, status_id, data, request_id=request_id)
    if as_json:
        _print_json(fmt.to_dict(answer))
        return
    _console().print(
        fmt.key_values(
            [("job id", job_id), ("input hash", answer.input_hash)], title="Input provided"
        )
    )


@app.command("list")
@cli_errors
def list_jobs(
    status_name: Annotated[
        str | None,
        typer.Option(
            "--status",
            help="awaiting_payment, awaiting_input, running, completed or failed.",
        ),
    ] = None,
    page_size: Annotated[int, typer.Option(help="Jobs per page (server default 50).")] = 0,
    page_token: Annotated[str, typer.Option(help="next_page_token of a previous page.")] = "",
    target: Target = DEFAULT_TARGET,
    timeout: Timeout = 10.0,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """List jobs, newest first."""
    wanted = _checked(job_status, status_name, "--status")
    with _connect(target, timeout, ca_file, cert_file, key_file) as client:
        page = client.list_jobs(page_size=page_size, page_token=page_token, status=wanted)
    if as_json:
        _print_json(fmt.to_dict(page))
        return
    console = _console()
    console.print(fmt.jobs_table(page.jobs))
    if page.next_page_token:
        console.print(f"more: agentjobs list --page-token {page.next_page_token}")


@app.command()
@cli_errors
def schema(
    target: Target = DEFAULT_TARGET,
    timeout: Timeout = 10.0,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """Show the input schema a job's input must satisfy."""
    with _connect(target, timeout, ca_file, cert_file, key_file) as client:
        answer = client.get_input_schema()
    if as_json:
        _print_json(fmt.to_dict(answer))
        return
    _console().print(fmt.schema_table(answer.input_schema))


@app.command()
@cli_errors
def availability(
    target: Target = DEFAULT_TARGET,
    timeout: Timeout = 10.0,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """Tell whether the agent accepts jobs."""
    with _connect(target, timeout, ca_file, cert_file, key_file) as client:
        answer = client.get_availability()
    if as_json:
        _print_json(fmt.to_dict(answer))
        return
    _console().print(fmt.availability_view(answer))


@app.command()
@cli_errors
def demo(
    target: Target = DEFAULT_TARGET,
    timeout: Timeout = 10.0,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """Show an example input and the agent's output for it."""
    with _connect(target, timeout, ca_file, cert_file, key_file) as client:
        answer = client.get_demo()
    if as_json:
        _print_json(fmt.to_dict(answer))
        return
    _console().print(
        fmt.key_values(
            [
                ("input", json.dumps(struct_to_dict(answer.input), ensure_ascii=False)),
                *((f"output.{k}", v) for k, v in answer.output.items()),
            ],
            title="Demo",
        )
    )


# -- OperatorService commands --------------------------------------------------
@app.command()
@cli_errors
def earnings(
    since: Annotated[
        str | None, typer.Option(help="Invoices created at or after (ISO date/time, local).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Invoices created before (ISO date/time, local).")
    ] = None,
    recent: Annotated[int, typer.Option(help="How many recent invoices (server default 10).")] = 0,
    target: Target = DEFAULT_TARGET,
    token: Token = None,
    timeout: Timeout = 10.0,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """The earnings report: earned, locked, pending, expired, refunded; jobs by status."""
    start_time = parse_when(since, "--since")
    end_time = parse_when(until, "--until")
    with _connect(target, timeout, ca_file, cert_file, key_file, token) as client:
        report = client.get_earnings_report(
            start_time=start_time, end_time=end_time, recent_limit=recent
        )
    if as_json:
        _print_json(fmt.to_dict(report))
        return
    period = " ".join(
        part
        for part in (f"since {since}" if since else "", f"until {until}" if until else "")
        if part
    )
    _console().print(fmt.earnings_view(report, period))


@app.command()
@cli_errors
def invoices(
    status_name: Annotated[
        str | None,
        typer.Option("--status", help="pending, paid, expired, withdrawn, refunded or invalid."),
    ] = None,
    page_size: Annotated[int, typer.Option(help="Invoices per page (server default 50).")] = 0,
    page_token: Annotated[str, typer.Option(help="next_page_token of a previous page.")] = "",
    target: Target = DEFAULT_TARGET,
    token: Token = None,
    timeout: Timeout = 10.0,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """List invoices, newest first."""
    wanted = _checked(invoice_status, status_name, "--status")
    with _connect(target, timeout, ca_file, cert_file, key_file, token) as client:
        page = client.list_invoices(page_size=page_size, page_token=page_token, status=wanted)
    if as_json:
        _print_json(fmt.to_dict(page))
        return
    console = _console()
    console.print(fmt.invoices_table(page.invoices))
    if page.next_page_token:
        console.print(f"more: agentjobs invoices --page-token {page.next_page_token}")


@app.command()
@cli_errors
def cancel(
    job_id: str,
    reason: Annotated[str, typer.Option(help="Why; kept in the job's error message.")] = "",
    target: Target = DEFAULT_TARGET,
    token: Token = None,
    timeout: Timeout = 10.0,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """Cancel a job that still awaits payment."""
    with _connect(target, timeout, ca_file, cert_file, key_file, token) as client:
        answer = client.cancel_job(job_id, reason)
    if as_json:
        _print_json(fmt.to_dict(answer))
        return
    _console().print(fmt.job_view(answer.job))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("error: INTERRUPTED", err=True)
        sys.exit(EXIT_INTERRUPTED)
