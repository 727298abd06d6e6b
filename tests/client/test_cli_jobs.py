"""The JobService commands of the `agentjobs` CLI against a live server."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agentjobs.client import JobClient
from agentjobs.server.testing import ThreadedServer
from agentjobs.v1 import jobs_pb2
from tests.client.conftest import Cli
from tests.client.helpers import (
    AGENTJOBS,
    CLEAN_ENV,
    LineReader,
    assert_ok,
    run_cli,
    wait_for_status,
)


@contextmanager
def watching(
    server: ThreadedServer, job_id: str
) -> Iterator[tuple[subprocess.Popen[str], LineReader]]:
    """`agentjobs watch <job>` as a real process, once it has received the snapshot."""
    env = {k: v for k, v in {**os.environ, **CLEAN_ENV}.items() if v is not None}
    env["AGENTJOBS_TARGET"] = server.grpc_target
    process = subprocess.Popen(
        [str(AGENTJOBS), "watch", job_id],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = LineReader(process)
        lines.wait_for(f"watching {job_id}")
        yield process, lines
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_start_then_watch_follows_the_job_to_completed_and_exits_0(
    threaded: ThreadedServer, cli: Cli
) -> None:
    started = assert_ok(cli("start", "--input", "text=hello cli", "--json")).json()
    # No --identifier: the CLI made up a valid one (hex, even length, 14-26 characters).
    assert re.fullmatch(r"([0-9a-f]{2}){7,13}", started["identifier_from_purchaser"])
    assert started["status"] == "JOB_STATUS_AWAITING_PAYMENT"

    with watching(threaded, started["job_id"]) as (process, lines):
        threaded.call(threaded.sandbox.lock_funds(started["blockchain_identifier"]))
        assert process.wait(timeout=30) == 0
        output = lines.rest()
        assert process.stderr is not None
        assert process.stderr.read() == ""
    for event in ("funds_locked", "started", "result_stored", "completed"):
        assert event in output, output
    assert "HELLO CLI!" in output


def test_watch_exits_non_zero_when_the_watched_job_fails(
    threaded: ThreadedServer, cli: Cli
) -> None:
    started = assert_ok(cli("start", "--input", "text=doomed", "--json")).json()
    with watching(threaded, started["job_id"]) as (process, lines):
        threaded.call(threaded.sandbox.mark_funds_invalid(started["blockchain_identifier"]))
        assert process.wait(timeout=30) == 1
        assert "failed" in lines.rest()
        assert process.stderr is not None
        errors = process.stderr.read().splitlines()
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"error: JOB_FAILED: job {started['job_id']} failed")
    assert "FUNDS_OR_DATUM_INVALID" in errors[0]

    # Watching a job that already failed: the snapshot is terminal, same verdict.
    again = cli("watch", started["job_id"], "--json")
    assert again.code == 1
    assert again.json()["job"]["status"] == "JOB_STATUS_FAILED"


def test_input_answers_a_job_that_awaits_input(
    threaded: ThreadedServer, cli: Cli, client: JobClient
) -> None:
    started = assert_ok(
        cli("start", "--input", "text=review me", "--input", "ask_for_review=true", "--json")
    ).json()
    job_id = started["job_id"]
    threaded.call(threaded.sandbox.lock_funds(started["blockchain_identifier"]))
    wait_for_status(client, job_id, jobs_pb2.JOB_STATUS_AWAITING_INPUT)

    shown = assert_ok(cli("status", job_id)).out
    assert "awaiting_input" in shown and "Approve the answer" in shown and "approve" in shown
    status = assert_ok(cli("status", job_id, "--json")).json()
    assert status["input_schema"]["input_data"][0]["id"] == "approve"

    answer = assert_ok(cli("input", job_id, "--input", "approve=true", "--json")).json()
    assert re.fullmatch(r"[0-9a-f]{64}", answer["input_hash"])

    final = client.wait(job_id, timeout=20)
    assert final.status == jobs_pb2.JOB_STATUS_COMPLETED
    assert final.result == "REVIEW ME!"
    watched = assert_ok(cli("watch", job_id))
    assert "completed" in watched.out and "REVIEW ME!" in watched.out


def test_input_values_follow_the_schema_and_the_input_file(
    cli: Cli, client: JobClient, tmp_path: Path
) -> None:
    # `text` is a text field: 42 and true stay strings instead of becoming JSON values.
    numeric = assert_ok(cli("start", "--input", "text=42", "--json")).json()
    job = client.get_job_status(numeric["job_id"])
    assert job.status == jobs_pb2.JOB_STATUS_AWAITING_PAYMENT
    listed = {j.job_id: j for j in client.list_jobs().jobs}
    assert dict(listed[numeric["job_id"]].input_data) == {"text": "42"}

    from_file = tmp_path / "input.json"
    from_file.write_text(json.dumps({"text": "from the file", "ask_for_review": False}))
    started = assert_ok(
        cli("start", "--input-file", from_file, "--input", "text=overridden", "--json")
    ).json()
    listed = {j.job_id: j for j in client.list_jobs().jobs}
    assert dict(listed[started["job_id"]].input_data) == {
        "text": "overridden",
        "ask_for_review": False,
    }


def test_start_is_idempotent_on_request_id(cli: Cli) -> None:
    args = ("start", "--input", "text=once", "--json")
    first = assert_ok(cli(*args, "--request-id", "cli-retry-1")).json()
    again = assert_ok(cli(*args, "--request-id", "cli-retry-1")).json()
    assert again["job_id"] == first["job_id"]
    assert again["blockchain_identifier"] == first["blockchain_identifier"]

    mine = ("--identifier", "aabbccddeeff0011", "--request-id", "cli-retry-2")
    chosen = assert_ok(cli(*args, *mine)).json()
    assert chosen["identifier_from_purchaser"] == "aabbccddeeff0011"
    assert assert_ok(cli(*args, *mine)).json()["job_id"] == chosen["job_id"]


def test_list_shows_jobs_newest_first_and_filters_by_status(cli: Cli) -> None:
    kept = assert_ok(cli("start", "--input", "text=kept", "--json")).json()["job_id"]
    gone = assert_ok(cli("start", "--input", "text=gone", "--json")).json()["job_id"]
    assert_ok(cli("cancel", gone, "--json"))

    everything = assert_ok(cli("list", "--json")).json()
    assert [j["job_id"] for j in everything["jobs"]] == [gone, kept]
    failed = assert_ok(cli("list", "--status", "failed", "--json")).json()
    assert [j["job_id"] for j in failed["jobs"]] == [gone]
    waiting = assert_ok(cli("list", "--status", "AWAITING_PAYMENT", "--json")).json()
    assert [j["job_id"] for j in waiting["jobs"]] == [kept]

    first_page = assert_ok(cli("list", "--page-size", "1", "--json")).json()
    assert [j["job_id"] for j in first_page["jobs"]] == [gone]
    second_page = assert_ok(
        cli("list", "--page-size", "1", "--page-token", first_page["next_page_token"], "--json")
    ).json()
    assert [j["job_id"] for j in second_page["jobs"]] == [kept]

    table = assert_ok(cli("list")).out
    assert kept in table and gone in table and "awaiting_payment" in table
    assert "Jobs (2)" in table


def test_schema_availability_and_demo(cli: Cli) -> None:
    schema = assert_ok(cli("schema", "--json")).json()
    assert [f["id"] for f in schema["input_schema"]["input_data"]] == ["text", "ask_for_review"]
    table = assert_ok(cli("schema")).out
    assert "text" in table and "ask_for_review" in table and "Text to shout" in table

    availability = assert_ok(cli("availability", "--json")).json()
    assert availability["availability"] == "AVAILABILITY_AVAILABLE"
    assert availability["type"] == "masumi-agent"
    assert availability["sandbox"] is True
    shown = assert_ok(cli("availability")).out
    assert "available" in shown and "SANDBOX" in shown

    demo = assert_ok(cli("demo", "--json")).json()
    assert demo == {"input": {"text": "hello masumi"}, "output": {"result": "HELLO MASUMI!"}}
    assert "HELLO MASUMI!" in assert_ok(cli("demo")).out


def test_cancel_fails_a_job_awaiting_payment(cli: Cli) -> None:
    job_id = assert_ok(cli("start", "--input", "text=never paid", "--json")).json()["job_id"]
    cancelled = assert_ok(cli("cancel", job_id, "--reason", "buyer changed mind", "--json"))
    job = cancelled.json()["job"]
    assert job["status"] == "JOB_STATUS_FAILED"
    assert job["error"] == {"reason": "CANCELLED", "message": "buyer changed mind"}
    status = assert_ok(cli("status", job_id)).out
    assert "failed" in status and "CANCELLED: buyer changed mind" in status


def test_flags_work_as_well_as_the_environment(threaded: ThreadedServer) -> None:
    answer = run_cli("availability", "--target", threaded.grpc_target, "--json")
    assert assert_ok(answer).json()["type"] == "masumi-agent"
    report = run_cli(
        "earnings", "--target", threaded.grpc_target, "--token", threaded.operator_token
    )
    assert "No invoices yet" in assert_ok(report).out


def test_every_command_prints_one_json_document(
    threaded: ThreadedServer, cli: Cli, client: JobClient
) -> None:
    started = assert_ok(cli("start", "--input", "text=json", "--json")).json()
    job_id = started["job_id"]
    documents = {
        "status": cli("status", job_id, "--json"),
        "list": cli("list", "--json"),
        "schema": cli("schema", "--json"),
        "availability": cli("availability", "--json"),
        "demo": cli("demo", "--json"),
        "earnings": cli("earnings", "--json"),
        "invoices": cli("invoices", "--json"),
    }
    paid = assert_ok(cli("start", "--input", "text=x", "--input", "ask_for_review=true", "--json"))
    threaded.call(threaded.sandbox.lock_funds(paid.json()["blockchain_identifier"]))
    wait_for_status(client, paid.json()["job_id"], jobs_pb2.JOB_STATUS_AWAITING_INPUT)
    documents["input"] = cli("input", paid.json()["job_id"], "--input", "approve=false", "--json")
    documents["watch"] = cli("watch", paid.json()["job_id"], "--json")
    documents["cancel"] = cli("cancel", job_id, "--json")
    for command, result in documents.items():
        assert_ok(result)
        assert isinstance(result.json(), dict), command
    assert documents["watch"].json()["job"]["result"] == "The reviewer declined the answer."
    assert documents["watch"].json()["events"][-1]["type"] == "JOB_EVENT_TYPE_COMPLETED"
