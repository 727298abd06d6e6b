"""The CLI's error contract: one `error:` line on stderr, no traceback, and the exit code
the help documents (2 usage / invalid, 3 not found, 4 precondition, 5 unavailable, 6 auth)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from agentjobs.server.testing import ThreadedServer
from tests.client.conftest import Cli
from tests.client.helpers import (
    AGENTJOBS,
    CLEAN_ENV,
    assert_ok,
    assert_one_error_line,
    run_cli,
)
from tests.support import free_port

EXIT_USAGE, EXIT_NOT_FOUND, EXIT_PRECONDITION, EXIT_UNAVAILABLE, EXIT_AUTH = 2, 3, 4, 5, 6


def test_an_unknown_job_exits_3(cli: Cli) -> None:
    for args in (
        ("status", "no-such-job"),
        ("watch", "no-such-job"),
        ("input", "no-such-job", "--input", "approve=true"),
        ("cancel", "no-such-job"),
    ):
        assert_one_error_line(cli(*args), EXIT_NOT_FOUND, "JOB_NOT_FOUND", "no-such-job")


def test_nothing_listening_exits_5() -> None:
    target = f"127.0.0.1:{free_port()}"
    for args in (("status", "some-job"), ("earnings", "--token", "t")):
        result = run_cli(*args, "--target", target)
        assert_one_error_line(result, EXIT_UNAVAILABLE, "UNAVAILABLE", target)


def test_the_installed_script_reports_a_down_server_in_one_line() -> None:
    env = {k: v for k, v in {**os.environ, **CLEAN_ENV}.items() if v is not None}
    env["AGENTJOBS_TARGET"] = f"127.0.0.1:{free_port()}"
    done = subprocess.run(
        [str(AGENTJOBS), "status", "0b7e6f7a-5a47-4f59-9c1c-2d3f3a1b2c4d"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == EXIT_UNAVAILABLE
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("error: UNAVAILABLE")


def test_input_that_violates_the_schema_exits_2_with_the_field(cli: Cli) -> None:
    line = assert_one_error_line(
        cli("start", "--input", "text="), EXIT_USAGE, "INVALID_ARGUMENT", "input_data.text"
    )
    assert "required" in line
    assert_one_error_line(
        cli("start", "--input", "text=x", "--identifier", "not-hex"),
        EXIT_USAGE,
        "INVALID_ARGUMENT",
        "identifier_from_purchaser",
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("start", "--input", "text"), "is not key=value"),
        (("start", "--input", "=value"), "is not key=value"),
        (("list", "--status", "sleeping"), "--status: unknown value 'sleeping'"),
        (("invoices", "--status", "lost"), "--status: unknown value 'lost'"),
        (("earnings", "--since", "last tuesday"), "--since 'last tuesday' is not an ISO date"),
        (("status",), "Missing argument"),
        (("start", "--no-such-flag"), "No such option"),
        (("start", "--timeout", "soon"), "--timeout"),
        (("frobnicate",), "No such command"),
    ],
)
def test_bad_usage_exits_2_before_calling(args: tuple[str, ...], fragment: str) -> None:
    # Nothing listens there: a call would have ended in UNAVAILABLE (5), not 2.
    env = {"AGENTJOBS_TARGET": f"127.0.0.1:{free_port()}", "AGENTJOBS_TOKEN": "t"}
    assert_one_error_line(run_cli(*args, env=env), EXIT_USAGE, "USAGE", fragment)


def test_an_unreadable_input_file_exits_2(tmp_path: Path) -> None:
    env = {"AGENTJOBS_TARGET": f"127.0.0.1:{free_port()}"}
    missing = tmp_path / "missing.json"
    not_json = tmp_path / "not.json"
    not_json.write_text("{text: hello")
    a_list = tmp_path / "list.json"
    a_list.write_text('["text"]')
    for path, fragment in (
        (missing, "cannot read"),
        (tmp_path, "cannot read"),  # a directory
        (not_json, "is not valid JSON"),
        (a_list, "must hold a JSON object"),
    ):
        result = run_cli("start", "--input-file", path, env=env)
        assert_one_error_line(result, EXIT_USAGE, "USAGE", fragment, str(path))


def test_a_missing_token_exits_6(threaded: ThreadedServer) -> None:
    for args in (("earnings",), ("invoices",), ("cancel", "some-job")):
        result = run_cli(*args, "--target", threaded.grpc_target)
        assert_one_error_line(result, EXIT_AUTH, "UNAUTHENTICATED", "--token", "AGENTJOBS_TOKEN")


def test_a_wrong_token_exits_6(threaded: ThreadedServer) -> None:
    env = {"AGENTJOBS_TARGET": threaded.grpc_target, "AGENTJOBS_TOKEN": "not-the-token"}
    for args in (("earnings",), ("invoices",), ("cancel", "some-job")):
        line = assert_one_error_line(run_cli(*args, env=env), EXIT_AUTH, "PERMISSION_DENIED")
        assert "not-the-token" not in line  # the secret is never echoed


def test_a_status_that_does_not_allow_the_call_exits_4(cli: Cli) -> None:
    job_id = assert_ok(cli("start", "--input", "text=unpaid", "--json")).json()["job_id"]
    # The line names the ErrorInfo reason; the exit code stands for FAILED_PRECONDITION.
    answer = cli("input", job_id, "--input", "approve=true")
    assert_one_error_line(answer, EXIT_PRECONDITION, "JOB_NOT_AWAITING_INPUT")
    assert_ok(cli("cancel", job_id))
    assert_one_error_line(cli("cancel", job_id), EXIT_PRECONDITION, "NOT_CANCELLABLE")


def test_a_deadline_that_passes_exits_5(cli: Cli, threaded: ThreadedServer) -> None:
    job_id = assert_ok(cli("start", "--input", "text=slow", "--json")).json()["job_id"]
    # Unpaid, the job never ends: the watch's own deadline stops it.
    result = cli("watch", job_id, "--timeout", "0.3")
    assert_one_error_line(result, EXIT_UNAVAILABLE, "DEADLINE_EXCEEDED")


def test_without_the_cli_extra_the_script_says_what_to_install() -> None:
    blocked = (
        "import sys\n"
        "sys.modules.update(dict.fromkeys(['typer', 'rich', 'click']))\n"
        "from agentjobs.client.cli import main\n"
        "main()\n"
    )
    done = subprocess.run(
        [str(Path(AGENTJOBS).parent / "python"), "-c", blocked],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "error: MISSING_DEPENDENCY: the agentjobs CLI needs the cli extra: "
        "pip install 'agentjobs[cli]' (missing module: typer)"
    ]
