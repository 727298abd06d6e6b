"""The JobService commands: start, status, watch, input, list, schema, availability, demo."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from agentjobs.client import cli_format as fmt
from agentjobs.client.cli_common import (
    EXIT_FAILED,
    AsJson,
    CaFile,
    CertFile,
    Connection,
    KeyFile,
    Target,
    Timeout,
    Tls,
    Token,
    checked_timeout,
    cli_errors,
    connect,
    connection,
    console,
    fail,
    print_json,
)
from agentjobs.client.cli_inputs import (
    InputFile,
    Inputs,
    build_input,
    checked_enum,
    read_input_file,
    split_pairs,
    text_field_ids,
)
from agentjobs.client.convert import TERMINAL_STATUSES, job_status, struct_to_dict
from agentjobs.client.sync_client import JobClient
from agentjobs.v1 import jobs_pb2

RequestId = Annotated[str | None, typer.Option(help="Idempotency key; reuse it to retry safely.")]


@cli_errors
def start(
    ctx: typer.Context,
    inputs: Inputs = None,
    input_file: InputFile = None,
    identifier: Annotated[
        str | None,
        typer.Option(help="Purchaser identifier (hex, 14-26 chars); random when not given."),
    ] = None,
    request_id: RequestId = None,
    then_watch: Annotated[
        bool,
        typer.Option("--watch", help="Then follow the job like `watch` (same exit codes)."),
    ] = False,
    target: Target = None,
    timeout: Timeout = None,
    tls: Tls = False,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """Start a job; prints its id and the payment request (with --watch: then follows it)."""
    pairs = split_pairs(inputs)
    from_file = read_input_file(input_file)
    options = connection(
        ctx, Connection(target, None, timeout, tls, ca_file, cert_file, key_file, as_json)
    )
    with connect(options) as client:
        # The schema says which --input values are text and must not be read as JSON.
        text_fields = text_field_ids(client.get_input_schema().input_schema) if pairs else None
        data = build_input(from_file, pairs, text_fields or frozenset())
        started = client.start_job(
            data, identifier_from_purchaser=identifier, request_id=request_id
        )
        if then_watch:
            if not options.as_json:
                console().print(fmt.started_view(started))
            _watch_to_end(client, started.job_id, 0.0, options.as_json)
            return
    if options.as_json:
        print_json(fmt.to_dict(started))
        return
    out = console()
    out.print(fmt.started_view(started))
    out.print(f"\nFollow it with: agentjobs watch {started.job_id}")


@cli_errors
def status(
    ctx: typer.Context,
    job_id: str,
    target: Target = None,
    timeout: Timeout = None,
    tls: Tls = False,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """Show a job's status (and the input it asks for, its result or its error)."""
    options = connection(
        ctx, Connection(target, None, timeout, tls, ca_file, cert_file, key_file, as_json)
    )
    with connect(options) as client:
        answer = client.get_job_status(job_id)
    if options.as_json:
        print_json(fmt.to_dict(answer))
        return
    console().print(fmt.status_view(answer))


def _follow(
    client: JobClient, job_id: str, timeout: float, as_json: bool
) -> list[jobs_pb2.WatchJobResponse]:
    out = console()
    updates: list[jobs_pb2.WatchJobResponse] = []
    for update in client.watch(job_id, timeout=timeout or None):
        updates.append(update)
        if as_json:
            continue
        out.print(fmt.event_line(update))
        job = update.job
        asks_now = not update.HasField("event") or (
            update.event.type == jobs_pb2.JOB_EVENT_TYPE_INPUT_REQUESTED
        )
        if job.status == jobs_pb2.JOB_STATUS_AWAITING_INPUT and asks_now:
            out.print(f"  the agent asks: {job.input_request_message}")
            if job.HasField("input_schema"):
                out.print(fmt.schema_table(job.input_schema, title="  requested input"))
            answer = fmt.input_example(job.input_schema)
            out.print(f"  answer with: agentjobs input {job.job_id} {answer}")
    return updates


@cli_errors
def watch(
    ctx: typer.Context,
    job_id: str,
    target: Target = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", help="Deadline of the whole watch, seconds [default: none]."),
    ] = None,
    tls: Tls = False,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """Follow a job until it completes (exit 0) or fails (exit 1)."""
    options = connection(
        ctx, Connection(target, None, None, tls, ca_file, cert_file, key_file, as_json)
    )
    if timeout:  # 0: no deadline, as when not given
        checked_timeout(timeout)
    with connect(options) as client:
        _watch_to_end(client, job_id, timeout or 0.0, options.as_json)


def _watch_to_end(client: JobClient, job_id: str, timeout: float, as_json: bool) -> None:
    updates = _follow(client, job_id, timeout, as_json)
    final = updates[-1].job if updates else None
    if as_json:
        print_json(
            {
                "job": fmt.to_dict(final) if final is not None else None,
                "events": [fmt.to_dict(u.event) for u in updates if u.HasField("event")],
            }
        )
    if final is None or final.status not in TERMINAL_STATUSES:
        fail("WATCH_ENDED_EARLY", f"the stream ended before job {job_id} finished", EXIT_FAILED)
    if not as_json:
        console().print(fmt.job_view(final))
    if final.status != jobs_pb2.JOB_STATUS_COMPLETED:
        why = f": {final.error.reason}: {final.error.message}" if final.error.reason else ""
        fail("JOB_FAILED", f"job {job_id} failed{why}", EXIT_FAILED)


@cli_errors
def provide_input(
    ctx: typer.Context,
    job_id: str,
    status_id: Annotated[
        str | None,
        typer.Option(help="The awaiting-input status answered; read from the job if omitted."),
    ] = None,
    inputs: Inputs = None,
    input_file: InputFile = None,
    request_id: RequestId = None,
    target: Target = None,
    timeout: Timeout = None,
    tls: Tls = False,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """Answer a job that awaits input."""
    pairs = split_pairs(inputs)
    from_file = read_input_file(input_file)
    options = connection(
        ctx, Connection(target, None, timeout, tls, ca_file, cert_file, key_file, as_json)
    )
    with connect(options) as client:
        text_fields: frozenset[str] = frozenset()
        if pairs or not status_id:
            # What the job asks for, to read the answers the way its schema types them.
            job = client.get_job_status(job_id)
            status_id = status_id or job.status_id
            text_fields = text_field_ids(job.input_schema)
        data = build_input(from_file, pairs, text_fields)
        answer = client.provide_input(job_id, status_id, data, request_id=request_id)
    if options.as_json:
        print_json(fmt.to_dict(answer))
        return
    console().print(
        fmt.key_values(
            [("job id", job_id), ("input hash", answer.input_hash)], title="Input provided"
        )
    )


@cli_errors
def list_jobs(
    ctx: typer.Context,
    status_name: Annotated[
        str | None,
        typer.Option(
            "--status",
            help="awaiting_payment, awaiting_input, running, completed or failed.",
        ),
    ] = None,
    page_size: Annotated[int, typer.Option(help="Jobs per page (server default 50).")] = 0,
    page_token: Annotated[str, typer.Option(help="next_page_token of a previous page.")] = "",
    target: Target = None,
    token: Token = None,
    timeout: Timeout = None,
    tls: Tls = False,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """List jobs, newest first (needs the operator token)."""
    wanted = checked_enum(job_status, status_name, "--status")
    options = connection(
        ctx, Connection(target, token, timeout, tls, ca_file, cert_file, key_file, as_json)
    )
    with connect(options, operator=True) as client:
        page = client.list_jobs(page_size=page_size, page_token=page_token, status=wanted)
    if options.as_json:
        print_json(fmt.to_dict(page))
        return
    out = console()
    out.print(fmt.jobs_table(page.jobs))
    if page.next_page_token:
        out.print(f"more: agentjobs list --page-token {page.next_page_token}")


@cli_errors
def schema(
    ctx: typer.Context,
    target: Target = None,
    timeout: Timeout = None,
    tls: Tls = False,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """Show the input schema a job's input must satisfy."""
    options = connection(
        ctx, Connection(target, None, timeout, tls, ca_file, cert_file, key_file, as_json)
    )
    with connect(options) as client:
        answer = client.get_input_schema()
    if options.as_json:
        print_json(fmt.to_dict(answer))
        return
    console().print(fmt.schema_table(answer.input_schema))


@cli_errors
def availability(
    ctx: typer.Context,
    target: Target = None,
    timeout: Timeout = None,
    tls: Tls = False,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """Tell whether the agent accepts jobs."""
    options = connection(
        ctx, Connection(target, None, timeout, tls, ca_file, cert_file, key_file, as_json)
    )
    with connect(options) as client:
        answer = client.get_availability()
    if options.as_json:
        print_json(fmt.to_dict(answer))
        return
    console().print(fmt.availability_view(answer))


@cli_errors
def demo(
    ctx: typer.Context,
    target: Target = None,
    timeout: Timeout = None,
    tls: Tls = False,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """Show an example input and the agent's output for it."""
    options = connection(
        ctx, Connection(target, None, timeout, tls, ca_file, cert_file, key_file, as_json)
    )
    with connect(options) as client:
        answer = client.get_demo()
    if options.as_json:
        print_json(fmt.to_dict(answer))
        return
    example = json.dumps(struct_to_dict(answer.input), ensure_ascii=False)
    rows = [("input", example), *((f"output.{k}", v) for k, v in answer.output.items())]
    console().print(fmt.key_values(rows, title="Demo"))


def register(app: typer.Typer) -> None:
    app.command()(start)
    app.command()(status)
    app.command()(watch)
    app.command("input")(provide_input)
    app.command("list")(list_jobs)
    app.command()(schema)
    app.command()(availability)
    app.command()(demo)
