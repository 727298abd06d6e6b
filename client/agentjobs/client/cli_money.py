"""The commands for money that needs a person: attention, recover, refund (operator token).

The server names them in each job's attention (`agentjobs refund <job_id>`, ...), so
their spelling is part of the contract with the server's messages.
"""

from __future__ import annotations

from typing import Annotated

import typer

from agentjobs.client import cli_format as fmt
from agentjobs.client import cli_operator_views as views
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


@cli_errors
def attention(
    ctx: typer.Context,
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
    """List the jobs whose money needs a person.

    Why, what to do (the command that helps) and since when; most recently changed first."""
    options = connection(
        ctx, Connection(target, token, timeout, tls, ca_file, cert_file, key_file, as_json)
    )
    with connect(options, operator=True) as client:
        page = client.list_attention(page_size=page_size, page_token=page_token)
    if options.as_json:
        print_json(fmt.to_dict(page))
        return
    out = console()
    out.print(views.attention_table(page.jobs))
    if page.next_page_token:
        out.print(f"more: agentjobs attention --page-token {page.next_page_token}")


@cli_errors
def recover(
    ctx: typer.Context,
    job_id: str,
    target: Target = None,
    token: Token = None,
    timeout: Timeout = None,
    tls: Tls = False,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """Retry a job's payment action that is stuck.

    What the payment service parked (error-state-recovery), or a submission refused for
    another API key, becomes the job's next step now."""
    options = connection(
        ctx, Connection(target, token, timeout, tls, ca_file, cert_file, key_file, as_json)
    )
    with connect(options, operator=True) as client:
        answer = client.recover_payment(job_id)
    if options.as_json:
        print_json(fmt.to_dict(answer))
        return
    console().print(views.scheduled_view(answer.job, "Recovery scheduled"))


@cli_errors
def refund(
    ctx: typer.Context,
    job_id: str,
    target: Target = None,
    token: Token = None,
    timeout: Timeout = None,
    tls: Tls = False,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """Give the buyer's money back.

    Only where the payment's contract lets the seller: on V1 a disputed payment, on V2
    also a refund request; never while another action on it is in progress."""
    options = connection(
        ctx, Connection(target, token, timeout, tls, ca_file, cert_file, key_file, as_json)
    )
    with connect(options, operator=True) as client:
        answer = client.authorize_refund(job_id)
    if options.as_json:
        print_json(fmt.to_dict(answer))
        return
    console().print(views.scheduled_view(answer.job, "Refund scheduled"))


def register(app: typer.Typer) -> None:
    app.command()(attention)
    app.command()(recover)
    app.command()(refund)
