"""`agentjobs attention`, `refund`, `recover` and `replicas` against a live server whose
sandbox payment service plays the chain over real HTTP (V1 contracts): the commands the
server's attention messages name exist with that spelling and do what they say."""

from __future__ import annotations

import asyncio
import re
import shlex
from pathlib import Path

from agentjobs.client import JobClient
from agentjobs.server.domain import lifecycle
from agentjobs.server.testing import ThreadedServer
from agentjobs.v1 import jobs_pb2
from tests.client.conftest import Cli
from tests.client.helpers import assert_ok, assert_one_error_line, run_cli
from tests.client.money import Chain

EXIT_NOT_FOUND, EXIT_PRECONDITION, EXIT_AUTH = 3, 4, 6
MONEY_COMMANDS = (
    ("attention",),
    ("recover", "some-job"),
    ("refund", "some-job"),
    ("replicas",),
)


def test_a_disputed_job_is_listed_and_the_command_it_names_refunds_it(
    threaded: ThreadedServer, cli: Cli, client: JobClient
) -> None:
    chain = Chain(threaded, cli, client)
    empty = assert_ok(cli("attention"))
    assert "Needs attention (0)" in empty.out and "Nothing needs you" in empty.out
    assert assert_ok(cli("attention", "--json")).json() == {"jobs": [], "next_page_token": ""}

    job_id, bid = chain.disputed("contested")
    page = assert_ok(cli("attention", "--json")).json()
    assert page["next_page_token"] == ""
    (listed,) = page["jobs"]
    assert listed["job_id"] == job_id
    attention = listed["attention"]
    assert attention["reason"] == "DISPUTED"
    assert attention["action"] == f"agentjobs refund {job_id}"
    assert "disputes" in attention["message"]
    assert attention["since"].endswith("Z")

    shown = assert_ok(cli("attention")).out
    # 240 columns: the job's first line has it all; the message wraps under it.
    row = next(line for line in shown.splitlines() if job_id in line)
    assert "DISPUTED" in row and f"agentjobs refund {job_id}" in row
    assert "the buyer disputes" in row
    assert "Needs attention (1)" in shown

    # What the server told the operator to type, typed.
    program, *args = shlex.split(attention["action"])
    assert program == "agentjobs"
    refunded = assert_ok(cli(*args))
    assert "Refund scheduled" in refunded.out and job_id in refunded.out
    assert "next step" in refunded.out
    # The refund reaches the payment service: authorize-refund was accepted.
    chain.run(chain.sandbox.wait_for(bid, requested_action="AuthorizeRefundRequested"))
    chain.job_until(job_id, lambda job: job.step is None or job.step.value != "refund")


def test_refund_json_is_the_job_with_its_refund_scheduled(
    threaded: ThreadedServer, cli: Cli, client: JobClient
) -> None:
    chain = Chain(threaded, cli, client)
    job_id, bid = chain.disputed("contested as json")
    answer = assert_ok(cli("refund", job_id, "--json")).json()
    assert set(answer) == {"job"}
    job = answer["job"]
    assert job["job_id"] == job_id
    assert job["status"] == "JOB_STATUS_COMPLETED"
    assert job["next_step"] == "refund"
    assert job["attention"]["reason"] == "DISPUTED"
    chain.run(chain.sandbox.wait_for(bid, requested_action="AuthorizeRefundRequested"))


def test_a_refund_the_contract_forbids_exits_4(
    threaded: ThreadedServer, cli: Cli, client: JobClient
) -> None:
    """On V1 the seller can authorize a refund only from Disputed: not while the buyer
    has not paid, nor once the result is on chain undisputed."""
    chain = Chain(threaded, cli, client)
    unpaid, _ = chain.start("unpaid")
    submitted, _ = chain.submitted("undisputed")
    for job_id, state in ((unpaid, "unpaid"), (submitted, "ResultSubmitted")):
        for json_flag in ((), ("--json",)):
            result = cli("refund", job_id, *json_flag)
            line = assert_one_error_line(
                result, EXIT_PRECONDITION, "REFUND_NOT_POSSIBLE", job_id, state, "Disputed"
            )
            assert result.out == "", line
    assert_one_error_line(cli("refund", "no-such-job"), EXIT_NOT_FOUND, "JOB_NOT_FOUND")


def test_recover_with_nothing_to_recover_exits_4(
    threaded: ThreadedServer, cli: Cli, client: JobClient
) -> None:
    chain = Chain(threaded, cli, client)
    unpaid, _ = chain.start("nothing parked")
    submitted, _ = chain.submitted("all well")
    for job_id in (unpaid, submitted):
        for json_flag in ((), ("--json",)):
            result = cli("recover", job_id, *json_flag)
            assert_one_error_line(
                result, EXIT_PRECONDITION, "NOTHING_TO_RECOVER", job_id, "nothing to recover"
            )
            assert result.out == ""
    assert_one_error_line(cli("recover", "no-such-job"), EXIT_NOT_FOUND, "JOB_NOT_FOUND")


def test_replicas_names_this_server_as_the_monitor_leader(
    threaded: ThreadedServer, cli: Cli
) -> None:
    app = threaded.running.app
    assert app.monitor is not None
    # A round that began after this call holds the lease before it polls.
    threaded.call(asyncio.wait_for(app.monitor.poll_round(), 20))
    replicas = assert_ok(cli("replicas", "--json")).json()["replicas"]
    (this,) = replicas
    assert this["replica_id"] == app.replica_id
    assert this["role"] == "all"
    assert this["leads_payment_monitor"] is True
    assert this["gone"] is False
    assert this["steps_held"] == "0"  # int64: a string in canonical JSON
    assert this["heartbeat_time"] >= this["start_time"]

    shown = assert_ok(cli("replicas")).out
    assert "Replicas (1)" in shown
    (row,) = [line for line in shown.splitlines() if app.replica_id in line]
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert cells[:2] == [app.replica_id, "all"]
    assert cells[2].endswith(" ago") and not cells[2].startswith("gone")
    assert cells[3:5] == ["0", "yes"]


def test_the_money_commands_need_the_operator_token(threaded: ThreadedServer) -> None:
    for args in MONEY_COMMANDS:
        missing = run_cli(*args, "--target", threaded.grpc_target)
        assert_one_error_line(missing, EXIT_AUTH, "UNAUTHENTICATED", "--token", "AGENTJOBS_TOKEN")
        wrong = {"AGENTJOBS_TARGET": threaded.grpc_target, "AGENTJOBS_TOKEN": "not-the-token"}
        line = assert_one_error_line(run_cli(*args, env=wrong), EXIT_AUTH, "PERMISSION_DENIED")
        assert "not-the-token" not in line


def test_every_command_the_server_suggests_exists() -> None:
    """The lifecycle's attention actions and messages name CLI commands: each exists."""
    sources = Path(lifecycle.__file__).parent.glob("*.py")
    text = "\n".join(path.read_text(encoding="utf-8") for path in sources)
    suggested = set(re.findall(r"agentjobs ([a-z-]+) \{job\.job_id\}", text))
    assert suggested == {"recover", "refund"}
    for name in suggested:
        usage = assert_ok(run_cli(name, "--help")).out
        assert f"agentjobs {name}" in usage and "JOB_ID" in usage.upper()


def test_recover_retries_what_the_payment_service_parked(
    threaded: ThreadedServer, cli: Cli, client: JobClient
) -> None:
    """The chain job keeps failing our submission: the server has the payment service
    retry it a bounded number of times, then names `agentjobs recover <job_id>`, and
    that command has the payment service take the submission again."""
    chain = Chain(threaded, cli, client)
    # The chain job picks nothing up by itself: each failure lands on a waiting submission.
    chain.sandbox.timing.job_interval_s = 3600.0
    job_id, bid = chain.start("unlucky")
    chain.run(chain.sandbox.lock_funds(bid))
    assert client.wait(job_id, timeout=20).status == jobs_pb2.JOB_STATUS_COMPLETED
    for failure in range(chain.app.core.policy.max_recoveries + 1):
        chain.run(chain.sandbox.wait_for(bid, requested_action="SubmitResultRequested"))
        chain.run(chain.sandbox.fail_next_action(bid, f"collateral missing ({failure})"))
        chain.run(chain.monitor.poll_once())
    parked = chain.job_until(job_id, lambda job: job.attention is not None)
    assert parked.attention is not None
    assert parked.attention.reason == "SUBMISSION_FAILED"
    assert parked.attention.action == f"agentjobs recover {job_id}"

    program, *args = shlex.split(parked.attention.action)
    assert program == "agentjobs"
    shown = assert_ok(cli(*args)).out
    assert "Recovery scheduled" in shown and job_id in shown and "recover, due" in shown
    chain.run(chain.sandbox.wait_for(bid, requested_action="SubmitResultRequested"))
    chain.job_until(job_id, lambda job: job.attention is None)
    assert assert_ok(cli("attention", "--json")).json()["jobs"] == []
