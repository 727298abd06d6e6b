"""The OperatorService commands: earnings, invoices, cancel (they need the operator token)."""

from __future__ import annotations

from typing import Annotated

import typer

from agentjobs.client import cli_format as fmt
from agentjobs.client.cli_common import (
    AsJson,
    CaFile,
    CertFile,
    Connection,
    KeyFile,
    Target,
    Timeout,
    Tls,
    Token,
    cli_errors,
    connect,
    connection,
    console,
    print_json,
)
from agentjobs.client.cli_inputs import checked_enum, parse_when
from agentjobs.client.convert import invoice_status


@cli_errors
def earnings(
    ctx: typer.Context,
    since: Annotated[
        str | None, typer.Option(help="Invoices created at or after (ISO date/time, local).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Invoices created before (ISO date/time, local).")
    ] = None,
    recent: Annotated[int, typer.Option(help="How many recent invoices (server default 10).")] = 0,
    target: Target = None,
    token: Token = None,
    timeout: Timeout = None,
    tls: Tls = False,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """The earnings report: earned, locked, pending, expired, refunded; jobs by status."""
    start_time = parse_when(since, "--since")
    end_time = parse_when(until, "--until")
    options = connection(
        ctx, Connection(target, token, timeout, tls, ca_file, cert_file, key_file, as_json)
    )
    with connect(options, operator=True) as client:
        report = client.get_earnings_report(
            start_time=start_time, end_time=end_time, recent_limit=recent
        )
    if options.as_json:
        print_json(fmt.to_dict(report))
        return
    period = " ".join(
        part
        for part in (f"since {since}" if since else "", f"until {until}" if until else "")
        if part
    )
    console().print(fmt.earnings_view(report, period))


@cli_errors
def invoices(
    ctx: typer.Context,
    status_name: Annotated[
        str | None,
        typer.Option("--status", help="pending, paid, expired, withdrawn, refunded or invalid."),
    ] = None,
    page_size: Annotated[int, typer.Option(help="Invoices per page (server default 50).")] = 0,
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
    """List invoices, newest first."""
    wanted = checked_enum(invoice_status, status_name, "--status")
    options = connection(
        ctx, Connection(target, token, timeout, tls, ca_file, cert_file, key_file, as_json)
    )
    with connect(options, operator=True) as client:
        page = client.list_invoices(page_size=page_size, page_token=page_token, status=wanted)
    if options.as_json:
        print_json(fmt.to_dict(page))
        return
    out = console()
    out.print(fmt.invoices_table(page.invoices))
    if page.next_page_token:
        out.print(f"more: agentjobs invoices --page-token {page.next_page_token}")


@cli_errors
def cancel(
    ctx: typer.Context,
    job_id: str,
    reason: Annotated[str, typer.Option(help="Why; kept in the job's error message.")] = "",
    target: Target = None,
    token: Token = None,
    timeout: Timeout = None,
    tls: Tls = False,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """Cancel a job that still awaits payment."""
    options = connection(
        ctx, Connection(target, token, timeout, tls, ca_file, cert_file, key_file, as_json)
    )
    with connect(options, operator=True) as client:
        answer = client.cancel_job(job_id, reason)
    if options.as_json:
        print_json(fmt.to_dict(answer))
        return
    console().print(fmt.job_view(answer.job))


def register(app: typer.Typer) -> None:
    app.command()(earnings)
    app.command()(invoices)
    app.command()(cancel)
