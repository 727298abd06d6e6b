"""`agentjobs replicas`: who serves, from the replicas table every process keeps fresh."""

from __future__ import annotations

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
def replicas(
    ctx: typer.Context,
    target: Target = None,
    token: Token = None,
    timeout: Timeout = None,
    tls: Tls = False,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    as_json: AsJson = False,
) -> None:
    """List the replicas sharing the database.

    Each one's role, heartbeat age, steps held and whether it leads the payment monitor;
    a replica without a heartbeat for three lease lengths is shown as gone."""
    options = connection(
        ctx, Connection(target, token, timeout, tls, ca_file, cert_file, key_file, as_json)
    )
    with connect(options, operator=True) as client:
        answer = client.list_replicas()
    if options.as_json:
        print_json(fmt.to_dict(answer))
        return
    console().print(views.replicas_table(answer.replicas))


def register(app: typer.Typer) -> None:
    app.command()(replicas)
