"""Fixtures of the client and CLI tests: a whole server in a background thread (the sync
client and the CLI block) and a CLI bound to it through the environment."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agentjobs.client import JobClient
from agentjobs.server.testing import ThreadedServer, server_in_thread
from tests.client.helpers import CliResult, quick_chain, run_cli, sandbox_books

Cli = Callable[..., CliResult]


@pytest.fixture
def threaded(tmp_path: Path) -> Iterator[ThreadedServer]:
    # The simulated buyer pays only when a test says so; the chain settles quickly; a job
    # left waiting for input does not hold the shutdown for long.
    with server_in_thread(tmp_path, **sandbox_books()) as server:
        quick_chain(server)
        yield server


@pytest.fixture
def cli(threaded: ThreadedServer) -> Cli:
    """The CLI with AGENTJOBS_TARGET and AGENTJOBS_TOKEN pointing at the server."""
    env = {"AGENTJOBS_TARGET": threaded.grpc_target, "AGENTJOBS_TOKEN": threaded.operator_token}

    def invoke(*args: object) -> CliResult:
        return run_cli(*args, env=env)

    return invoke


@pytest.fixture
def client(threaded: ThreadedServer) -> Iterator[JobClient]:
    with JobClient(threaded.grpc_target, operator_token=threaded.operator_token) as job_client:
        yield job_client
