"""The connection options go before the command or after it; bad values are usage
errors (exit 2) before any call; the watch hint names the question's own fields."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from agentjobs.client import JobClient
from agentjobs.server.testing import ThreadedServer, server_in_thread
from agentjobs.v1 import jobs_pb2
from tests.client.certificates import make_certificates
from tests.client.conftest import Cli
from tests.client.helpers import (
    AGENTJOBS,
    CLEAN_ENV,
    LineReader,
    assert_ok,
    assert_one_error_line,
    run_cli,
    wait_for_status,
)
from tests.support import free_port

EXIT_USAGE = 2


def test_connection_options_before_the_command(threaded: ThreadedServer) -> None:
    target, token = threaded.grpc_target, threaded.operator_token
    answer = assert_ok(run_cli("--target", target, "--json", "availability")).json()
    assert answer["type"] == "masumi-agent"
    started = assert_ok(run_cli("--target", target, "start", "--input", "text=x", "--json"))
    job_id = started.json()["job_id"]
    report = assert_ok(run_cli("--target", target, "--token", token, "--json", "earnings"))
    assert report.json()["pending"]["count"] == "1"
    shown = assert_ok(run_cli("--target", target, "--timeout", "5", "status", job_id)).out
    assert "awaiting_payment" in shown


def test_connection_options_after_the_command(threaded: ThreadedServer) -> None:
    target, token = threaded.grpc_target, threaded.operator_token
    report = run_cli("earnings", "--target", target, "--token", token, "--json")
    assert assert_ok(report).json()["recent"] == []


def test_after_the_command_wins_then_before_then_the_environment(
    threaded: ThreadedServer,
) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    env = {"AGENTJOBS_TARGET": nowhere}
    target = threaded.grpc_target
    assert_ok(run_cli("--target", target, "availability", env=env))
    assert_ok(run_cli("--target", nowhere, "availability", "--target", target))
    down = run_cli("--target", target, "availability", "--target", nowhere, "--timeout", "2")
    assert_one_error_line(down, 5, "UNAVAILABLE", nowhere)
    # The environment alone still works.
    assert_ok(run_cli("availability", env={"AGENTJOBS_TARGET": target}))


def test_tls_options_before_the_command(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    certs = make_certificates(tmp_path / "certs")
    with server_in_thread(
        tmp_path, tls_cert_file=certs.server_cert, tls_key_file=certs.server_key
    ) as server:
        shown = run_cli("--ca-file", certs.ca, "--target", server.grpc_target, "availability")
        assert "available" in assert_ok(shown).out


@pytest.mark.parametrize(
    "args",
    [
        ("--timeout", "-1", "availability"),
        ("availability", "--timeout", "-1"),
        ("availability", "--timeout", "0"),
        ("--timeout", "0", "list"),
        ("watch", "some-job", "--timeout", "-1"),
    ],
)
def test_a_timeout_that_is_not_positive_is_a_usage_error(args: tuple[str, ...]) -> None:
    # Nothing listens there: a call made anyway would end in UNAVAILABLE (exit 5).
    result = run_cli(*args, "--target", f"127.0.0.1:{free_port()}")
    assert_one_error_line(result, EXIT_USAGE, "USAGE", "--timeout must be more than 0")


def test_the_top_level_help_lists_the_connection_options() -> None:
    shown = assert_ok(run_cli("--help")).out
    for option in ("--target", "--token", "--timeout", "--ca-file", "--json"):
        assert option in shown


def test_watch_names_the_fields_to_answer(
    threaded: ThreadedServer, cli: Cli, client: JobClient
) -> None:
    started = assert_ok(
        cli("start", "--input", "text=hint", "--input", "ask_for_review=true", "--json")
    ).json()
    threaded.call(threaded.sandbox.lock_funds(started["blockchain_identifier"]))
    job_id = started["job_id"]
    wait_for_status(client, job_id, jobs_pb2.JOB_STATUS_AWAITING_INPUT)
    env = {k: v for k, v in {**os.environ, **CLEAN_ENV}.items() if v is not None}
    env["AGENTJOBS_TARGET"] = threaded.grpc_target
    process = subprocess.Popen(
        [str(AGENTJOBS), "watch", job_id],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        hint = LineReader(process).wait_for("answer with:")
    finally:
        process.kill()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
    assert f"agentjobs input {job_id} --input approve=true" in hint
    assert "key=value" not in hint
